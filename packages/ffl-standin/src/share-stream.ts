import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { createOffsetCipher } from './e2ee-stream.js';
import { formatLocalIso } from './format-time.js';
import type { ProgressBar } from './progress-bar.js';
import { waitForDrainOrClose } from './share-http.js';
import type { ShareSession } from './share-session.js';
import { SourceGoneError } from './stdin-source.js';

const PROGRESS_INTERVAL_MS = 1000;

/** How one leg (HTTP download or simulated data channel) ended. */
export type LegOutcome =
  | { readonly kind: 'complete'; readonly sent: number; readonly checksum: string | undefined }
  | { readonly kind: 'broken'; readonly sent: number }
  | { readonly kind: 'dropped'; readonly sent: number }
  | { readonly kind: 'read-error'; readonly sent: number; readonly error: string };

/** Reports a leg's progress (a hook event), at most once a second. */
export type ReportProgress = (sentIncludingOffset: number, speed: number, elapsedSeconds: number) => Promise<void>;

/**
 * Streams the content from `offset` into one leg at the paced rate (§8), encrypting with --e2ee,
 * updating the stderr bar, breaking it after `dropAfter` bytes or dying after the kill switch's;
 * publishes the checksum of a whole transfer with its last byte.
 */
export async function streamLeg(
  session: ShareSession,
  response: ServerResponse,
  offset: number,
  dropAfter: number,
  bar: ProgressBar,
  reportProgress: ReportProgress,
  transport: 'http' | 'webrtc',
): Promise<LegOutcome> {
  const { args, switches, state, source, timing } = session;
  const cipher = args.e2ee ? createOffsetCipher(session.e2eeKey, session.e2eeNonce, offset) : undefined;
  const hash = offset === 0 ? createHash('blake2b512') : undefined;
  const legStart = Date.now();
  let sent = 0;
  let lastProgress = 0;
  const rate = timing.bytesPerSecond;
  const sliceSize = rate > 0 ? Math.max(1024, Math.floor(rate / 10)) : Number.MAX_SAFE_INTEGER;
  try {
    for await (const plain of source.readFrom(offset)) {
      const wire = cipher === undefined ? plain : cipher.update(plain);
      for (let start = 0; start < wire.length; start += sliceSize) {
        if (response.destroyed || state.shuttingDown) return { kind: 'broken', sent };
        let slice = wire.subarray(start, Math.min(wire.length, start + sliceSize));
        const killNow = switches.killAfterBytes > 0 && state.totalWireBytes + slice.length >= switches.killAfterBytes;
        if (killNow) slice = slice.subarray(0, switches.killAfterBytes - state.totalWireBytes);
        const dropNow = dropAfter > 0 && sent + slice.length >= dropAfter;
        if (dropNow) slice = slice.subarray(0, dropAfter - sent);
        hash?.update(slice);
        let flowing = true;
        if (killNow || dropNow) {
          // Wait until the partial bytes are in the kernel, so the receiver sees exactly N bytes before the break.
          await new Promise<void>((resolve) => response.write(slice, () => resolve()));
        } else {
          flowing = response.write(slice);
        }
        sent += slice.length;
        state.totalWireBytes += slice.length;
        bar.update(offset + sent);
        if (killNow) {
          // Die like a crashed sender: no events, no cleanup, stdin cache left behind.
          await sleep(50);
          process.kill(process.pid, 'SIGKILL');
        }
        if (dropNow) {
          response.destroy();
          return { kind: 'dropped', sent };
        }
        if (!flowing) await waitForDrainOrClose(response);
        if (rate > 0) {
          const due = legStart + (sent / rate) * 1000;
          if (due > Date.now()) await sleep(due - Date.now());
        }
        const now = Date.now();
        if (lastProgress === 0 || now - lastProgress >= PROGRESS_INTERVAL_MS) {
          lastProgress = now;
          const elapsed = Math.max((now - legStart) / 1000, 0.0001);
          await reportProgress(offset + sent, Math.round(sent / elapsed), elapsed);
        }
      }
    }
  } catch (error) {
    if (error instanceof SourceGoneError) return { kind: 'read-error', sent, error: error.message };
    return { kind: 'read-error', sent, error: error instanceof Error ? error.message : String(error) };
  }
  if (response.destroyed || state.shuttingDown) return { kind: 'broken', sent };
  // Published with the last byte, before the end of the response: the receiver polls /checksum
  // for only 2 s after its EOF and skips the check silently when it is not ready (§2.3), so a
  // checksum published after our own end callback went unchecked on a loaded machine.
  const outcome: LegOutcome = { kind: 'complete', sent, checksum: hash?.digest('hex') };
  publishChecksum(session, outcome, offset, transport);
  await new Promise<void>((resolve) => response.end(resolve));
  return outcome;
}

/** Makes a whole transfer's checksum what GET /checksum answers. */
function publishChecksum(session: ShareSession, outcome: LegOutcome, offset: number, transport: string): void {
  if (outcome.kind === 'complete' && offset === 0 && outcome.checksum !== undefined) {
    session.state.checksum = { checksum: outcome.checksum, size: outcome.sent, transport, updatedAt: formatLocalIso() };
  }
}
