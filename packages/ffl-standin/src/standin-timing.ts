import { randomInt } from 'node:crypto';
import { FFL_STANDIN_ENV, readIntegerSwitch } from './standin-env.js';

/**
 * The delays and rates the real ffl 4.0.6 showed end to end (reference §8, §1.3, §2.1), at time
 * scale 1. Ranges are [min, max] in ms; the stand-in draws a value uniformly per use (jitter).
 */
export const REAL_TIMINGS = {
  /** `ffl -` start -> link printed: measured 1-7 s on a loaded machine; ~2 s is the common case. */
  linkMs: [1500, 3000],
  /** Receiver start -> `POST /offer` (Python start-up, ICE gathering): `/webrtc/offer/create` ~7-8 s in; a wrong code fails after ~7 s. */
  offerMs: [6500, 8000],
  /** Offer -> data channel START (ICE checks, DTLS, SCTP): with the offer, the first byte 8.5-12.5 s after the receiver started (measured 8-13). */
  connectMs: [2000, 4500],
  /** Payload rate of the from-source build (pure-Python SCTP): measured 2.3-4 MiB/s. */
  bytesPerSecond: 3 * 1024 * 1024,
  /** `/webrtc/transfer/complete` -> sender exit (ACK, then the WebRTC teardown stall): 4-6 s. */
  teardownMs: [4000, 6000],
  /** Longest wait for the receiver's `/complete` ACK: 30 s on the WebRTC path (§1.3). */
  webrtcAckWaitMs: 30_000,
  /** Longest wait for the ACK on the HTTP path, and the full wait under `--force-relay` (§1.3). */
  httpAckWaitMs: 5_000,
  /** Receiver gone mid-stream -> `/download/fail` "WebRTC send buffer stalled" (`WEBRTC_SEND_BUFFER_DRAIN_TIMEOUT`). */
  sendBufferStallMs: 60_000,
  /** Sender gone mid-stream -> the receiving ffl notices (ICE consent / SCTP timeout): 29-33 s. */
  senderGoneNoticeMs: [29_000, 33_000],
} as const;

/**
 * A scaled timeout never drops below this: an answer that normally comes at once must still come,
 * also on a loaded machine (the stand-in receiver checks the checksum before it ACKs).
 */
const MIN_SCALED_TIMEOUT_MS = 5000;

type Range = readonly [number, number];

/** The stand-in's clock: real delays times `FFL_STANDIN_TIME_SCALE`, with the explicit switches on top. */
export interface StandinTiming {
  /** 1 = the real tool's timings (default); 0 = no added delays and no default throttle. */
  readonly scale: number;
  /** Start -> link printed (`FFL_STANDIN_LINK_DELAY_MS` when set, unscaled). */
  linkDelayMs(): number;
  offerDelayMs(): number;
  connectDelayMs(): number;
  /** Sender pacing in bytes/s; 0 = unthrottled (`FFL_STANDIN_THROTTLE_BYTES_PER_SEC` when set, unscaled). */
  readonly bytesPerSecond: number;
  teardownMs(): number;
  /** ACK wait of a WebRTC (`webrtc`) or HTTP (`http`) download (`FFL_STANDIN_ACK_WAIT_MS` when set, for both). */
  ackWaitMs(path: 'webrtc' | 'http'): number;
  readonly sendBufferStallMs: number;
  /** The whole seconds ffl prints in `(waited Ns)`: the real timeout's, whatever the scale. */
  readonly sendBufferStallSeconds: number;
  senderGoneNoticeMs(): number;
  /** Backoff before HTTP resume attempt `attempt` (1, 2, 4 ... 30 s in the real tool). */
  resumeBackoffMs(attempt: number): number;
}

/** Reads `FFL_STANDIN_TIME_SCALE`: a non-negative float, 1 when unset or not a number. */
export function readTimeScale(env: NodeJS.ProcessEnv): number {
  const raw = env[FFL_STANDIN_ENV.timeScale];
  if (raw === undefined || raw.trim() === '') return 1;
  const value = Number(raw);
  return Number.isFinite(value) && value >= 0 ? value : 1;
}

function draw(range: Range, scale: number): number {
  const [min, max] = range;
  return Math.round((min + randomInt(max - min + 1)) * scale);
}

function hasSwitch(env: NodeJS.ProcessEnv, name: string): boolean {
  return (env[name] ?? '').trim() !== '';
}

/** Builds the stand-in's timings from its environment (reference §8 at scale 1). */
export function resolveTiming(env: NodeJS.ProcessEnv): StandinTiming {
  const scale = readTimeScale(env);
  const timeout = (ms: number): number => Math.max(MIN_SCALED_TIMEOUT_MS, Math.round(ms * scale));
  const explicitAck = hasSwitch(env, FFL_STANDIN_ENV.ackWaitMs)
    ? readIntegerSwitch(env, FFL_STANDIN_ENV.ackWaitMs, 0)
    : undefined;
  const explicitLink = hasSwitch(env, FFL_STANDIN_ENV.linkDelayMs)
    ? readIntegerSwitch(env, FFL_STANDIN_ENV.linkDelayMs, 0)
    : undefined;
  const bytesPerSecond = hasSwitch(env, FFL_STANDIN_ENV.throttleBytesPerSecond)
    ? readIntegerSwitch(env, FFL_STANDIN_ENV.throttleBytesPerSecond, 0)
    : scale === 0
      ? 0
      : Math.round(REAL_TIMINGS.bytesPerSecond / scale);
  return {
    scale,
    linkDelayMs: () => explicitLink ?? draw(REAL_TIMINGS.linkMs, scale),
    offerDelayMs: () => draw(REAL_TIMINGS.offerMs, scale),
    connectDelayMs: () => draw(REAL_TIMINGS.connectMs, scale),
    bytesPerSecond,
    teardownMs: () => draw(REAL_TIMINGS.teardownMs, scale),
    ackWaitMs: (path) =>
      explicitAck ?? timeout(path === 'webrtc' ? REAL_TIMINGS.webrtcAckWaitMs : REAL_TIMINGS.httpAckWaitMs),
    sendBufferStallMs: Math.round(REAL_TIMINGS.sendBufferStallMs * scale),
    sendBufferStallSeconds: REAL_TIMINGS.sendBufferStallMs / 1000,
    senderGoneNoticeMs: () => draw(REAL_TIMINGS.senderGoneNoticeMs, scale),
    resumeBackoffMs: (attempt) => Math.round(Math.min(2 ** (attempt - 1), 30) * 1000 * scale),
  };
}
