// `npm run bench:datapath`: what `deploy` itself costs per GiB on each side of a volume part, without
// a lab. The bundle writer of the source (`writePart`: a producer's output into the bundle, as `deploy
// migrate` sends a part) and the reader of the target (`BundleReader` -> `receiveTarPart`: TarGuard,
// meter, `tar -x`) run as two processes joined by a pipe, next to the same pipeline without them:
//
//   bare:    cat TAR | cat | tar -x            (the middle cat stands for ssh's hop)
//   deploy:  [writer: cat TAR -> BundleWriter -> cat] | [reader: BundleReader -> TarGuard -> tar -x]
//
// Each side reports its own CPU seconds (user + system; children not included except the writer's payload
// pump, a part of deploy that runs as a python3 child: its own rusage is added): the numbers to compare
// on a loaded machine, where wall times spread. Not a test. DATAPATH_MB (default 1024) sizes the tar
// stream (a quarter one file, the rest 100 KiB files of random bytes), DATAPATH_REPS (default 3) the
// repetitions, interleaved. Extracts into a directory on /dev/shm when it exists (no disk in the numbers).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { receiveTarPart } from '@deploykit/deploy';
import { LocalHost } from '@deploykit/host';
import { BundleReader, BundleWriter } from '@deploykit/transport';

const self = fileURLToPath(import.meta.url);
const MiB = 1024 * 1024;

/** One side's own CPU seconds and wall time, printed as the last stderr line of a side process. */
interface SideUsage {
  readonly side: string;
  readonly cpu: number;
  readonly user: number;
  readonly system: number;
  readonly wallMs: number;
  readonly bytes: number;
}

/** `helper`: CPU seconds of deploy's own helper processes (the writer's payload pump), counted with the side. */
function reportUsage(side: string, started: number, bytes: number, helper = { user: 0, system: 0 }): void {
  const usage = process.resourceUsage();
  const user = usage.userCPUTime / 1e6 + helper.user;
  const system = usage.systemCPUTime / 1e6 + helper.system;
  const line: SideUsage = { side, cpu: user + system, user, system, wallMs: Date.now() - started, bytes };
  process.stderr.write(`DATAPATH ${JSON.stringify(line)}\n`);
}

/** Source side: `cat TAR` as the producer, the bundle into a `cat` child (ssh's place) writing to our stdout. */
async function writerSide(tarFile: string): Promise<void> {
  const started = Date.now();
  const sinkProcess = spawn('cat', [], { stdio: ['pipe', 'inherit', 'inherit'] });
  const writer = new BundleWriter(sinkProcess.stdin);
  await writer.writeHeader({ kind: 'datapath-bench' });
  const producer = spawn('cat', [tarFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const status = new Promise<{ exitCode: number | null; signal: string | null }>((resolve) =>
    producer.on('exit', (exitCode, signal) => resolve({ exitCode, signal })),
  );
  const trailer = await writer.writePart('volume:bench', producer.stdout, status);
  await writer.finish();
  sinkProcess.stdin.end();
  await new Promise((resolve) => sinkProcess.on('exit', resolve));
  reportUsage('writer', started, trailer.bytes, writer.pumpCpu);
}

/** Target side: the bundle from stdin, each part through receiveTarPart (TarGuard, meter, tar -x) into `dir`. */
async function readerSide(dir: string): Promise<void> {
  const started = Date.now();
  const host = new LocalHost('bench');
  const reader = new BundleReader(process.stdin);
  let bytes = 0;
  let metered = 0;
  for (;;) {
    const item = await reader.next();
    if (item.kind === 'part') {
      const outcome = await receiveTarPart(host, item, join(dir, 'part'), { onBytes: (total) => (metered = total) });
      if (!outcome.ok) throw new Error(`part failed: ${outcome.message}`);
      bytes += outcome.bytes;
    } else if (item.kind === 'end' || item.kind === 'abort') {
      break;
    }
  }
  if (metered !== bytes) throw new Error(`the meter saw ${metered} bytes, the part had ${bytes}`);
  reportUsage('reader', started, bytes);
}

/** Writes a tar of `mb` MiB (a quarter one file, the rest 100 KiB files) into `file`. */
function makeTar(root: string, file: string, mb: number): void {
  const tree = join(root, 'tree');
  mkdirSync(join(tree, 'small'), { recursive: true });
  const bigBytes = Math.floor((mb * MiB) / 4);
  for (let written = 0; written < bigBytes; written += 16 * MiB) {
    writeFileSync(join(tree, 'big.bin'), randomBytes(Math.min(16 * MiB, bigBytes - written)), { flag: 'a' });
  }
  const smallCount = Math.floor((mb * MiB - bigBytes) / (100 * 1024));
  for (let i = 0; i < smallCount; i += 1) {
    writeFileSync(join(tree, 'small', `f${String(i).padStart(6, '0')}.bin`), randomBytes(100 * 1024));
  }
  const tar = spawnSync('tar', ['-c', '-f', file, '-C', tree, '.']);
  if (tar.status !== 0) throw new Error(`tar -c failed: ${tar.stderr}`);
  rmSync(tree, { recursive: true, force: true });
}

/** Runs `script` under bash, timed by /usr/bin/time (all processes), with each side's usage line collected. */
function runRow(script: string): { wall: number; cpuAll: number; sides: SideUsage[] } {
  const result = spawnSync('/usr/bin/time', ['-f', 'TIME %e %U %S', 'bash', '-c', `set -o pipefail; ${script}`], {
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`row failed (${result.status}): ${script}\n${result.stderr}`);
  const time = /TIME ([\d.]+) ([\d.]+) ([\d.]+)/.exec(result.stderr);
  if (!time) throw new Error(`no timing: ${result.stderr}`);
  const sides = [...result.stderr.matchAll(/^DATAPATH (.*)$/gm)].map((match) => JSON.parse(match[1]!) as SideUsage);
  return { wall: Number(time[1]), cpuAll: Number(time[2]) + Number(time[3]), sides };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function driver(): Promise<void> {
  const mb = Number(process.env.DATAPATH_MB ?? '1024');
  const reps = Number(process.env.DATAPATH_REPS ?? '3');
  const root = mkdtempSync(join(tmpdir(), 'deploy-datapath-'));
  const shm = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/deploy-datapath-') : join(root, 'out');
  try {
    const tarFile = join(root, 'stream.tar');
    makeTar(root, tarFile, mb);
    const gib = statSync(tarFile).size / (1024 * MiB);
    const q = (path: string): string => `'${path.replaceAll("'", `'\\''`)}'`;
    const rows: Record<string, string> = {
      bare: `cat ${q(tarFile)} | cat | tar -x -C ${q(join(shm, 'bare'))}`,
      deploy: `node ${q(self)} writer ${q(tarFile)} | node ${q(self)} reader ${q(join(shm, 'deploy'))}`,
    };
    const results: Record<string, ReturnType<typeof runRow>[]> = { bare: [], deploy: [] };
    for (let rep = 0; rep < reps; rep += 1) {
      for (const [name, script] of Object.entries(rows)) {
        rmSync(join(shm, name), { recursive: true, force: true });
        mkdirSync(join(shm, name), { recursive: true });
        spawnSync('cat', [tarFile], { stdio: ['ignore', 'ignore', 'inherit'] }); // into the page cache
        results[name]!.push(runRow(script));
        rmSync(join(shm, name), { recursive: true, force: true });
      }
    }
    const perGiB = (value: number): string => (value / gib).toFixed(2);
    const lines = [
      `data path, ${(gib * 1024).toFixed(0)} MiB tar stream, ${reps} interleaved repetitions (medians), node ${process.version}, ${cpus()[0]?.model ?? 'cpu'}, ${availableParallelism()} cores, load ${loadavg()[0]!.toFixed(2)}`,
      '',
      '| row | wall s | CPU s all processes | CPU s/GiB writer (user+sys) | CPU s/GiB reader (user+sys) |',
      '|---|---|---|---|---|',
    ];
    for (const [name, runs] of Object.entries(results)) {
      const side = (which: string): string => {
        const values = runs.flatMap((run) => run.sides.filter((s) => s.side === which));
        if (values.length === 0) return '-';
        const pick = (key: 'cpu' | 'user' | 'system'): number => median(values.map((v) => v[key]));
        return `${perGiB(pick('cpu'))} (${perGiB(pick('user'))}+${perGiB(pick('system'))})`;
      };
      lines.push(
        `| ${name} | ${median(runs.map((r) => r.wall)).toFixed(2)} | ${median(runs.map((r) => r.cpuAll)).toFixed(2)} | ${side('writer')} | ${side('reader')} |`,
      );
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    rmSync(root, { recursive: true, force: true });
    rmSync(shm, { recursive: true, force: true });
  }
}

const [role, argument] = process.argv.slice(2);
if (role === 'writer') await writerSide(argument!);
else if (role === 'reader') await readerSide(argument!);
else await driver();
