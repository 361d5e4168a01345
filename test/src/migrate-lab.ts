// Shared by the migrate end-to-end tests: run `deploy migrate` on lab host a, read its report and both
// run records, find the lab's processes per host through /proc (all lab hosts share this kernel), and
// find everything a run left on a host by its run id.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import type { Lab } from '@deploykit/testlab';
import { controlDirFits, controlDirParents } from '@deploykit/host';
import { labShell, runDeploy, runOrThrow, type DbFingerprint, type DeployRun, type Shell } from './helpers/index.js';

/** The guestbook fixture app (MariaDB) in the source tree. */
export const GUESTBOOK_DIR = fileURLToPath(new URL('../fixtures/guestbook', import.meta.url));

/** The target-side report fields the tests read. */
export interface TargetReportJson {
  ok: boolean;
  runId: string;
  journal?: string;
  parts: { id: string; status: string; bytes: number }[];
  verification: { ok: boolean; checks: { name: string; ok: boolean; detail: string }[]; problems: string[] };
  failure?: { step: string; stage: string; kind: string; code: string; message: string; retryable: boolean };
  rolledBack: string[];
  rollbackFailed: string[];
  kept: string[];
  recovered: { runId: string; outcome: string; keptParts: string[] }[];
  reused?: { fromRun: string; parts: string[] };
  plan?: { id: string; kind: string; title: string; commands: string[][] }[];
}

/** The MigrateReport fields the tests read. */
export interface MigrateReportJson {
  ok: boolean;
  runId: string;
  archive: string;
  journal: string;
  transport: string;
  attempts: number;
  stagedBytes: number;
  parts: {
    id: string;
    status: 'sent' | 'reused';
    bytes: number;
    wireBytes?: number;
    elapsedMs: number;
    rate: number;
    path: string;
    attempts: number;
  }[];
  reused?: { fromRun: string; parts: string[] };
  targetReport?: TargetReportJson;
  targetRecovery?: { ok: boolean; recovered: { runId: string; outcome: string; keptParts: string[] }[] };
  failure?: { step: string; kind: string; code: string; message: string; hint?: string; stage?: string };
  archives?: {
    keep: number;
    pruned: string[];
    kept: string[];
    protected: string[];
    compacted: boolean;
    error?: string;
  };
}

/** One line of a source run record. */
export interface JournalLine {
  step: string;
  status: string;
  argv?: string;
  detail?: { steps?: { id: string; argv: string }[]; [key: string]: unknown };
}

/** One line of a target run record. */
export interface TargetJournalLine {
  t: string;
  step?: string;
  status?: string;
  argv?: string;
  steps?: { id: string; kind: string; title: string; commands: string[] }[];
  outcome?: string;
  part?: string;
}

/** Runs `deploy --host a <args>` against the lab (the migrate runs on host a over ssh). */
export function deployOnA(lab: Lab, args: readonly string[], timeoutMs = 300_000): Promise<DeployRun> {
  return runDeploy(['--config', lab.deployConfigPath, '--host', 'a', ...args], { timeoutMs });
}

/** Asserts an exit code, showing the run's output when it differs. */
export function assertExit(run: DeployRun, expected: number, what: string): void {
  assert.equal(
    run.exitCode,
    expected,
    `${what}: exit ${run.exitCode}, expected ${expected}\n--- stdout\n${run.stdout.slice(-4000)}\n--- stderr\n${run.stderr.slice(-4000)}`,
  );
}

/** Parses a `migrate --json` report, showing the output when it is not JSON. */
export function parseReport(run: DeployRun): MigrateReportJson {
  try {
    return JSON.parse(run.stdout) as MigrateReportJson;
  } catch {
    throw new Error(
      `migrate --json printed no JSON (exit ${run.exitCode})\n--- stdout\n${run.stdout.slice(-3000)}\n--- stderr\n${run.stderr.slice(-3000)}`,
    );
  }
}

/** Reads a run record (the lab's folders are on this machine). */
export async function readJournal(path: string): Promise<JournalLine[]> {
  return (await readFile(path, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as JournalLine);
}

/** Reads a target-side run record. */
export async function readTargetJournal(path: string): Promise<TargetJournalLine[]> {
  return (await readFile(path, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as TargetJournalLine);
}

/** A process of a lab host: its pid, parent, argv and environment. */
export interface LabProcess {
  pid: number;
  ppid: number;
  host: string;
  argv: string[];
  environ: string[];
}

function readProcess(pid: string): { ppid: number; environ: string[]; argv: string[] } | undefined {
  try {
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter((word, index, all) => word !== '' || index < all.length - 1);
    return { ppid, environ, argv };
  } catch {
    return undefined; // gone meanwhile, or a kernel thread
  }
}

/** Lists the processes of lab `lab` (environment DEPLOY_LAB_ID) with their host (DEPLOY_HOST_NAME). */
export function listLabProcesses(lab: Lab): LabProcess[] {
  const found: LabProcess[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const process = readProcess(name);
    if (!process?.environ.includes(`DEPLOY_LAB_ID=${lab.id}`)) continue;
    const host =
      process.environ.find((entry) => entry.startsWith('DEPLOY_HOST_NAME='))?.slice('DEPLOY_HOST_NAME='.length) ?? '';
    found.push({ pid: Number(name), host, ...process });
  }
  return found;
}

/** Polls until `find` returns a process (every 25 ms), or throws after `timeoutMs`. */
export async function waitForProcess(
  lab: Lab,
  find: (process: LabProcess) => boolean,
  timeoutMs: number,
  what: string,
): Promise<LabProcess> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const match = listLabProcesses(lab).find(find);
    if (match) return match;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`no ${what} appeared within ${timeoutMs} ms`);
}

/** True for an ffl process: the real `ffl`, or the stand-in (`node .../ffl-standin/bin/../dist/main.js`, or its bash wrapper). */
export function isFfl(process: LabProcess): boolean {
  return process.argv.some((word) => /(^|\/)ffl$|\/ffl-standin\/(bin\/\.\.\/)?dist\/main\.js$/.test(word));
}

/**
 * Samples the lab's processes every 40 ms until `stop()`, which resolves with every distinct
 * (pid, argv) seen: short-lived processes (an ffl download, a psql) are caught while they run.
 */
export function sampleLabProcesses(lab: Lab): { stop(): Promise<LabProcess[]> } {
  const sampled = new Map<string, LabProcess>();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      for (const process of listLabProcesses(lab)) sampled.set(`${process.pid} ${process.argv.join(' ')}`, process);
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
  })();
  return {
    async stop() {
      sampling = false;
      await sampler;
      return [...sampled.values()];
    },
  };
}

/** True for the target-side run `deploy receive <app>` (the node process: `node .../deploy receive <app> ...`). */
export function isTargetRun(process: LabProcess, app: string): boolean {
  const at = process.argv.indexOf('receive');
  return at > 1 && process.argv[at + 1] === app && /\/deploy(\.js)?$/.test(process.argv[at - 1] ?? '');
}

/**
 * The sessions but the `deploy --version` the source runs on the target before anything moves (the
 * version check of decision 0009, one short command over the same ssh master): what carried the migration.
 */
export function withoutVersionChecks(sessions: readonly LabProcess[]): LabProcess[] {
  // Sampled as node running deploy's bin, or still as the login shell's `... && exec deploy --version`.
  return sessions.filter((session) => !/(^|[\s/])deploy(\.js)?\s+--version$/.test(session.argv.join(' ')));
}

/** True when a process's parent is an sshd: the command of one ssh session. */
function isSessionCommand(process: LabProcess): boolean {
  try {
    return readFileSync(`/proc/${process.ppid}/comm`, 'utf8').trim() === 'sshd';
  } catch {
    return false;
  }
}

/**
 * Watches a host while `work` runs and counts the ssh sessions that ran a command there: every
 * session's command is a child of an sshd process (sampled every 20 ms).
 */
export async function countSessions<T>(
  lab: Lab,
  host: string,
  work: () => Promise<T>,
): Promise<{ result: T; sessions: LabProcess[] }> {
  const seen = new Map<number, LabProcess>();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      for (const process of listLabProcesses(lab))
        if (process.host === host && isSessionCommand(process)) seen.set(process.pid, process);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  try {
    return { result: await work(), sessions: [...seen.values()] };
  } finally {
    sampling = false;
    await sampler;
  }
}

/** The lower-case, underscore form of a run id that database names carry (`dk_<run>_stage`). */
function databaseRunTag(runId: string): string {
  return runId.toLowerCase().replace(/[^a-z0-9]/g, '_');
}

/**
 * Everything a migration run left on a host, found by its run id (and the ids of its retries,
 * `<run>-2`, ...): processes whose environment carries DEPLOY_RUN_ID=<run>, paths in the apps root,
 * state dir and temp dir whose names carry it, PostgreSQL databases named after it, and a lock held
 * in its name. Kept verified parts (a resume) show up as their staging root and database.
 */
export async function findRunLeftovers(
  lab: Lab,
  host: string,
  runId: string,
  options: { postgres?: boolean; mariadb?: boolean; shell?: Shell } = {},
): Promise<string[]> {
  const target = lab.host(host);
  const found: string[] = [];
  const ofRun = (text: string): boolean => text.includes(runId);
  for (const process of listLabProcesses(lab)) {
    if (process.host !== host) continue;
    const run =
      process.environ.find((entry) => entry.startsWith('DEPLOY_RUN_ID='))?.slice('DEPLOY_RUN_ID='.length) ?? '';
    if (run === runId || run.startsWith(`${runId}-`)) found.push(`process ${process.pid}: ${process.argv.join(' ')}`);
  }
  const walk = (dir: string, depth: number): void => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (ofRun(entry.name) && !/\.(jsonl|log)$/.test(entry.name)) found.push(`path ${path}`);
      else if (entry.isDirectory() && depth > 0) walk(path, depth - 1);
    }
  };
  walk(target.appsRoot, 1);
  walk(`${target.root}/tmp`, 1);
  // This host's ssh control dirs go to /tmp or /run/user/<uid> when its TMPDIR is too long for a socket path.
  if (!controlDirFits(`${target.root}/tmp/dk-${runId}-cm-XXXXXX`)) for (const dir of controlDirParents()) walk(dir, 0);
  walk(`${target.stateDir}/borg`, 1);
  walk(`${target.stateDir}/apps`, 2);
  const lockDir = `${target.stateDir}/locks`;
  if (existsSync(lockDir)) {
    for (const name of readdirSync(lockDir))
      if (ofRun(readFileSync(`${lockDir}/${name}`, 'utf8'))) found.push(`lock ${lockDir}/${name}`);
  }
  const tag = databaseRunTag(runId);
  if (options.postgres !== false) {
    const databases = await runOrThrow(
      options.shell ?? labShell(lab, host),
      `psql -X -At -d postgres -c "SELECT datname FROM pg_database WHERE datname LIKE 'dk\\_%'"`,
    );
    for (const name of databases.split('\n').filter(Boolean)) if (name.includes(tag)) found.push(`database ${name}`);
  }
  if (options.mariadb === true) {
    const schemas = await runOrThrow(
      options.shell ?? labShell(lab, host),
      `mysql --batch --skip-column-names -e "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'dk\\_%'"`,
    );
    for (const name of schemas.split('\n').filter(Boolean)) if (name.includes(tag)) found.push(`database ${name}`);
  }
  return found;
}

/** Every text file under `dir` except Borg repositories and caches (encrypted or binary chunk stores). */
export function readStateFiles(dir: string): { path: string; text: string }[] {
  const files: { path: string; text: string }[] = [];
  const walk = (current: string): void => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'borg') walk(path);
      } else if (entry.isFile() && statSync(path).size < 32 * 1024 * 1024)
        files.push({ path, text: readFileSync(path, 'latin1') });
    }
  };
  if (existsSync(dir)) walk(dir);
  return files;
}

/** True when `text` holds `secret`; a 6-digit pickup code counts only where it is not part of a longer number. */
export function containsSecret(text: string, secret: string): boolean {
  if (/^\d+$/.test(secret)) return new RegExp(`(^|[^0-9:])${secret}($|[^0-9])`).test(text);
  return text.includes(secret);
}

/** An operator's terminal on a lab host: `ssh -tt` (a pty there), what it printed, keys typed into it. */
export interface TerminalSession {
  /** Resolves with the first match of `pattern` in the output (ANSI colours and CRs removed). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Types into the terminal (`\r` is Enter, `\u0003` Ctrl+C). */
  type(text: string): void;
  output(): string;
  /** The remote command's exit code (ssh passes it on). */
  readonly done: Promise<number>;
  /** Hangs up (the local ssh client killed; the remote side sees its terminal go) and waits for the end. */
  hangUp(): Promise<number>;
}

/** Opens `ssh -tt` to a lab host running `command` in a pty (with the lab's key, or `identity`). */
export function openTerminal(
  lab: Lab,
  host: string,
  command: string,
  options: { identity?: string; echo?: (text: string) => void } = {},
): TerminalSession {
  lab.host(host);
  const child = spawn(
    'ssh',
    ['-F', lab.sshConfigPath, '-tt', ...(options.identity ? ['-i', options.identity] : []), host, '--', command],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let text = '';
  const waiters: { pattern: RegExp; resolve: (match: RegExpMatchArray) => void }[] = [];
  const clean = (raw: string): string => raw.replace(/\u001b\[[0-9;]*[A-Za-z]/g, '').replace(/\r/g, '');
  const onData = (chunk: Buffer): void => {
    options.echo?.(chunk.toString('utf8'));
    text += clean(chunk.toString('utf8'));
    for (const waiter of [...waiters]) {
      const match = text.match(waiter.pattern);
      if (match) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(match);
      }
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  child.stdin.on('error', () => undefined);
  const done = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 255)));
  return {
    waitFor(pattern, timeoutMs = 180_000) {
      const match = text.match(pattern);
      if (match) return Promise.resolve(match);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `no output matching ${pattern} within ${timeoutMs} ms on ${host}; so far:\n${text.slice(-3000)}`,
              ),
            ),
          timeoutMs,
        );
        waiters.push({
          pattern,
          resolve: (found) => {
            clearTimeout(timer);
            resolve(found);
          },
        });
        void done.then(() =>
          setTimeout(() => {
            const at = waiters.findIndex((waiter) => waiter.pattern === pattern);
            if (at < 0) return;
            waiters.splice(at, 1);
            clearTimeout(timer);
            reject(
              new Error(
                `the session on ${host} ended without output matching ${pattern}; it printed:\n${text.slice(-3000)}`,
              ),
            );
          }, 200),
        );
      });
    },
    type: (keys) => void child.stdin.write(keys),
    output: () => text,
    done,
    hangUp() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return done;
    },
  };
}

/**
 * The notes database as a migration must carry it: the app's own health check logs in on the target
 * (a session row, a fresh scrypt salt in users.password_hash, a users_id_seq value used by its upsert),
 * so users are compared by count and sessions not at all; everything else must be identical.
 */
export function comparableNotesDb(fingerprint: DbFingerprint): unknown {
  const { 'public.sessions': _sessions, 'public.users': users, ...tables } = fingerprint.tables;
  return {
    columns: fingerprint.columnsMd5,
    tables,
    users: users?.rows,
    notesSequence: fingerprint.sequences['public.notes_id_seq'],
  };
}
