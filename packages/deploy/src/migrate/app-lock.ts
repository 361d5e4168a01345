import { open, readFile, rm, mkdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { ConflictError } from '@deploykit/core';
import { isProcessRunning } from '@deploykit/host';

/** Who holds an app's lock. */
export interface LockHolder {
  readonly app: string;
  readonly pid: number;
  /** Kernel start time of the holder (clock ticks since boot): tells a recycled pid from the holder. */
  readonly startTicks: number;
  readonly host: string;
  readonly runId: string;
  readonly command: string;
  readonly since: string;
}

/** Path of an app's lock file in a state dir. */
export function lockPath(stateDir: string, app: string): string {
  return join(stateDir, 'locks', `${app}.lock`);
}

/** Reads a process's start time in clock ticks from /proc (0 when gone). */
export function processStartTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19] ?? 0);
  } catch {
    return 0;
  }
}

/** True when the lock's holder process still runs (same pid and same start time). */
export function isHolderAlive(holder: LockHolder): boolean {
  return isProcessRunning(holder.pid) && processStartTicks(holder.pid) === holder.startTicks;
}

/** Reads the current holder, or undefined when unlocked or unreadable. */
export async function readLock(stateDir: string, app: string): Promise<LockHolder | undefined> {
  try {
    return JSON.parse(await readFile(lockPath(stateDir, app), 'utf8')) as LockHolder;
  } catch {
    return undefined;
  }
}

/** A held lock; release() removes it only if it is still ours. */
export interface AppLock extends AsyncDisposable {
  readonly holder: LockHolder;
  /** True when a stale lock of a dead process was found and replaced. */
  readonly replacedStale?: LockHolder;
  release(): Promise<void>;
}

/**
 * Takes an app's lock (O_EXCL file with the holder's pid, start time, host and run id). A lock whose
 * holder is dead (or whose pid now belongs to another process) is stale and replaced; a live one
 * is refused with a ConflictError naming the holder, after waiting up to `waitMs` for it to let go
 * (a target-side run that lost its input rolls back on its own before it releases the lock).
 */
export async function acquireAppLock(options: { stateDir: string; app: string; runId: string; command: string; waitMs?: number }): Promise<AppLock> {
  const path = lockPath(options.stateDir, options.app);
  await mkdir(dirname(path), { recursive: true });
  const pid = process.pid;
  const holder: LockHolder = {
    app: options.app,
    pid,
    startTicks: processStartTicks(pid),
    host: process.env.DEPLOY_HOST_NAME ?? hostname(),
    runId: options.runId,
    command: options.command,
    since: new Date().toISOString(),
  };
  let replacedStale: LockHolder | undefined;
  const deadline = Date.now() + (options.waitMs ?? 0);
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      const handle = await open(path, 'wx', 0o644);
      await handle.writeFile(`${JSON.stringify(holder)}\n`);
      await handle.close();
      const release = async (): Promise<void> => {
        const current = await readLock(options.stateDir, options.app);
        if (current?.runId === holder.runId && current.pid === holder.pid) await rm(path, { force: true });
      };
      return { holder, ...(replacedStale ? { replacedStale } : {}), release, [Symbol.asyncDispose]: release };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const current = await readLock(options.stateDir, options.app);
      if (current && current.runId === options.runId) {
        // Our own run re-taking its lock (a re-run step): keep it.
        const release = async (): Promise<void> => void (await rm(path, { force: true }));
        return { holder: current, release, [Symbol.asyncDispose]: release };
      }
      if (current && isHolderAlive(current)) {
        if (Date.now() < deadline) {
          // Waiting for a live holder to finish: not an attempt lost to a race.
          attempt -= 1;
          await new Promise((resolve) => setTimeout(resolve, 200));
          continue;
        }
        throw new ConflictError('APP_LOCKED', `${options.app} is locked by "${current.command}" (run ${current.runId}, pid ${current.pid} on ${current.host}, since ${current.since})`, {
          hint: `Wait for that run to finish, or stop it (kill ${current.pid}); a lock of a dead process is released automatically.`,
          details: { holder: current },
        });
      }
      // Stale: its holder died without releasing it. Remove and retry the exclusive create.
      replacedStale = current;
      await rm(path, { force: true });
    }
  }
  throw new ConflictError('APP_LOCK_RACE', `could not take the lock of ${options.app} (${path})`, { hint: 'Another deploy is taking it at the same moment; try again.' });
}
