// `npm run bench:startup`: how long `deploy` takes to start, answer and exit for commands that do
// little (`--help`, `--version`, `list` with no apps), as the median and spread of N fresh processes.
// Not a test: the numbers depend on the machine and its load. STARTUP_RUNS (default 10) sets N;
// STARTUP_BIN measures another build's bin/deploy.js (a copy of an older checkout, to compare).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const bin = process.env.STARTUP_BIN ?? fileURLToPath(new URL('../../packages/deploy/bin/deploy.js', import.meta.url));
const runs = Number(process.env.STARTUP_RUNS ?? '10');

/** Wall time of one `node ...argv` in ms, and its exit code. */
function once(argv: readonly string[], env: NodeJS.ProcessEnv): { ms: number; status: number | null } {
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, argv, { env, encoding: 'utf8' });
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, status: result.status };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const root = mkdtempSync(join(tmpdir(), 'deploy-startup-'));
try {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DEPLOY_APPS_ROOT: join(root, 'apps'),
    DEPLOY_STATE_DIR: join(root, 'state'),
  };
  delete env.DEPLOY_CONFIG;
  mkdirSync(join(root, 'apps'));
  const cases: [string, string[]][] = [
    ['node -e 0 (floor)', ['-e', '0']],
    ['deploy --help', [bin, '--help']],
    ['deploy --version', [bin, '--version']],
    ['deploy list (no apps)', [bin, 'list']],
  ];
  const rows: string[] = [];
  for (const [name, args] of cases) {
    const times: number[] = [];
    const codes = new Set<string>();
    for (let i = 0; i < runs; i += 1) {
      const { ms, status } = once(args, env);
      times.push(ms);
      codes.add(String(status));
    }
    rows.push(
      `| ${name} | ${median(times).toFixed(0)} | ${Math.min(...times).toFixed(0)} | ${Math.max(...times).toFixed(0)} | ${[...codes].join(', ')} |`,
    );
  }
  process.stdout.write(
    `deploy start-up, ${runs} runs each, node ${process.version}, load average ${loadavg()[0]!.toFixed(2)} on ${availableParallelism()} cores\n\n`,
  );
  process.stdout.write(`| command | median ms | min ms | max ms | exit |\n|---|---|---|---|---|\n${rows.join('\n')}\n`);
} finally {
  rmSync(root, { recursive: true, force: true });
}
