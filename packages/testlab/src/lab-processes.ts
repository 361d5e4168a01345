import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** The environment variable every lab process carries; teardown finds strays by it. */
export const LAB_ID_VARIABLE = 'DEPLOY_LAB_ID';

/** A pid to stop and the signal that asks it to stop cleanly. */
export interface LabStopTarget {
  pid: number;
  signal: NodeJS.Signals;
}

/** Reads /proc/<pid>/environ as a map; undefined when the process is gone or unreadable. */
export async function readProcessEnvironment(pid: number): Promise<Record<string, string> | undefined> {
  let raw: string;
  try {
    raw = await readFile(`/proc/${pid}/environ`, 'utf8');
  } catch {
    return undefined;
  }
  const env: Record<string, string> = {};
  for (const entry of raw.split('\0')) {
    const equals = entry.indexOf('=');
    if (equals > 0) env[entry.slice(0, equals)] = entry.slice(equals + 1);
  }
  return env;
}

/** True when pid exists and is not a zombie (a zombie has exited and only waits to be reaped). */
export async function isProcessAlive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X' && state !== '';
  } catch {
    return false;
  }
}

/**
 * True when pid is alive and carries DEPLOY_LAB_ID=<labId>: a recorded pid that a later, unrelated
 * process reused after the lab died must never be signalled.
 */
export async function isLabProcess(pid: number, labId: string): Promise<boolean> {
  if (!(await isProcessAlive(pid))) return false;
  const env = await readProcessEnvironment(pid);
  return env?.[LAB_ID_VARIABLE] === labId;
}

async function listAncestors(): Promise<Set<number>> {
  const ancestors = new Set<number>([process.pid]);
  let pid = process.ppid;
  while (pid > 1 && !ancestors.has(pid)) {
    ancestors.add(pid);
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      break;
    }
  }
  return ancestors;
}

/** Every live process (except this one and its ancestors) whose environment has DEPLOY_LAB_ID=<labId>. */
export async function findLabProcesses(labId: string): Promise<number[]> {
  const skip = await listAncestors();
  const entries = await readdir('/proc');
  const pids = entries.filter((name) => /^\d+$/.test(name)).map(Number).filter((pid) => !skip.has(pid));
  const matches = await Promise.all(pids.map(async (pid) => ((await isLabProcess(pid, labId)) ? pid : undefined)));
  return matches.filter((pid): pid is number => pid !== undefined);
}

function sendSignal(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Gone already: exactly what we want.
  }
}

/** Waits until none of pids is a live lab process or `ms` passed; returns those still alive. */
export async function waitForLabExit(pids: readonly number[], labId: string, ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  let alive = [...pids];
  for (;;) {
    const checks = await Promise.all(alive.map(async (pid) => ((await isLabProcess(pid, labId)) ? pid : undefined)));
    alive = checks.filter((pid): pid is number => pid !== undefined);
    if (alive.length === 0 || Date.now() >= deadline) return alive;
    await sleep(20);
  }
}

/**
 * Stops a lab's processes: the recorded servers first with their clean-stop signal, then every other
 * process carrying the lab id (apps started over ssh) with SIGTERM, and SIGKILL for whatever is left.
 * Signals only pids that carry the lab id. Returns the pids that survived even SIGKILL (normally none).
 */
export async function stopLabProcesses(labId: string, targets: readonly LabStopTarget[], graceMs = 3000): Promise<number[]> {
  const live: LabStopTarget[] = [];
  for (const target of targets) if (await isLabProcess(target.pid, labId)) live.push(target);
  for (const target of live) sendSignal(target.pid, target.signal);
  await waitForLabExit(
    live.map((target) => target.pid),
    labId,
    graceMs,
  );
  let strays = await findLabProcesses(labId);
  if (strays.length > 0) {
    for (const pid of strays) sendSignal(pid, 'SIGTERM');
    strays = await waitForLabExit(strays, labId, 1000);
  }
  // Second scan: a stray may have forked while we waited.
  strays = [...new Set([...strays, ...(await findLabProcesses(labId))])];
  if (strays.length > 0) {
    for (const pid of strays) sendSignal(pid, 'SIGKILL');
    strays = await waitForLabExit(strays, labId, 1000);
  }
  return strays;
}
