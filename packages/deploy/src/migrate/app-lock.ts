import { link, mkdir, open, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
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
  /** The stale lock of a dead process that was found and replaced (by this call, or by a contender this call then won against). */
  readonly replacedStale?: LockHolder;
  release(): Promise<void>;
}

/**
 * Takes an app's lock: a file holding the holder's pid, start time, host and run id. A lock whose
 * holder is dead (or whose pid now belongs to another process) is stale and replaced; a live one
 * is refused with a ConflictError naming the holder, after waiting up to `waitMs` for it to let go
 * (a target-side run that lost its input rolls back on its own before it releases the lock).
 *
 * Why it is safe with any number of contenders (processes on this host taking the same lock):
 * - Creating: the holder record is written to a private temp file, then link(2)ed to the lock path.
 *   link fails with EEXIST when the path exists, so of all creators of an absent lock exactly one
 *   succeeds, and nobody ever sees a half-written lock (an empty or partial record read as "no
 *   holder" was one way two contenders both removed a lock).
 * - Taking over a stale lock: the lock file is identified by its inode and its exact bytes (the
 *   record names a run id, pid and start time, so those bytes are never written again). Only the
 *   holder of a break token for that identity may move it off the lock path: the token is
 *   `<lock>.break-<id>-<k>`, itself created by link(2), so exactly one contender wins generation k.
 *   Under the token it opens the lock path again and moves it (rename to `<lock>.stale-<id>`, so
 *   that the next holder, whichever contender wins, reports the dead run for cleanup) only if it is
 *   still that same stale file. Nobody else can change the lock path in between: its dead holder
 *   cannot release it, a create needs it absent, and moving it needs the token this contender
 *   holds. Then it competes in the exclusive create like everyone else (losing it means a live
 *   holder now, refused as usual). A token whose own holder died (killed mid-takeover) is passed
 *   over by taking generation k+1; a live one is waited for. The old read, delete, create could
 *   delete the lock another contender had just created: that let 2-4 of 6 contenders hold it.
 * - Releasing removes the lock only while it is still ours: changing it needs our death or our own
 *   release, so the read and the unlink cannot be separated by anybody else.
 */
export async function acquireAppLock(options: {
  stateDir: string;
  app: string;
  runId: string;
  command: string;
  waitMs?: number;
}): Promise<AppLock> {
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
  const record = `${JSON.stringify(holder)}\n`;
  const deadline = Date.now() + (options.waitMs ?? 0);
  // Losing races is bounded in time, not in count: a takeover in progress is waited for.
  const raceDeadline = Date.now() + LOCK_RACE_MS;
  for (;;) {
    if (await linkNew(path, record)) {
      const replacedStale = await claimStaleLocks(path);
      const release = async (): Promise<void> => {
        const current = await readLock(options.stateDir, options.app);
        if (current?.runId === holder.runId && current.pid === holder.pid) await rm(path, { force: true });
      };
      return { holder, ...(replacedStale ? { replacedStale } : {}), release, [Symbol.asyncDispose]: release };
    }
    const seen = await readLockFile(path);
    if (seen === undefined) continue; // released or broken just now: create again
    const current = seen.holder;
    if (current && current.runId === options.runId) {
      // Our own run re-taking its lock (a re-run step): keep it.
      const release = async (): Promise<void> => void (await rm(path, { force: true }));
      return { holder: current, release, [Symbol.asyncDispose]: release };
    }
    if (current && isHolderAlive(current)) {
      if (Date.now() < deadline) {
        // Waiting for a live holder to finish.
        await sleep(200);
        continue;
      }
      throw new ConflictError(
        'APP_LOCKED',
        `${options.app} is locked by "${current.command}" (run ${current.runId}, pid ${current.pid} on ${current.host}, since ${current.since})`,
        {
          hint: `Wait for that run to finish, or stop it (kill ${current.pid}); a lock of a dead process is released automatically.`,
          details: { holder: current },
        },
      );
    }
    // Stale (its holder died without releasing it) or unreadable: break exactly this file, then create.
    const outcome = await breakStaleLock(path, seen, record);
    if (outcome === 'busy') {
      if (Date.now() > raceDeadline) break;
      await sleep(10 + Math.random() * 20);
    }
  }
  throw new ConflictError('APP_LOCK_RACE', `could not take the lock of ${options.app} (${path})`, {
    hint: 'Another deploy is taking it at the same moment; try again.',
  });
}

/** How long a contender keeps retrying while another one is taking over the same stale lock. */
const LOCK_RACE_MS = 30_000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The lock file as found: its inode, its exact bytes and the holder they name (undefined if unreadable). */
interface SeenLock {
  readonly ino: number;
  readonly raw: Buffer;
  readonly holder: LockHolder | undefined;
}

/** Opens the lock path and reads the file it names (inode and bytes from the same open file), or undefined when absent. */
async function readLockFile(path: string): Promise<SeenLock | undefined> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const { ino } = await handle.stat();
    const raw = await handle.readFile();
    let holder: LockHolder | undefined;
    try {
      holder = JSON.parse(raw.toString('utf8')) as LockHolder;
    } catch {
      holder = undefined;
    }
    return { ino, raw, holder };
  } finally {
    await handle.close();
  }
}

/**
 * Creates `path` with `content` atomically: written to a private temp file next to it, then
 * link(2)ed into place, which fails (false) when `path` exists. Readers never see it half-written.
 */
async function linkNew(path: string, content: string): Promise<boolean> {
  // Dot-named, so no prefix of a lock, token or set-aside name matches it.
  const temp = join(dirname(path), `.new-${basename(path)}-${process.pid}-${randomBytes(6).toString('hex')}`);
  await writeFile(temp, content, { mode: 0o644, flag: 'wx' });
  try {
    await link(temp, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    await rm(temp, { force: true });
  }
}

/**
 * Moves the stale lock file `seen` away from `path` if it is still there, holding the break token
 * for its identity (see acquireAppLock). 'broken': this call removed it; 'changed': the path no
 * longer holds it (someone else took over, or it was released); 'busy': a live contender holds
 * the token and is doing it now.
 */
async function breakStaleLock(path: string, seen: SeenLock, record: string): Promise<'broken' | 'changed' | 'busy'> {
  const id = `${seen.ino}-${createHash('sha256').update(seen.raw).digest('hex').slice(0, 16)}`;
  for (let generation = 1; ; generation += 1) {
    const token = `${path}.break-${id}-${generation}`;
    if (await linkNew(token, record)) {
      try {
        const now = await readLockFile(path);
        if (now === undefined || now.ino !== seen.ino || !now.raw.equals(seen.raw)) return 'changed';
        // Set aside rather than deleted: the next holder, whoever it is, reports the dead run.
        await rename(path, `${path}.stale-${id}`);
        // That file is gone for good: no token for it is of use any more (dead holders' included).
        await removeTokens(path, id, token);
        return 'broken';
      } finally {
        await rm(token, { force: true });
      }
    }
    let tokenHolder: LockHolder | undefined;
    try {
      tokenHolder = JSON.parse(await readFile(token, 'utf8')) as LockHolder;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'busy'; // just finished: look again
      tokenHolder = undefined;
    }
    if (tokenHolder && isHolderAlive(tokenHolder)) return 'busy';
    // Its holder died while taking over: the next generation is ours to try.
  }
}

/**
 * The stale locks set aside since the last holder (normally one): removed, and the last readable
 * holder returned. Only a new holder calls this, so each dead run is reported to exactly one.
 */
async function claimStaleLocks(path: string): Promise<LockHolder | undefined> {
  let found: LockHolder | undefined;
  const prefix = `${basename(path)}.stale-`;
  for (const name of await readdir(dirname(path)).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const full = join(dirname(path), name);
    try {
      const raw = await readFile(full, 'utf8');
      await unlink(full);
      found = JSON.parse(raw) as LockHolder;
    } catch {
      // Gone (claimed by nobody else: only a holder claims) or unreadable: nothing to report.
    }
  }
  return found;
}

/** Removes the break tokens of one stale lock identity, except `keep` (removed by its holder). */
async function removeTokens(path: string, id: string, keep: string): Promise<void> {
  const prefix = `${basename(path)}.break-${id}-`;
  for (const name of await readdir(dirname(path)).catch(() => [] as string[])) {
    const full = join(dirname(path), name);
    if (name.startsWith(prefix) && /^\d+$/.test(name.slice(prefix.length)) && full !== keep)
      await rm(full, { force: true });
  }
}
