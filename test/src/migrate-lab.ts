// Shared by the migrate end-to-end tests: run `deploy migrate` on lab host a, read its report and both
// run records, find the lab's processes per host through /proc (all lab hosts share this kernel), and
// find everything a run left on a host by its run id.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import type { Lab } from '@deploykit/testlab';
import { labShell, runDeploy, runOrThrow, type DeployRun } from './helpers/index.js';

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
  parts: { id: string; status: 'sent' | 'reused'; bytes: number; elapsedMs: number; rate: number; path: string; attempts: number }[];
  reused?: { fromRun: string; parts: string[] };
  targetReport?: TargetReportJson;
  targetRecovery?: { ok: boolean; recovered: { runId: string; outcome: string; keptParts: string[] }[] };
  failure?: { step: string; kind: string; code: string; message: string; hint?: string; stage?: string };
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
  assert.equal(run.exitCode, expected, `${what}: exit ${run.exitCode}, expected ${expected}\n--- stdout\n${run.stdout.slice(-4000)}\n--- stderr\n${run.stderr.slice(-4000)}`);
}

/** Parses a `migrate --json` report, showing the output when it is not JSON. */
export function parseReport(run: DeployRun): MigrateReportJson {
  try {
    return JSON.parse(run.stdout) as MigrateReportJson;
  } catch {
    throw new Error(`migrate --json printed no JSON (exit ${run.exitCode})\n--- stdout\n${run.stdout.slice(-3000)}\n--- stderr\n${run.stderr.slice(-3000)}`);
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
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((word, index, all) => word !== '' || index < all.length - 1);
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
    if (!process || !process.environ.includes(`DEPLOY_LAB_ID=${lab.id}`)) continue;
    const host = process.environ.find((entry) => entry.startsWith('DEPLOY_HOST_NAME='))?.slice('DEPLOY_HOST_NAME='.length) ?? '';
    found.push({ pid: Number(name), host, ...process });
  }
  return found;
}

/** Polls until `find` returns a process (every 25 ms), or throws after `timeoutMs`. */
export async function waitForProcess(lab: Lab, find: (process: LabProcess) => boolean, timeoutMs: number, what: string): Promise<LabProcess> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const match = listLabProcesses(lab).find(find);
    if (match) return match;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`no ${what} appeared within ${timeoutMs} ms`);
}

/** True for the target-side run `deploy receive <app>` (the node process: `node .../deploy receive <app> ...`). */
export function isTargetRun(process: LabProcess, app: string): boolean {
  const at = process.argv.indexOf('receive');
  return at > 1 && process.argv[at + 1] === app && /\/deploy(\.js)?$/.test(process.argv[at - 1] ?? '');
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
export async function countSessions<T>(lab: Lab, host: string, work: () => Promise<T>): Promise<{ result: T; sessions: LabProcess[] }> {
  const seen = new Map<number, LabProcess>();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      for (const process of listLabProcesses(lab)) if (process.host === host && isSessionCommand(process)) seen.set(process.pid, process);
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
export async function findRunLeftovers(lab: Lab, host: string, runId: string, options: { postgres?: boolean; mariadb?: boolean } = {}): Promise<string[]> {
  const target = lab.host(host);
  const found: string[] = [];
  const ofRun = (text: string): boolean => text.includes(runId);
  for (const process of listLabProcesses(lab)) {
    if (process.host !== host) continue;
    const run = process.environ.find((entry) => entry.startsWith('DEPLOY_RUN_ID='))?.slice('DEPLOY_RUN_ID='.length) ?? '';
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
  walk(`${target.stateDir}/borg`, 1);
  walk(`${target.stateDir}/apps`, 2);
  const lockDir = `${target.stateDir}/locks`;
  if (existsSync(lockDir)) {
    for (const name of readdirSync(lockDir)) if (ofRun(readFileSync(`${lockDir}/${name}`, 'utf8'))) found.push(`lock ${lockDir}/${name}`);
  }
  const tag = databaseRunTag(runId);
  if (options.postgres !== false) {
    const databases = await runOrThrow(labShell(lab, host), `psql -X -At -d postgres -c "SELECT datname FROM pg_database WHERE datname LIKE 'dk\\_%'"`);
    for (const name of databases.split('\n').filter(Boolean)) if (name.includes(tag)) found.push(`database ${name}`);
  }
  if (options.mariadb === true) {
    const schemas = await runOrThrow(labShell(lab, host), `mysql --batch --skip-column-names -e "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'dk\\_%'"`);
    for (const name of schemas.split('\n').filter(Boolean)) if (name.includes(tag)) found.push(`database ${name}`);
  }
  return found;
}
