import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** The environment variable every lab process carries; teardown finds strays by it. */
export const LAB_ID_VARIABLE = 'DEPLOY_LAB_ID';

/**
 * A process identity that survives PID reuse: the pid plus its start time (clock ticks after boot,
 * /proc/<pid>/stat field 22). A recorded pid is only signalled while both still match.
 */
export interface LabProcessRef {
  pid: number;
  startTime: number;
}

/** A pid to stop and the signal that asks it to stop cleanly. */
export interface LabStopTarget extends LabProcessRef {
  signal: NodeJS.Signals;
}

interface ProcessStat {
  pid: number;
  ppid: number;
  state: string;
  startTime: number;
}

async function readProcessStat(pid: number): Promise<ProcessStat | undefined> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses; the fields after the last ')' do not.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { pid, state: fields[0] ?? '', ppid: Number(fields[1]), startTime: Number(fields[19]) };
}

function isRunningState(state: string): boolean {
  // Z and X have exited and only wait to be reaped.
  return state !== '' && state !== 'Z' && state !== 'X';
}

/** Reads a live process's identity (pid + start time); undefined when it is gone. */
export async function readProcessRef(pid: number): Promise<LabProcessRef | undefined> {
  const stat = await readProcessStat(pid);
  return stat !== undefined && isRunningState(stat.state) ? { pid, startTime: stat.startTime } : undefined;
}

/** True while the process `ref` names is alive (same pid and start time, not a zombie). */
export async function isSameProcess(ref: LabProcessRef): Promise<boolean> {
  const now = await readProcessRef(ref.pid);
  return now?.startTime === ref.startTime;
}

/** Reads /proc/<pid>/environ as a map; undefined when the process is gone or unreadable. */
export async function readProcessEnvironment(pid: number): Promise<Record<string, string> | undefined> {
  let raw = '';
  // A process in the middle of execve (`cmd &` forking, then exec'ing) reads back an empty environ for
  // a moment: look again before calling it a process without one (seen as a stray that escaped).
  for (let attempt = 0; attempt < 5 && raw === ''; attempt += 1) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    try {
      raw = await readFile(`/proc/${pid}/environ`, 'utf8');
    } catch {
      return undefined;
    }
  }
  const env: Record<string, string> = {};
  for (const entry of raw.split('\0')) {
    const equals = entry.indexOf('=');
    if (equals > 0) env[entry.slice(0, equals)] = entry.slice(equals + 1);
  }
  return env;
}

/**
 * True when pid is alive and its environment carries DEPLOY_LAB_ID=<labId>. Servers that rewrite their
 * process title (sshd, postgres) overwrite their environ copy, so teardown also follows process trees.
 */
export async function isLabProcess(pid: number, labId: string): Promise<boolean> {
  if ((await readProcessRef(pid)) === undefined) return false;
  const env = await readProcessEnvironment(pid);
  return env?.[LAB_ID_VARIABLE] === labId;
}

async function listProcessStats(): Promise<ProcessStat[]> {
  const entries = await readdir('/proc');
  const stats = await Promise.all(
    entries.filter((name) => /^\d+$/.test(name)).map((name) => readProcessStat(Number(name))),
  );
  return stats.filter((stat): stat is ProcessStat => stat !== undefined && isRunningState(stat.state));
}

/**
 * Every live process of a lab except this one and its ancestors: those whose environment has
 * DEPLOY_LAB_ID=<labId> (apps started over ssh, also after they daemonized) and every descendant of
 * the live `roots` (the recorded servers: sshd sessions, postgres workers).
 */
export async function findLabProcessRefs(
  labId: string,
  roots: readonly LabProcessRef[] = [],
): Promise<LabProcessRef[]> {
  const stats = await listProcessStats();
  const byPid = new Map(stats.map((stat) => [stat.pid, stat]));
  const skip = new Set<number>();
  for (let pid = process.pid; pid > 1 && !skip.has(pid); pid = byPid.get(pid)?.ppid ?? 0) skip.add(pid);
  const liveRoots = new Set(
    roots.filter((root) => byPid.get(root.pid)?.startTime === root.startTime).map((root) => root.pid),
  );
  const isDescendant = (stat: ProcessStat): boolean => {
    const seen = new Set<number>();
    for (
      let current: ProcessStat | undefined = stat;
      current !== undefined && !seen.has(current.pid);
      current = byPid.get(current.ppid)
    ) {
      if (liveRoots.has(current.pid)) return true;
      seen.add(current.pid);
    }
    return false;
  };
  const matches = await Promise.all(
    stats.map(async (stat) => {
      if (skip.has(stat.pid)) return undefined;
      if (isDescendant(stat)) return stat;
      const env = await readProcessEnvironment(stat.pid);
      return env?.[LAB_ID_VARIABLE] === labId ? stat : undefined;
    }),
  );
  return matches
    .filter((stat): stat is ProcessStat => stat !== undefined)
    .map(({ pid, startTime }) => ({ pid, startTime }));
}

/** The pids of findLabProcessRefs: every live process of the lab `labId`. */
export async function findLabProcesses(labId: string, roots: readonly LabProcessRef[] = []): Promise<number[]> {
  return (await findLabProcessRefs(labId, roots)).map((ref) => ref.pid);
}

function sendSignal(ref: LabProcessRef, signal: NodeJS.Signals): void {
  try {
    process.kill(ref.pid, signal);
  } catch {
    // Gone already: exactly what we want.
  }
}

/** Waits until none of refs is alive or `ms` passed; returns those still alive. */
export async function waitForProcessesExit(refs: readonly LabProcessRef[], ms: number): Promise<LabProcessRef[]> {
  const deadline = Date.now() + ms;
  let alive = [...refs];
  for (;;) {
    const checks = await Promise.all(alive.map(async (ref) => ((await isSameProcess(ref)) ? ref : undefined)));
    alive = checks.filter((ref): ref is LabProcessRef => ref !== undefined);
    if (alive.length === 0 || Date.now() >= deadline) return alive;
    await sleep(20);
  }
}

function mergeRefs(...lists: readonly (readonly LabProcessRef[])[]): LabProcessRef[] {
  const merged = new Map<string, LabProcessRef>();
  for (const list of lists) for (const ref of list) merged.set(`${ref.pid}:${ref.startTime}`, ref);
  return [...merged.values()];
}

/**
 * Stops a lab's processes: the recorded servers first with their clean-stop signal, then every other
 * process of the lab (found before the servers went, since sshd's sessions lose their parent) with
 * SIGTERM, and SIGKILL for whatever is left. Returns the processes that survived even SIGKILL.
 */
export async function stopLabProcesses(
  labId: string,
  targets: readonly LabStopTarget[],
  graceMs = 3000,
): Promise<LabProcessRef[]> {
  const before = await findLabProcessRefs(labId, targets);
  const live: LabStopTarget[] = [];
  for (const target of targets) if (await isSameProcess(target)) live.push(target);
  for (const target of live) sendSignal(target, target.signal);
  await waitForProcessesExit(live, graceMs);
  let rest = mergeRefs(await waitForProcessesExit(before, 0), await findLabProcessRefs(labId, targets));
  if (rest.length > 0) {
    for (const ref of rest) sendSignal(ref, 'SIGTERM');
    rest = await waitForProcessesExit(rest, 1000);
  }
  // Another scan: a stray may have forked while we waited.
  rest = mergeRefs(rest, await findLabProcessRefs(labId, targets));
  if (rest.length > 0) {
    for (const ref of rest) sendSignal(ref, 'SIGKILL');
    rest = await waitForProcessesExit(rest, 1000);
  }
  return rest;
}
