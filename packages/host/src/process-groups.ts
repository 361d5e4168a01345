import { readFileSync } from 'node:fs';

/** Process groups we started and that may still be alive; the CLI kills them all on Ctrl+C. */
const live = new Set<number>();

/** Records a process group leader we started. */
export function trackProcessGroup(pgid: number): void {
  live.add(pgid);
}

/** Forgets a process group once its leader exited. */
export function untrackProcessGroup(pgid: number): void {
  live.delete(pgid);
}

/** Sends a signal to a whole process group; ignores groups that are already gone. */
export function signalProcessGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Signals every process group we started that may still run (used on Ctrl+C and fatal errors). */
export function signalAllProcessGroups(signal: NodeJS.Signals = 'SIGTERM'): number {
  let count = 0;
  for (const pgid of live) if (signalProcessGroup(pgid, signal)) count += 1;
  return count;
}

/** Process group ids currently tracked. */
export function liveProcessGroups(): readonly number[] {
  return [...live];
}

/**
 * True when a process exists and is not a zombie. Orphans whose parent we killed are re-parented to
 * PID 1, which may not reap them promptly; a zombie holds no resources and runs no code.
 */
export function isProcessRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}
