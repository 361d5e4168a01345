// Shared by the migrate end-to-end tests: run `deploy migrate` on lab host a, read its report and run
// record, find the lab's processes per host through /proc (all lab hosts share this kernel).
import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import type { Lab } from '@deploykit/testlab';
import { runDeploy, type DeployRun } from './helpers/index.js';

/** The guestbook fixture app (MariaDB) in the source tree. */
export const GUESTBOOK_DIR = fileURLToPath(new URL('../fixtures/guestbook', import.meta.url));

/** The MigrateReport fields the tests read. */
export interface MigrateReportJson {
  ok: boolean;
  runId: string;
  archive: string;
  journal: string;
  transport: string;
  streams: { name: string; bytes: number; elapsedMs: number; rate: number; path: string; retries: number }[];
  verification?: { ok: boolean; checks: { name: string; ok: boolean; detail: string }[]; problems: string[] };
  failure?: { step: string; kind: string; code: string; message: string; hint?: string };
  rolledBack?: string[];
}

/** One line of a run record. */
export interface JournalLine {
  step: string;
  status: string;
  argv?: string;
  detail?: { steps?: { id: string; argv: string }[]; [key: string]: unknown };
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

/** A process of a lab host: its pid and argv. */
export interface LabProcess {
  pid: number;
  host: string;
  argv: string[];
}

/** Lists the processes of lab `lab` (environment DEPLOY_LAB_ID) with their host (DEPLOY_HOST_NAME). */
export function listLabProcesses(lab: Lab): LabProcess[] {
  const found: LabProcess[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const environ = readFileSync(`/proc/${name}/environ`, 'utf8').split('\0');
      if (!environ.includes(`DEPLOY_LAB_ID=${lab.id}`)) continue;
      const host = environ.find((entry) => entry.startsWith('DEPLOY_HOST_NAME='))?.slice('DEPLOY_HOST_NAME='.length) ?? '';
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter((word, index, all) => word !== '' || index < all.length - 1);
      found.push({ pid: Number(name), host, argv });
    } catch {
      // Gone between readdir and read, or a kernel thread: not ours.
    }
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

/** True for the `deploy stream receive` node process of stream `stream` (not a bash -c wrapper). */
export function isStreamReceiver(process: LabProcess, stream: string): boolean {
  const at = process.argv.indexOf('receive');
  const name = process.argv.indexOf('--name');
  return at > 0 && process.argv[at - 1] === 'stream' && name > 0 && process.argv[name + 1] === stream;
}
