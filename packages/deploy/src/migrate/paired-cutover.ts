import { randomInt, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Journal, journalPath } from './journal.js';

/**
 * A cutover in pairing mode (decision 0011) whose bundle may have reached the new host: the source
 * cannot hear its verdict, so it stays stopped and keeps this mark until its operator types the
 * verdict in - `deploy cutover <app> --confirm <code>` (the code the new host shows on success) or
 * `deploy maintenance <app> off` / `deploy start <app>` (the new host rolled back). Kept in
 * `<state>/apps/<app>/cutover-pending.json`, mode 0600 (it holds the confirmation code).
 */
export interface PendingCutover {
  readonly runId: string;
  /** The name the new host goes by in messages and in the moved mark. */
  readonly to: string;
  /** The final archive the bundle carries (the moved mark names it). */
  readonly archive: string;
  readonly baseArchive: string;
  readonly stoppedWith: 'maintenance' | 'stop';
  /** When writes stopped here (ISO time). */
  readonly stoppedAt: string;
  /** What the new host shows only after it applied the delta and the app is healthy there. */
  readonly confirmCode: string;
}

export function pendingCutoverPath(stateDir: string, app: string): string {
  return join(stateDir, 'apps', app, 'cutover-pending.json');
}

/** The app's pending paired cutover on this host, or undefined. */
export async function readPendingCutover(stateDir: string, app: string): Promise<PendingCutover | undefined> {
  const text = await readFile(pendingCutoverPath(stateDir, app), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as Partial<PendingCutover>;
    if (typeof parsed.runId !== 'string' || typeof parsed.confirmCode !== 'string') return undefined;
    return {
      runId: parsed.runId,
      to: String(parsed.to ?? ''),
      archive: String(parsed.archive ?? ''),
      baseArchive: String(parsed.baseArchive ?? ''),
      stoppedWith: parsed.stoppedWith === 'stop' ? 'stop' : 'maintenance',
      stoppedAt: String(parsed.stoppedAt ?? ''),
      confirmCode: parsed.confirmCode,
    };
  } catch {
    return undefined;
  }
}

export async function writePendingCutover(stateDir: string, app: string, pending: PendingCutover): Promise<void> {
  const path = pendingCutoverPath(stateDir, app);
  await mkdir(dirname(path), { recursive: true });
  await rm(path, { force: true });
  await writeFile(path, `${JSON.stringify(pending)}\n`, { mode: 0o600, flag: 'wx' });
}

export async function clearPendingCutover(stateDir: string, app: string): Promise<void> {
  await rm(pendingCutoverPath(stateDir, app), { force: true });
}

/** Letters and digits nobody misreads when reading them out (no 0/O, 1/I/L, 5/S, 8/B, 2/Z). */
const CONFIRM_ALPHABET = 'ACDEFGHJKMNPQRTUVWXY34679';

/** A new confirmation code, "XXXX-XXXX": ~37 bits, read from one screen and typed on another. */
export function newConfirmCode(): string {
  let code = '';
  for (let index = 0; index < 8; index += 1) code += CONFIRM_ALPHABET[randomInt(CONFIRM_ALPHABET.length)];
  return `${code.slice(0, 4)}-${code.slice(4)}`;
}

/** A typed confirmation code as compared: upper case, without spaces and dashes. */
export function normalizeConfirmCode(typed: string): string {
  return typed.toUpperCase().replace(/[\s-]/g, '');
}

/** Whether the code typed on the source is the one the new host showed. */
export function confirmCodeMatches(typed: string, expected: string): boolean {
  const a = Buffer.from(normalizeConfirmCode(typed));
  const b = Buffer.from(normalizeConfirmCode(expected));
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The command that lets the source copy take writes again after a rollback on the new host. */
export function resumeWritesCommand(app: string, stoppedWith: 'maintenance' | 'stop'): string {
  return stoppedWith === 'maintenance' ? `deploy maintenance ${app} off` : `deploy start ${app}`;
}

/** The command that marks the source copy as moved once the new host reported success. */
export function confirmCommand(app: string, code: string): string {
  return `deploy cutover ${app} --confirm ${code}`;
}

/** What the source's operator runs next, as the new host's report says it. */
export interface SourceNextStep {
  /** confirm: the app serves here; resume: nothing of the cutover stayed here; stop-here-first: a rollback step failed. */
  readonly outcome: 'confirm' | 'resume' | 'stop-here-first';
  /** The command to run on the source. */
  readonly command: string;
}

/**
 * The new host's verdict on a paired cutover, as the one command its operator passes to the
 * source's: the confirmation (with the code) when the app is healthy here; else resuming writes
 * there - after making sure the copy here does not run when a rollback step failed (pure).
 */
export function pairedCutoverNextStep(input: {
  app: string;
  ok: boolean;
  rollbackFailed: readonly string[];
  confirmCode: string;
  stoppedWith: 'maintenance' | 'stop';
}): SourceNextStep {
  if (input.ok) return { outcome: 'confirm', command: confirmCommand(input.app, input.confirmCode) };
  return {
    outcome: input.rollbackFailed.length > 0 ? 'stop-here-first' : 'resume',
    command: resumeWritesCommand(input.app, input.stoppedWith),
  };
}

/**
 * Writes resumed on the source while a paired cutover waited for its verdict (`deploy start`,
 * `deploy maintenance off`): the new host's copy lacks what is written from now, so the cutover can
 * no longer be confirmed. Drops the pending mark and says so in that run's record; returns it.
 */
export async function abandonPendingCutover(
  stateDir: string,
  app: string,
  how: string,
): Promise<PendingCutover | undefined> {
  const pending = await readPendingCutover(stateDir, app);
  if (pending === undefined) return undefined;
  await new Journal(journalPath(stateDir, app, pending.runId)).write({
    step: 'resumed',
    status: 'ok',
    detail: {
      how,
      message: 'writes resumed here before a verdict was confirmed: the cutover cannot be confirmed any more',
    },
  });
  await clearPendingCutover(stateDir, app);
  return pending;
}
