// `npm run bench`: issue 11's targets, measured side by side on a two-host lab, every row run BENCH_REPS
// times (default 3) interleaved (rep 1 of every row, then rep 2, ...), the page cache dropped before each
// run, medians and spread reported. Written to bench/reports/<time>.md + .json (gitignored) and printed.
// Not a test: the numbers depend on the machine and its load (recorded with every run).
//
// Data: the notes sample app on host a with BENCH_SIZE_MB (default 1536) of uploads - one file of a
// quarter of it, the rest 100 KiB files - and a PostgreSQL database of BENCH_DB_MB (default 512). Rows:
// - migrate: `deploy migrate notes --to b --replace` over ssh (the bundle, as operators run it). Its
//   volume part (`volume:uploads`) and database part are timed from its reports: the part's time is the
//   longer of the source's (producer start to last byte written) and the target's (B record to consumer
//   exit, verified);
// - bare C1 / C2: `borg export-tar` of the same archive and volume | `ssh b tar -x`, ssh's default cipher
//   and `-c aes128-gcm@openssh.com`;
// - bare db: `borg extract --stdout` of the archive's dump | `ssh b pg_restore` into a fresh database;
// - scp by hand (export-tar > file, scp, tar -xf) against `deploy stream send --transport scp` (the
//   stream building block: a migration over scp stages its whole bundle the same way), staged bytes
//   measured as the peak growth of both hosts' TMPDIR;
// - RSS: VmHWM of the `deploy` processes on each host during every deploy row, plus `deploy stream send
//   --transport ssh` of BENCH_RSS_SMALL_MB (100) and BENCH_RSS_LARGE_MB (3072) zero bytes, in the first
//   repetition only (its framing is the same Node data path as a bundle part: pipe read, hash, frame,
//   pipe write);
// - `deploy --help` / `deploy list` start-up (bench/dist/startup.js).
// BENCH_ROWS limits the rows (comma list of row ids, see ROWS), BENCH_PIN=1 pins host a's processes to
// CPU 0 and host b's to CPU 1 (taskset on each sshd; what they start inherits it).
import { execFile, spawn, spawnSync } from 'node:child_process';
import { appendFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startLab, type Lab } from '@deploykit/testlab';
import { parseJournal, timeSteps } from './journal-steps.js';

const exec = promisify(execFile);
const reps = Number(process.env.BENCH_REPS ?? '3');
const sizeMb = Number(process.env.BENCH_SIZE_MB ?? '1536');
const dbMb = Number(process.env.BENCH_DB_MB ?? '512');
const rssSmallMb = Number(process.env.BENCH_RSS_SMALL_MB ?? '100');
const rssLargeMb = Number(process.env.BENCH_RSS_LARGE_MB ?? '3072');
const pin = process.env.BENCH_PIN === '1';
const bin = fileURLToPath(new URL('../../packages/deploy/bin/deploy.js', import.meta.url));
const reportsDir = fileURLToPath(new URL('../reports/', import.meta.url));
const GCM = 'aes128-gcm@openssh.com';
/** BENCH_RSS_TRACE=<file>: every sample's RSS of the deploy processes and both run records' steps, with times, appended there. */
const rssTrace = process.env.BENCH_RSS_TRACE;

/** One run of one row. */
interface Sample {
  row: string;
  rep: number;
  ok: boolean;
  seconds: number;
  /** Payload bytes the row moved (the volume's tar stream, the dump, ...). */
  bytes: number;
  /** Named sub-times of a migration (its parts), seconds. */
  parts?: Record<string, { seconds: number; bytes: number; sourceSeconds: number; targetSeconds: number }>;
  /** A migration's steps on each host (from both run records), ms. */
  steps?: { host: 'source' | 'target'; step: string; ms: number }[];
  /** Peak VmHWM of `deploy` per side, MiB. */
  rssMiB: { source: number; target: number };
  /** Peak growth of both hosts' TMPDIR during the run, bytes. */
  stagedBytes: number;
  /** CPU seconds of every lab process during the run, and of `deploy` alone. */
  cpu: { all: number; deploy: number };
  load: number;
  note?: string;
}

const samples: Sample[] = [];
const say = (line: string): void => void process.stderr.write(`bench: ${line}\n`);

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length === 0
    ? NaN
    : sorted.length % 2 === 1
      ? sorted[middle]!
      : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function dropCaches(): Promise<boolean> {
  const result = await exec('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']).then(
    () => true,
    () => false,
  );
  return result;
}

/** `deploy --config <lab> --host a ARGS`, asynchronously (the samplers keep running). */
function deploy(lab: Lab, args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, '--config', lab.deployConfigPath, '--host', 'a', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('close', (code) =>
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
  });
}

async function must(lab: Lab, host: string, command: string): Promise<string> {
  const result = await lab.ssh(host, command);
  if (result.exitCode !== 0)
    throw new Error(`${host}: ${command.slice(0, 200)}: exit ${result.exitCode}: ${result.stderr.slice(-2000)}`);
  return result.stdout;
}

/** Bytes under the hosts' temp dirs (where transports stage), by `du -sb`. */
async function tmpBytes(lab: Lab): Promise<number> {
  const { stdout } = await exec('du', ['-sbc', ...lab.hosts.map((host) => `${host.root}/tmp`)]).catch(() => ({
    stdout: '',
  }));
  return Number(/^(\d+)\s+total$/m.exec(stdout)?.[1] ?? 0);
}

/** The pids of the lab's sshd and PostgreSQL servers (lab.json). */
async function labDaemonPids(lab: Lab): Promise<Set<string>> {
  const record = JSON.parse(await readFile(join(lab.dir, 'lab.json'), 'utf8').catch(() => '{"hosts":[]}')) as {
    hosts: { pids: Record<string, { pid: number } | undefined> }[];
  };
  return new Set(
    record.hosts.flatMap((host) => Object.values(host.pids).flatMap((entry) => (entry ? [String(entry.pid)] : []))),
  );
}

/** CPU seconds (user + system) of a process so far, from /proc/<pid>/stat; undefined once it is gone. */
async function cpuSeconds(pid: string): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields.length > 13 ? (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS : undefined;
}
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/**
 * Samples, every 250 ms while a run goes: the VmHWM of the lab's `deploy` processes (by role: the
 * source side runs migrate or stream send, the target side receive), the CPU seconds of every process
 * of the lab (those whose environment carries the lab id - what the sshd sessions start on both hosts -
 * and the descendants of the lab's sshd and PostgreSQL servers; a process's last 250 ms before it exits
 * can be missed) and of `deploy` alone, and the hosts'
 * TMPDIR usage. CPU seconds hardly depend on how busy the machine is, wall times do.
 */
function startSampler(lab: Lab): {
  stop(): Promise<{
    rssMiB: { source: number; target: number };
    stagedBytes: number;
    cpu: { all: number; deploy: number };
  }>;
} {
  const rss = { source: 0, target: 0 };
  const roles = new Map<string, 'source' | 'target' | 'other' | null>();
  const firstCpu = new Map<string, number>();
  const lastCpu = new Map<string, number>();
  let firstRound = true;
  const daemons = labDaemonPids(lab);
  const parentOf = async (pid: string): Promise<string | undefined> => {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1];
  };
  const labDaemonDescendant = async (pid: string): Promise<boolean> => {
    const lab = await daemons;
    for (
      let current: string | undefined = pid, depth = 0;
      current !== undefined && current !== '0' && current !== '1' && depth < 32;
      depth += 1
    ) {
      if (lab.has(current)) return true;
      current = await parentOf(current);
    }
    return false;
  };
  let peakTmp = 0;
  let running = true;
  const base = tmpBytes(lab);
  const loop = (async () => {
    const baseBytes = await base;
    while (running) {
      for (const pid of await readdir('/proc').catch(() => [] as string[])) {
        if (!/^\d+$/.test(pid)) continue;
        let role = roles.get(pid);
        if (role === undefined) {
          const environ = await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '');
          role = null;
          // An ssh ControlMaster rewrites its title (`ssh: <control path> [mux]`), which wipes what
          // /proc shows of its environment: deploy's masters (scp's copy, the sessions' crypto) are
          // found by their control path inside the lab dir instead.
          const title = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
          const labMaster = title.startsWith('ssh: ') && title.includes('[mux]') && title.includes(lab.dir);
          // sshd's session processes (the ssh channel's crypto on the target) and PostgreSQL's backends
          // do not carry the lab's environment: they count by their parent, a lab sshd or postmaster.
          if (labMaster || (!environ.includes(lab.id) && (await labDaemonDescendant(pid)))) role = 'other';
          else if (environ.includes(lab.id)) {
            const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
            role = 'other';
            if (/deploy(\.js)?\0/.test(cmdline))
              role = /\0(receive)\0/.test(cmdline) ? 'target' : /\0(migrate|send)\0/.test(cmdline) ? 'source' : 'other';
          }
          roles.set(pid, role);
        }
        if (role === null) continue;
        const cpu = await cpuSeconds(pid);
        if (cpu === undefined) continue;
        if (!firstCpu.has(pid)) firstCpu.set(pid, firstRound ? cpu : 0);
        lastCpu.set(pid, cpu);
        if (role === 'other') continue;
        const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
        const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
        rss[role] = Math.max(rss[role], hwm);
        if (rssTrace) {
          const now = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
          await appendFile(
            rssTrace,
            `${new Date().toISOString()} ${role} ${pid} rss ${now.toFixed(1)} hwm ${hwm.toFixed(1)}\n`,
          );
        }
      }
      firstRound = false;
      peakTmp = Math.max(peakTmp, (await tmpBytes(lab)) - baseBytes);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      const cpu = { all: 0, deploy: 0 };
      for (const [pid, last] of lastCpu) {
        const used = last - (firstCpu.get(pid) ?? 0);
        cpu.all += used;
        if (roles.get(pid) === 'source' || roles.get(pid) === 'target') cpu.deploy += used;
      }
      return { rssMiB: rss, stagedBytes: Math.max(0, peakTmp), cpu };
    },
  };
}

interface RowRun {
  ok: boolean;
  bytes: number;
  note?: string;
  parts?: Sample['parts'];
  steps?: Sample['steps'];
  stagedBytes?: number;
}

/** Runs one row once: prepare (untimed), drop the page cache, run (timed, sampled), clean up (untimed). */
async function measure(
  lab: Lab,
  row: string,
  rep: number,
  run: () => Promise<RowRun>,
  prepare?: () => Promise<void>,
  cleanup?: () => Promise<void>,
): Promise<Sample> {
  await prepare?.();
  const dropped = await dropCaches();
  const load = loadavg()[0]!;
  const sampler = startSampler(lab);
  const started = process.hrtime.bigint();
  let outcome: RowRun;
  try {
    outcome = await run();
  } catch (error) {
    outcome = { ok: false, bytes: 0, note: (error as Error).message.slice(-400) };
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const sampled = await sampler.stop();
  await cleanup?.().catch((error: Error) => say(`cleanup of ${row}: ${error.message}`));
  const sample: Sample = {
    row,
    rep,
    ok: outcome.ok,
    seconds,
    bytes: outcome.bytes,
    ...(outcome.parts ? { parts: outcome.parts } : {}),
    ...(outcome.steps ? { steps: outcome.steps } : {}),
    rssMiB: sampled.rssMiB,
    stagedBytes: outcome.stagedBytes ?? sampled.stagedBytes,
    cpu: sampled.cpu,
    load,
    ...(outcome.note || !dropped
      ? { note: [outcome.note, dropped ? '' : 'page cache NOT dropped (not root?)'].filter(Boolean).join('; ') }
      : {}),
  };
  samples.push(sample);
  say(
    `${row} #${rep}: ${sample.ok ? 'ok' : 'FAILED'} ${seconds.toFixed(2)} s${sample.bytes ? `, ${(sample.bytes / 2 ** 20 / seconds).toFixed(1)} MiB/s` : ''}${
      sample.parts
        ? ` (${Object.entries(sample.parts)
            .map(([id, part]) => `${id} ${part.seconds.toFixed(2)} s`)
            .join(', ')})`
        : ''
    }, CPU ${sample.cpu.all.toFixed(1)} s (deploy ${sample.cpu.deploy.toFixed(1)} s), load ${load.toFixed(2)}${sample.note ? ` - ${sample.note}` : ''}`,
  );
  return sample;
}

/** Both hosts' steps of a migration, from their run records (the target's steps overlap the source's send). */
async function migrateSteps(
  lab: Lab,
  sourceJournal: string | undefined,
  targetJournal: string | undefined,
): Promise<NonNullable<Sample['steps']>> {
  const read = async (host: string, path: string | undefined): Promise<Record<string, unknown>[]> =>
    path === undefined ? [] : parseJournal(await must(lab, host, `cat ${path}`));
  const [source, target] = [await read('a', sourceJournal), await read('b', targetJournal)];
  if (rssTrace) {
    for (const [host, lines] of [
      ['a', source],
      ['b', target],
    ] as const)
      for (const line of lines)
        if (line.step !== undefined)
          await appendFile(rssTrace, `${String(line.time)} ${host} step ${String(line.step)} ${String(line.status)}\n`);
  }
  const zero = Date.parse(String(source[0]?.time ?? target[0]?.time));
  // The contents step's detail has its sub-times (listings, database settings): shown under it.
  return [...timeSteps('source', source, zero), ...timeSteps('target', target, zero)].flatMap(
    ({ host, step, from, to, detail }) => [
      { host, step, ms: to - from },
      ...Object.entries((detail?.phases ?? {}) as Record<string, number>).map(([phase, ms]) => ({
        host,
        step: `${step} / ${phase}`,
        ms,
      })),
    ],
  );
}

interface PartReport {
  id: string;
  bytes: number;
  elapsedMs: number;
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const lab = await startLab({ hosts: 2, fflTimeScale: 0 });
  const a = lab.host('a');
  const b = lab.host('b');
  const notes = `${a.appsRoot}/notes`;
  const borgEnv = `export BORG_REPO=${a.stateDir}/borg/notes BORG_BASE_DIR=${a.stateDir}/apps/notes/borg BORG_PASSCOMMAND='cat -- ${notes}/secrets/borg.pass' BORG_RELOCATED_REPO_ACCESS_IS_OK=yes;`;
  const sshB = `ssh -F ${lab.sshConfigPath}`;
  let archive = '';
  let volumeBytes = 0;
  let dumpBytes = 0;
  const environment: Record<string, unknown> = {};
  try {
    if (pin) {
      for (const [index, host] of lab.hosts.entries()) {
        const record = JSON.parse(await readFile(join(lab.dir, 'lab.json'), 'utf8')) as {
          hosts: { name: string; pids: { sshd?: { pid: number }; postgres?: { pid: number } } }[];
        };
        const pids = record.hosts.find((entry) => entry.name === host.name)?.pids;
        for (const pid of [pids?.sshd?.pid, pids?.postgres?.pid])
          if (pid) await exec('taskset', ['-a', '-p', '-c', String(index % availableParallelism()), String(pid)]);
      }
    }
    say(`lab ${lab.id} up; setting up notes on a: ${sizeMb} MiB uploads, ${dbMb} MiB database`);
    for (const args of [
      ['init', 'notes'],
      ['install', 'notes'],
    ]) {
      const result = await deploy(lab, args);
      if (result.code !== 0) throw new Error(`deploy ${args.join(' ')}: ${result.stderr.slice(-2000)}`);
    }
    // A quarter in one file: the notes app's health check downloads sampled uploads whole, and a 768 MiB
    // big.bin timed it out (and failed the migration) on a loaded machine.
    const bigMb = Math.floor(sizeMb / 4);
    const smallFiles = Math.floor(((sizeMb - bigMb) * 1024) / 100);
    await must(
      lab,
      'a',
      `cd ${notes}/data/uploads && head -c ${bigMb}M /dev/urandom > big.bin && python3 -c 'import os,sys\nfor i in range(1, int(sys.argv[1]) + 1):\n  open(f"p{i}.jpg", "wb").write(os.urandom(102400))' ${smallFiles}`,
    );
    // ~600 bytes of random hex per row (pg_dump -Fc compresses it about 2:1, as text columns do). In a
    // table of the app role's own, not in notes: the sample's /notes page lists every note, and the admin
    // login health check (GET /notes) timed out on a 512 MiB notes table (2026-12-02).
    const rows = Math.ceil((dbMb * 2 ** 20) / 720);
    await must(
      lab,
      'a',
      `psql -q -v ON_ERROR_STOP=1 -d notes -c "SET ROLE notes_app; CREATE TABLE bench_filler (id bigint PRIMARY KEY, body text NOT NULL); INSERT INTO bench_filler SELECT g, (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 18) i) FROM generate_series(1, ${rows}) g" -c "VACUUM ANALYZE bench_filler"`,
    );
    environment.databaseBytes = Number(
      (await must(lab, 'a', `psql -At -d notes -c "SELECT pg_database_size('notes')"`)).trim(),
    );
    const start = await deploy(lab, ['start', 'notes']);
    if (start.code !== 0) throw new Error(`deploy start notes: ${start.stderr.slice(-2000)}`);
    // A first backup, so every timed migration's backup deduplicates alike (borg create of unchanged data).
    const backup = await deploy(lab, ['backup', 'notes']);
    if (backup.code !== 0) throw new Error(`deploy backup notes: ${backup.stderr.slice(-2000)}`);
    // The bare rows read the archive of the latest successful migration; until one succeeded, this backup's.
    archive = (await must(lab, 'a', `${borgEnv} borg list --last 1 --short`)).trim();
    say(`set up (archive ${archive}); measuring`);

    const rowsWanted = new Set(
      (process.env.BENCH_ROWS ?? 'migrate,bare-c1,bare-c2,bare-db,scp-hand,scp-deploy,rss').split(',').filter(Boolean),
    );
    const volumeExport = (): string => `borg export-tar --strip-components=2 ::${archive} - data/uploads`;
    const dumpExtract = (): string => `borg extract --stdout ::${archive} db/notes.pgdump`;
    for (let rep = 1; rep <= reps; rep += 1) {
      // Always: the migration makes the archive the bare rows read.
      await measure(lab, 'migrate', rep, async () => {
        const result = await deploy(lab, ['migrate', 'notes', '--to', 'b', '--replace', '--json']);
        const report = JSON.parse(result.stdout || '{}') as {
          ok?: boolean;
          archive?: string;
          stagedBytes?: number;
          journal?: string;
          parts?: PartReport[];
          targetReport?: { parts?: PartReport[]; journal?: string };
          failure?: { message: string };
        };
        if (!report.archive || !report.parts?.length)
          return { ok: false, bytes: 0, note: report.failure?.message ?? result.stderr.slice(-400) };
        const parts: NonNullable<Sample['parts']> = {};
        for (const part of report.parts ?? []) {
          const target = report.targetReport?.parts?.find((entry) => entry.id === part.id);
          const sourceSeconds = part.elapsedMs / 1000;
          const targetSeconds = (target?.elapsedMs ?? 0) / 1000;
          parts[part.id] = {
            bytes: part.bytes,
            sourceSeconds,
            targetSeconds,
            seconds: Math.max(sourceSeconds, targetSeconds),
          };
        }
        // A migration that failed after its parts arrived (e.g. a health check timing out on a loaded
        // machine) still measured them: its part times count, its whole time does not.
        if (parts['volume:uploads'] === undefined || parts.database === undefined)
          return { ok: false, bytes: 0, note: report.failure?.message ?? result.stderr.slice(-400) };
        archive = report.archive;
        volumeBytes = parts['volume:uploads'].bytes;
        const steps = await migrateSteps(lab, report.journal, report.targetReport?.journal);
        dumpBytes = parts.database.bytes;
        return {
          ok: report.ok === true,
          bytes: 0,
          parts,
          steps,
          stagedBytes: report.stagedBytes ?? 0,
          ...(report.ok ? {} : { note: `failed after its parts: ${report.failure?.message ?? '?'}` }),
        };
      });
      if (volumeBytes === 0) {
        // No migration succeeded yet: the bare rows still need the tar stream's and the dump's sizes.
        volumeBytes = Number((await must(lab, 'a', `${borgEnv} ${volumeExport()} | wc -c`)).trim());
        dumpBytes = Number((await must(lab, 'a', `${borgEnv} ${dumpExtract()} | wc -c`)).trim());
      }
      const into = `${b.root}/bench-into`;
      const rmInto = async (): Promise<void> => void (await must(lab, 'b', `rm -rf ${into}`));
      const mkInto = async (): Promise<void> => void (await must(lab, 'b', `rm -rf ${into} && mkdir -p ${into}`));
      const bare = (cipher?: string) => async (): Promise<RowRun> => {
        const result = await lab.ssh(
          'a',
          `${borgEnv} set -o pipefail; ${volumeExport()} | ${sshB}${cipher ? ` -c ${cipher}` : ''} b tar -x -C ${into}`,
        );
        return {
          ok: result.exitCode === 0,
          bytes: volumeBytes,
          ...(result.exitCode === 0 ? {} : { note: result.stderr.slice(-300) }),
        };
      };
      if (rowsWanted.has('bare-c1')) await measure(lab, 'bare-c1', rep, bare(), mkInto, rmInto);
      if (rowsWanted.has('bare-c2')) await measure(lab, 'bare-c2', rep, bare(GCM), mkInto, rmInto);
      if (rowsWanted.has('bare-db')) {
        await measure(
          lab,
          'bare-db',
          rep,
          async () => {
            const result = await lab.ssh(
              'a',
              `${borgEnv} set -o pipefail; ${dumpExtract()} | ${sshB} b pg_restore --exit-on-error --no-password --no-owner --no-acl --dbname=bench_restore`,
            );
            return {
              ok: result.exitCode === 0,
              bytes: dumpBytes,
              ...(result.exitCode === 0 ? {} : { note: result.stderr.slice(-300) }),
            };
          },
          async () => void (await must(lab, 'b', 'dropdb --if-exists bench_restore && createdb bench_restore')),
          async () => void (await must(lab, 'b', 'dropdb --if-exists bench_restore')),
        );
      }
      if (rowsWanted.has('scp-hand')) {
        await measure(
          lab,
          'scp-hand',
          rep,
          async () => {
            const result = await lab.ssh(
              'a',
              `${borgEnv} set -e; ${volumeExport()} > ${a.root}/tmp/bench.tar; scp -q -B -F ${lab.sshConfigPath} ${a.root}/tmp/bench.tar b:${b.root}/tmp/bench.tar; ${sshB} b 'tar -x -C ${into} -f ${b.root}/tmp/bench.tar && rm -f ${b.root}/tmp/bench.tar'; rm -f ${a.root}/tmp/bench.tar`,
            );
            return {
              ok: result.exitCode === 0,
              bytes: volumeBytes,
              ...(result.exitCode === 0 ? {} : { note: result.stderr.slice(-300) }),
            };
          },
          mkInto,
          async () => {
            await rmInto();
            await lab.ssh('a', `rm -f ${a.root}/tmp/bench.tar`);
            await lab.ssh('b', `rm -f ${b.root}/tmp/bench.tar`);
          },
        );
      }
      if (rowsWanted.has('scp-deploy')) {
        const producer = JSON.stringify([
          'borg',
          'export-tar',
          '--strip-components=2',
          `::${archive}`,
          '-',
          'data/uploads',
        ]);
        await measure(
          lab,
          'scp-deploy',
          rep,
          async () => {
            const result = await lab.ssh(
              'a',
              `${borgEnv} deploy stream send -q --name bench --transport scp --to b --estimated-bytes ${volumeBytes} --producer '${producer}' --into ${into}`,
            );
            return {
              ok: result.exitCode === 0,
              bytes: volumeBytes,
              ...(result.exitCode === 0 ? {} : { note: result.stderr.slice(-300) }),
            };
          },
          rmInto,
          rmInto,
        );
      }
      // RSS is a peak, not a median: one run of each size is enough (a 3 GiB run costs a minute or more).
      if (rowsWanted.has('rss') && rep === 1) {
        for (const mb of [rssSmallMb, rssLargeMb]) {
          const producer = JSON.stringify(['head', '-c', `${mb}M`, '/dev/zero']);
          const consumer = JSON.stringify(['sh', '-c', 'cat > /dev/null']);
          await measure(lab, `rss-${mb}`, rep, async () => {
            const result = await lab.ssh(
              'a',
              `deploy stream send -q --name rss --transport ssh --to b --producer '${producer}' --consumer '${consumer}'`,
            );
            return {
              ok: result.exitCode === 0,
              bytes: mb * 2 ** 20,
              ...(result.exitCode === 0 ? {} : { note: result.stderr.slice(-300) }),
            };
          });
        }
      }
    }
  } finally {
    await lab.down();
  }
  const startup = spawnSync(process.execPath, [fileURLToPath(new URL('./startup.js', import.meta.url))], {
    encoding: 'utf8',
    env: { ...process.env, STARTUP_RUNS: process.env.STARTUP_RUNS ?? '7' },
  });
  const startupText = startup.stdout.trim();
  const startupMedian = (name: string): number =>
    Number(new RegExp(`\\| ${name.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')} \\| (\\d+)`).exec(startupText)?.[1] ?? NaN);
  write(startedAt, environment, volumeBytes, dumpBytes, startupText, {
    help: startupMedian('deploy --help'),
    list: startupMedian('deploy list (no apps)'),
  });
}

function write(
  startedAt: Date,
  environment: Record<string, unknown>,
  volumeBytes: number,
  dumpBytes: number,
  startupText: string,
  startup: { help: number; list: number },
): void {
  const of = (row: string): Sample[] => samples.filter((sample) => sample.row === row && sample.ok);
  const partSeconds = (id: string): number[] =>
    samples
      .filter((sample) => sample.row === 'migrate')
      .map((sample) => sample.parts?.[id]?.seconds ?? NaN)
      .filter((value) => !Number.isNaN(value));
  const stat = (values: number[]): { median: number; min: number; max: number; n: number } => ({
    median: median(values),
    min: Math.min(...values),
    max: Math.max(...values),
    n: values.length,
  });
  const rows: {
    id: string;
    what: string;
    seconds: ReturnType<typeof stat>;
    bytes: number;
    rss?: string;
    staged?: number;
    cpu?: string;
  }[] = [];
  const cpuOf = (list: Sample[]): string =>
    `${median(list.map((sample) => sample.cpu.all)).toFixed(1)} / ${median(list.map((sample) => sample.cpu.deploy)).toFixed(1)}`;
  const rssOf = (list: Sample[]): string =>
    `${Math.max(0, ...list.map((sample) => sample.rssMiB.source)).toFixed(0)} / ${Math.max(0, ...list.map((sample) => sample.rssMiB.target)).toFixed(0)}`;
  const stagedOf = (list: Sample[]): number => Math.max(0, ...list.map((sample) => sample.stagedBytes));
  const add = (id: string, what: string, values: number[], bytes: number, list?: Sample[]): void => {
    if (values.length === 0) return;
    rows.push({
      id,
      what,
      seconds: stat(values),
      bytes,
      ...(list ? { rss: rssOf(list), staged: stagedOf(list), cpu: cpuOf(list) } : {}),
    });
  };
  add(
    'bare-c1',
    '`borg export-tar | ssh b tar -x` (C1: ssh default cipher)',
    of('bare-c1').map((s) => s.seconds),
    volumeBytes,
    of('bare-c1'),
  );
  add(
    'bare-c2',
    `same with \`-c ${GCM}\` (C2)`,
    of('bare-c2').map((s) => s.seconds),
    volumeBytes,
    of('bare-c2'),
  );
  add(
    'volume',
    '`deploy migrate`: part volume:uploads (bundle over ssh)',
    partSeconds('volume:uploads'),
    volumeBytes,
    of('migrate'),
  );
  add(
    'bare-db',
    '`borg extract --stdout <dump> | ssh b pg_restore`',
    of('bare-db').map((s) => s.seconds),
    dumpBytes,
    of('bare-db'),
  );
  add(
    'database',
    '`deploy migrate`: part database (bundle over ssh)',
    partSeconds('database'),
    dumpBytes,
    of('migrate'),
  );
  add(
    'scp-hand',
    'by hand: export-tar > file; scp; ssh b tar -xf',
    of('scp-hand').map((s) => s.seconds),
    volumeBytes,
    of('scp-hand'),
  );
  add(
    'scp-deploy',
    '`deploy stream send --transport scp` (same volume)',
    of('scp-deploy').map((s) => s.seconds),
    volumeBytes,
    of('scp-deploy'),
  );
  add(
    'migrate',
    '`deploy migrate notes --to b --replace` (whole)',
    of('migrate').map((s) => s.seconds),
    0,
    of('migrate'),
  );
  for (const mb of [rssSmallMb, rssLargeMb])
    add(
      `rss-${mb}`,
      `\`deploy stream send --transport ssh\`, ${mb} MiB (RSS)`,
      of(`rss-${mb}`).map((s) => s.seconds),
      mb * 2 ** 20,
      of(`rss-${mb}`),
    );
  const byId = new Map(rows.map((row) => [row.id, row]));
  const rate = (id: string): number => {
    const row = byId.get(id);
    return row && row.bytes > 0 ? row.bytes / row.seconds.median : NaN;
  };
  const ratio = (numerator: string, denominator: string): number => rate(numerator) / rate(denominator);
  const timeRatio = (row: string, reference: string): number =>
    (byId.get(row)?.seconds.median ?? NaN) / (byId.get(reference)?.seconds.median ?? NaN);
  const migrateRatio =
    (byId.get('migrate')?.seconds.median ?? NaN) /
    ((byId.get('bare-c1')?.seconds.median ?? NaN) + (byId.get('bare-db')?.seconds.median ?? NaN));
  const rssSmall = byId.get(`rss-${rssSmallMb}`)?.rss;
  const rssLarge = byId.get(`rss-${rssLargeMb}`)?.rss;
  const allRss = samples
    .filter((sample) => sample.row === 'migrate' || sample.row.startsWith('rss-') || sample.row === 'scp-deploy')
    .flatMap((sample) => [sample.rssMiB.source, sample.rssMiB.target]);
  const streamingStaged = Math.max(
    0,
    ...of('migrate').map((s) => s.stagedBytes),
    ...samples.filter((s) => s.row.startsWith('rss-')).map((s) => s.stagedBytes),
  );
  // A comparison whose rows did not run (BENCH_ROWS) or failed is NaN: not run, neither met nor missed.
  const yes = (met: boolean, value = 0): string => (Number.isNaN(value) ? 'not run' : met ? 'yes' : '**NO**');
  const x = (value: number): string => (Number.isNaN(value) ? '-' : `${value.toFixed(2)}x`);
  const targets = [
    [
      'volume over ssh vs bare C1',
      '>= 1.05x',
      x(ratio('volume', 'bare-c1')),
      yes(ratio('volume', 'bare-c1') >= 1.05, ratio('volume', 'bare-c1')),
    ],
    [
      'volume over ssh vs bare C2',
      '>= 0.95x',
      x(ratio('volume', 'bare-c2')),
      yes(ratio('volume', 'bare-c2') >= 0.95, ratio('volume', 'bare-c2')),
    ],
    [
      'database part vs bare pg_restore pipeline (time)',
      '<= 1.10x',
      x(timeRatio('database', 'bare-db')),
      yes(timeRatio('database', 'bare-db') <= 1.1, timeRatio('database', 'bare-db')),
    ],
    [
      'scp mode vs scp by hand (time)',
      '<= 1.10x',
      x(timeRatio('scp-deploy', 'scp-hand')),
      yes(timeRatio('scp-deploy', 'scp-hand') <= 1.1, timeRatio('scp-deploy', 'scp-hand')),
    ],
    [
      'streaming rows: staged bytes (peak TMPDIR growth, both hosts)',
      '0',
      `${(streamingStaged / 2 ** 20).toFixed(1)} MiB`,
      yes(streamingStaged < 2 ** 20),
    ],
    [
      'deploy RSS source / target, MiB',
      '< 150, flat',
      `all rows max ${Math.max(0, ...allRss).toFixed(0)}; ${rssSmallMb} MiB: ${rssSmall ?? '-'}, ${rssLargeMb} MiB: ${rssLarge ?? '-'}`,
      yes(Math.max(0, ...allRss) < 150),
    ],
    ['whole migrate / (bare C1 + bare db)', 'reported', x(migrateRatio), ''],
    [
      '`deploy --help` / `deploy list` start, median ms',
      '< 300',
      `${startup.help} / ${startup.list}`,
      yes(startup.help < 300 && startup.list < 300),
    ],
  ];
  const fmt = (value: number): string => value.toFixed(2);
  const loads = samples.map((sample) => sample.load);
  const md = [
    `# Migration wire-speed bench (${startedAt.toISOString()})`,
    '',
    `Machine: ${cpus()[0]?.model ?? '?'}, ${availableParallelism()} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}; both lab hosts share it${pin ? ' (pinned: host a on CPU 0, host b on CPU 1)' : ' (unpinned)'}. Load average (1 min) at the start of the runs: median ${fmt(median(loads))}, ${fmt(Math.min(...loads))}-${fmt(Math.max(...loads))}.`,
    `Data: notes app, ${sizeMb} MiB uploads (one ${Math.floor(sizeMb / 4)} MiB file, the rest 100 KiB files; tar stream ${(volumeBytes / 2 ** 20).toFixed(1)} MiB), database ${((Number(environment.databaseBytes) || 0) / 2 ** 20).toFixed(0)} MiB (dump ${(dumpBytes / 2 ** 20).toFixed(1)} MiB). ${reps} repetitions of every row, interleaved, page cache dropped before each run.`,
    '',
    '| row | what | median s | min-max s | MiB/s (median) | CPU s all / deploy | deploy RSS source / target MiB | staged MiB |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (row) =>
        `| ${row.id} | ${row.what.replace(/\|/g, '\\|')} | ${fmt(row.seconds.median)} | ${fmt(row.seconds.min)}-${fmt(row.seconds.max)} | ${row.bytes > 0 ? (row.bytes / 2 ** 20 / row.seconds.median).toFixed(1) : '-'} | ${row.id === 'volume' || row.id === 'database' ? '(whole migrate)' : (row.cpu ?? '-')} | ${row.id.startsWith('bare') || row.id === 'scp-hand' ? '-' : (row.rss ?? '-')} | ${row.id === 'scp-hand' ? `${((2 * volumeBytes) / 2 ** 20).toFixed(0)} (a file on each host)` : ((row.staged ?? 0) / 2 ** 20).toFixed(0)} |`,
    ),
    '',
    '| target | wanted | measured | met |',
    '|---|---|---|---|',
    ...targets.map((cells) => `| ${cells.join(' | ')} |`),
    '',
    ...stepTable(samples.filter((sample) => sample.row === 'migrate' && sample.ok && sample.steps)),
    "CPU s: CPU seconds of every process of the lab during the run (borg, ssh, sshd, tar, pg_restore, PostgreSQL, deploy) and of `deploy` alone, medians; they depend far less on the machine's load than the times do. Part times of a migration are the longer of the source's (producer start to its last byte written into the bundle) and the target's (its B record to the consumer's exit, verified). Failed runs are left out of the medians:",
    ...samples
      .filter((sample) => !sample.ok)
      .map((sample) => `- ${sample.row} #${sample.rep}: ${sample.note ?? 'failed'}`),
    '',
    startupText,
    '',
  ].join('\n');
  process.stdout.write(`${md}\n`);
  void mkdir(reportsDir, { recursive: true }).then(async () => {
    const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
    await writeFile(join(reportsDir, `${stamp}.md`), md);
    await writeFile(
      join(reportsDir, `${stamp}.json`),
      `${JSON.stringify({ startedAt, reps, sizeMb, dbMb, pin, environment, volumeBytes, dumpBytes, rows, targets, samples, startup }, null, 2)}\n`,
    );
    process.stdout.write(`report: bench/reports/${stamp}.md\n`);
  });
}

/**
 * Where a whole migration's time goes: the median of every step of each host over the successful
 * runs, in the order the steps first ran. The target's steps run while the source sends, so the
 * columns do not add up to the whole.
 */
function stepTable(runs: readonly Sample[]): string[] {
  if (runs.length === 0) return [];
  const order: string[] = [];
  const times = new Map<string, number[]>();
  for (const run of runs) {
    for (const { host, step, ms } of run.steps ?? []) {
      const key = `${host === 'source' ? 'a' : 'b'}: ${step}`;
      if (!times.has(key)) {
        times.set(key, []);
        order.push(key);
      }
      times.get(key)!.push(ms);
    }
  }
  const whole = median(runs.map((run) => run.seconds));
  return [
    `Where a whole \`deploy migrate\` spends its ${whole.toFixed(1)} s (median of ${runs.length} successful runs; steps of 0.1 s and more, from both hosts' run records; a: the source, b: the target, whose steps run while a sends):`,
    '',
    '| host: step | median s |',
    '|---|---|',
    ...order
      .filter((key) => median(times.get(key)!) >= 100)
      .map((key) => `| ${key} | ${(median(times.get(key)!) / 1000).toFixed(1)} |`),
    '',
  ];
}

await main();
