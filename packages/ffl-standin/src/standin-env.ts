/** Names of the FFL_STANDIN_* failure-injection and tuning switches read by the ffl stand-in (see docs/ffl-standin.md). */
export const FFL_STANDIN_ENV = {
  /**
   * Float scaling every delay the stand-in adds to imitate the real tool (reference §8) and the time
   * of its default throughput: 1 = real timings (default), 0 = no added delays and unthrottled.
   */
  timeScale: 'FFL_STANDIN_TIME_SCALE',
  /** Sender SIGKILLs itself after putting this many payload bytes on the wire (any path). */
  killAfterBytes: 'FFL_STANDIN_KILL_AFTER_BYTES',
  /** The first HTTP (relay) leg is cut after this many bytes: `/download/fail` connection-lost, sender keeps waiting (sequence D). */
  httpDropAfterBytes: 'FFL_STANDIN_HTTP_DROP_AFTER_BYTES',
  /** The first direct (simulated WebRTC) leg is cut after this many bytes; the receiver hands off to HTTP (sequence C). */
  webrtcDropAfterBytes: 'FFL_STANDIN_WEBRTC_DROP_AFTER_BYTES',
  /** Milliseconds between `Establishing tunnel connection...` and the link appearing (unscaled; default: 1.5-3 s times the scale). */
  linkDelayMs: 'FFL_STANDIN_LINK_DELAY_MS',
  /** `1` makes the tunnel fail: sequence G, `Oops, something went wrong: Failed to connect server`, exit 1. */
  tunnelFail: 'FFL_STANDIN_TUNNEL_FAIL',
  /** Sender pacing in payload bytes per second (0 = unthrottled; unscaled). Default: 3 MiB/s divided by the scale. */
  throttleBytesPerSecond: 'FFL_STANDIN_THROTTLE_BYTES_PER_SEC',
  /** Longest wait for the receiver's `/complete` ACK after the last byte, both paths (unscaled). Default: 30 s WebRTC, 5 s HTTP, times the scale, at least 5 s. */
  ackWaitMs: 'FFL_STANDIN_ACK_WAIT_MS',
  /** Pickup lock duration after 5 failed checks (real tool: 300). */
  pickupLockSeconds: 'FFL_STANDIN_PICKUP_LOCK_SECONDS',
  /** Consecutive HTTP-hook failures before events are dropped (real tool: 3, env HOOK_FORWARDER_FAILURE_THRESHOLD). */
  hookFailureThreshold: 'FFL_STANDIN_HOOK_FAILURE_THRESHOLD',
  /** How long non-registration events are dropped after the threshold, in ms (real tool: 30 s, env HOOK_FORWARDER_COOLDOWN_SECONDS). */
  hookCooldownMs: 'FFL_STANDIN_HOOK_COOLDOWN_MS',
} as const;

/** One of the switch names in {@link FFL_STANDIN_ENV}. */
export type FflStandinEnvName = (typeof FFL_STANDIN_ENV)[keyof typeof FFL_STANDIN_ENV];

/** Reads a non-negative integer switch from `env`; returns `fallback` when unset or not a number. */
export function readIntegerSwitch(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  return Number.isFinite(value) && value >= 0 ? Math.floor(value) : fallback;
}
