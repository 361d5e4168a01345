// `npm run bench:cutover`: issue 12's target. The notes sample app with CUTOVER_UPLOADS_MIB (default
// 1536) of uploads (one file of a third of it, the rest 100 KiB files, flat: the sample app serves no subdirectory) is migrated from lab host a to b;
// then CUTOVER_CHANGED_MIB (default 10) of uploads change on a (new files and rewritten ones) and
// `deploy cutover` runs. Printed and written to bench/reports/cutover-<time>.{json,md}: the bytes the
// cutover sent against the changed bytes plus the database part, the write-stop window against the
// time a bare `pg_dump -Fc` of the database takes, and the steps' times on both hosts. Not a test: the
// numbers depend on the machine and its load.
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { startLab } from '@deploykit/testlab';
import { parseJournal, timeSteps, type TimedStep } from './journal-steps.js';

const uploadsMiB = Number(process.env.CUTOVER_UPLOADS_MIB ?? '1536');
const changedMiB = Number(process.env.CUTOVER_CHANGED_MIB ?? '10');
const bin = fileURLToPath(new URL('../../packages/deploy/bin/deploy.js', import.meta.url));
const reportsDir = fileURLToPath(new URL('../reports/', import.meta.url));

function deploy(
  config: string,
  args: readonly string[],
): { status: number | null; stdout: string; stderr: string; ms: number } {
  const started = Date.now();
  const result = spawnSync(process.execPath, [bin, '--config', config, '--host', 'a', ...args], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  if (result.status !== 0)
    throw new Error(
      `deploy ${args.join(' ')}: exit ${result.status}\n${result.stdout.slice(-3000)}\n${result.stderr.slice(-3000)}`,
    );
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, ms: Date.now() - started };
}

interface StepTime {
  readonly step: string;
  readonly ms: number;
}

/** The window as phases: the source until the last byte went, then the target until healthy. */
function windowPhases(
  source: readonly TimedStep[],
  target: readonly TimedStep[],
  windowMs: number,
): { phase: string; ms: number; steps: string }[] {
  const sends = source.filter((step) => step.step.startsWith('send:') || step.step === 'trailer');
  const lastByte = Math.max(...sends.map((step) => step.to));
  const firstSend = Math.min(...sends.map((step) => step.from));
  const before = source.filter((step) => step.from >= 0 && step.to <= firstSend);
  const list = (steps: readonly TimedStep[]): string =>
    steps.map((step) => `${step.step} ${step.to - step.from}`).join(', ');
  const contents = source.find((step) => step.step === 'contents')?.detail?.phases as
    | Record<string, number>
    | undefined;
  const after = target.filter((step) => step.to > lastByte && step.from < windowMs);
  return [
    {
      phase: 'source: stop writes, final backup, delta (until the first part)',
      ms: firstSend,
      steps: `${list(before)}${
        contents
          ? ` (contents: ${Object.entries(contents)
              .map(([name, ms]) => `${name} ${ms}`)
              .join(', ')})`
          : ''
      }`,
    },
    {
      phase: 'wire: the parts, first byte to last (target receiving alongside)',
      ms: lastByte - firstSend,
      steps: `${list(sends)}; target: ${list(target.filter((step) => step.step.startsWith('receive:') && step.from < lastByte))}`,
    },
    {
      phase: 'target: after the last byte until healthy (the window end)',
      ms: windowMs - lastByte,
      steps: list(after),
    },
  ];
}

await using lab = await startLab({ hosts: 2 });
const ssh = async (host: string, command: string): Promise<string> => {
  const result = await lab.ssh(host, command);
  if (result.exitCode !== 0) throw new Error(`${host}: ${command}: exit ${result.exitCode}: ${result.stderr}`);
  return result.stdout;
};
const config = lab.deployConfigPath;
const uploads = `${lab.host('a').appsRoot}/notes/data/uploads`;
deploy(config, ['init', 'notes']);
deploy(config, ['install', 'notes']);
const bigMiB = Math.floor(uploadsMiB / 3);
const smallFiles = Math.floor(((uploadsMiB - bigMiB) * 1024) / 100);
process.stderr.write(`bench: ${uploadsMiB} MiB of uploads (${bigMiB} MiB file, ${smallFiles} x 100 KiB) on a\n`);
await ssh(
  'a',
  `cd ${uploads} && head -c ${bigMiB}M /dev/urandom > big.bin && python3 -c 'import os,sys\nfor i in range(1, int(sys.argv[1]) + 1):\n  open(f"p{i}.jpg", "wb").write(os.urandom(102400))' ${smallFiles}`,
);
deploy(config, ['start', 'notes']);
const migrate = deploy(config, ['migrate', 'notes', '--to', 'b', '--json']);
process.stderr.write(`bench: migrate took ${(migrate.ms / 1000).toFixed(1)} s\n`);
// The change: half new 1 MiB files, half rewritten 100 KiB files.
const newFiles = Math.max(1, Math.floor(changedMiB / 2));
const rewritten = Math.floor(((changedMiB - newFiles) * 1024) / 100);
await ssh(
  'a',
  `cd ${uploads} && python3 -c 'import os,sys\nfor i in range(1, int(sys.argv[1]) + 1):\n  open(f"new-{i}.bin", "wb").write(os.urandom(1048576))\nfor i in range(1, int(sys.argv[2]) + 1):\n  open(f"p{i}.jpg", "wb").write(os.urandom(102400))' ${newFiles} ${rewritten}`,
);
const changedBytes = newFiles * 1024 * 1024 + rewritten * 102400;
const dumpStarted = Date.now();
await ssh('a', 'pg_dump -Fc -d notes > /dev/null');
const dumpMs = Date.now() - dumpStarted;
const cutover = deploy(config, ['cutover', 'notes', '--to', 'b', '--json']);
const report = JSON.parse(cutover.stdout) as {
  ok: boolean;
  journal: string;
  parts: { id: string; bytes: number; wireBytes?: number; elapsedMs: number }[];
  cutover: { writeStopMs: number; deltaBytes: number; databaseBytes: number; volumes: Record<string, unknown> };
  targetReport?: { journal?: string };
};
const readLines = async (host: string, path: string | undefined): Promise<Record<string, unknown>[]> =>
  path === undefined ? [] : parseJournal(await ssh(host, `cat ${path}`));
const sourceLines = await readLines('a', report.journal);
const targetLines = await readLines('b', report.targetReport?.journal);
const stoppedAt = Date.parse(
  String(sourceLines.find((line) => line.step === 'stop-writes' && line.status === 'start')?.time),
);
const sourceTimed = timeSteps('source', sourceLines, stoppedAt);
const targetTimed = timeSteps('target', targetLines, stoppedAt);
const sourceSteps: StepTime[] = sourceTimed.map((step) => ({ step: step.step, ms: step.to - step.from }));
const targetSteps: StepTime[] = targetTimed.map((step) => ({ step: step.step, ms: step.to - step.from }));
const phases = windowPhases(sourceTimed, targetTimed, report.cutover.writeStopMs);
const volumeBytes = report.parts
  .filter((part) => part.id.startsWith('delta:uploads'))
  .reduce((sum, part) => sum + (part.wireBytes ?? part.bytes), 0);
const result = {
  machine: {
    cores: availableParallelism(),
    memGiB: Math.round(totalmem() / 2 ** 30),
    load: loadavg()[0],
    node: process.version,
  },
  uploadsMiB,
  changedBytes,
  migrateMs: migrate.ms,
  cutover: report.cutover,
  uploadsDeltaWireBytes: volumeBytes,
  sentBytes: report.cutover.deltaBytes + report.cutover.databaseBytes,
  ratio: volumeBytes / changedBytes,
  pgDumpMs: dumpMs,
  windowTargetMs: 15_000 + dumpMs,
  sourceSteps,
  targetSteps,
  phases,
  timeline: [...sourceTimed, ...targetTimed].filter((step) => step.to >= 0).sort((a, b) => a.from - b.from),
};
const met = {
  bytes: volumeBytes < 1.2 * changedBytes,
  window: report.cutover.writeStopMs < result.windowTargetMs,
};
const md = [
  `# Cutover bench (${new Date().toISOString()})`,
  '',
  `Machine: ${result.machine.cores} cores, ${result.machine.memGiB} GiB, node ${result.machine.node}, load average ${(result.machine.load ?? 0).toFixed(2)} at the end. Both lab hosts share it.`,
  '',
  `| what | value | target | met |`,
  `|---|---|---|---|`,
  `| uploads migrated | ${uploadsMiB} MiB (migrate ${(migrate.ms / 1000).toFixed(1)} s) | | |`,
  `| changed after the migration | ${(changedBytes / 2 ** 20).toFixed(1)} MiB | | |`,
  `| uploads delta on the wire | ${(volumeBytes / 2 ** 20).toFixed(2)} MiB (${result.ratio.toFixed(3)}x the changed bytes) | < 1.2x | ${met.bytes ? 'yes' : 'NO'} |`,
  `| all volume deltas + database | ${((report.cutover.deltaBytes + report.cutover.databaseBytes) / 2 ** 20).toFixed(2)} MiB (database ${(report.cutover.databaseBytes / 2 ** 20).toFixed(2)} MiB) | | |`,
  `| write-stop window | ${(report.cutover.writeStopMs / 1000).toFixed(1)} s | < 15 s + pg_dump ${(dumpMs / 1000).toFixed(1)} s | ${met.window ? 'yes' : 'NO'} |`,
  '',
  'Where the window went (ms from the stop of writes on the source; both lab hosts share one clock):',
  '',
  '| phase | ms | steps (ms) |',
  '|---|---|---|',
  ...phases.map((phase) => `| ${phase.phase} | ${phase.ms} | ${phase.steps} |`),
  '',
  `Time line: ${result.timeline.map((step) => `${step.host === 'source' ? 'a' : 'b'}:${step.step} ${step.from}-${step.to}`).join(', ')}`,
  '',
  `Source steps (ms): ${sourceSteps.map((step) => `${step.step} ${step.ms}`).join(', ')}`,
  '',
  `Target steps (ms): ${targetSteps.map((step) => `${step.step} ${step.ms}`).join(', ')}`,
  '',
].join('\n');
process.stdout.write(`${md}\n`);
mkdirSync(reportsDir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
writeFileSync(join(reportsDir, `cutover-${stamp}.json`), `${JSON.stringify({ ...result, met }, null, 2)}\n`);
writeFileSync(join(reportsDir, `cutover-${stamp}.md`), md);
