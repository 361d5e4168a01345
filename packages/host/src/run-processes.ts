import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { isProcessRunning } from './process-groups.js';
import { buildControlPath } from './ssh-argv.js';

/**
 * Pids of this machine's processes whose environment has every `KEY=value` of `match` (read from
 * /proc/<pid>/environ: processes of our user, or all as root). Every process deploy starts for a run
 * inherits DEPLOY_RUN_ID and DEPLOY_ROLE, so this finds a run's processes - also the daemons a
 * bin/start left behind - by run id, not by name. Our own pid is never returned.
 */
export function findProcessesByEnvironment(match: Readonly<Record<string, string>>): number[] {
  const wanted = Object.entries(match).map(([key, value]) => `${key}=${value}`);
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const environ = readFileSync(`/proc/${name}/environ`, 'utf8').split('\0');
      if (wanted.every((entry) => environ.includes(entry)) && isProcessRunning(Number(name))) found.push(Number(name));
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}

/**
 * Pids of the ssh ControlMaster processes serving a control dir. A master rewrites its process
 * title (`ssh: <dir>/m [mux]`), which also wipes what /proc shows of its environment, so
 * findProcessesByEnvironment cannot see it: its command line names the control dir instead (a dir
 * named with a run id finds the run's master).
 */
export function findSshMasters(controlDir: string): number[] {
  const title = `ssh: ${buildControlPath(controlDir)} [mux]`;
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0+$/, '') === title && isProcessRunning(Number(name)))
        found.push(Number(name));
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}

/**
 * Stops processes: SIGTERM, up to `graceMs` for them to go, then SIGKILL and a wait until they are
 * gone (zombies count as gone). Returns the pids that were still alive at the start.
 */
export async function stopProcesses(pids: readonly number[], graceMs = 5000): Promise<number[]> {
  const alive = pids.filter((pid) => isProcessRunning(pid));
  const signal = (sig: NodeJS.Signals): void => {
    for (const pid of alive) {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  };
  signal('SIGTERM');
  const until = async (deadline: number): Promise<boolean> => {
    while (Date.now() < deadline) {
      if (alive.every((pid) => !isProcessRunning(pid))) return true;
      await sleep(50);
    }
    return alive.every((pid) => !isProcessRunning(pid));
  };
  if (!(await until(Date.now() + graceMs))) {
    signal('SIGKILL');
    await until(Date.now() + 10_000);
  }
  return alive;
}
