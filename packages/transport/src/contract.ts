/**
 * The transport contract shared by the sending and receiving halves. See docs/transports.md.
 *
 * A stream = producer argv (source host) -> frame encoder -> sender -> receiver -> frame decoder ->
 * consumer (target host). The receiving half always runs as its own `deploy stream receive`
 * process on the target host (started over ssh, or locally for the `local` transport) and speaks
 * the JSONL event protocol below on its stdout (or on fd 3 for the ssh transport, whose stdout is
 * not used for data - see RECEIVER_EVENTS_ON_STDOUT).
 */
import type { Arg } from '@deploykit/core';

/** Names of the registered transports. */
export type TransportName = 'ffl' | 'ssh' | 'scp' | 'local';

/** Which part of a stream failed. */
export type StreamStage = 'producer' | 'sender' | 'receiver' | 'consumer' | 'integrity' | 'preflight';

/** How the bytes travelled. */
export type StreamPath = 'direct' | 'relay' | 'ssh' | 'file' | 'local';

/** The one event vocabulary every transport maps its own signals onto. */
export type StreamEvent =
  | { kind: 'ready'; stream: string; ticket?: string }
  | { kind: 'connected'; stream: string }
  | { kind: 'path'; stream: string; path: StreamPath }
  | {
      kind: 'progress';
      stream: string;
      side: 'producer' | 'consumer';
      bytes: number;
      rate: number;
      elapsedMs: number;
      etaMs?: number;
    }
  | { kind: 'stalled'; stream: string; idleMs: number; windowMs: number }
  | { kind: 'retry'; stream: string; attempt: number; reason: string }
  /** The receiver has the whole stream and its trailer checked; the consumer and the transport are finishing. */
  | { kind: 'received'; stream: string; bytes: number }
  | { kind: 'done'; stream: string; bytes: number; sha256: string; elapsedMs: number }
  | {
      kind: 'failed';
      stream: string;
      stage: StreamStage;
      code: string;
      message: string;
      exitCode?: number | null;
      stderrTail?: string;
      firstFailureAt: string;
    };

/** What the consumer on the target does with the payload. */
export type ConsumerSpec =
  /** Extract a tar stream into DIR via a fresh staging dir beside it, swapped in only after success. */
  | { kind: 'into'; dir: string }
  /** Pipe the payload into a command. */
  | { kind: 'command'; argv: readonly Arg[] };

/** Trailer written after the last chunk of a framed stream. */
export interface StreamTrailer {
  /** Payload bytes (excluding framing). */
  readonly bytes: number;
  /** Hex SHA-256 of the payload. */
  readonly sha256: string;
  /** The producer's exit code (null if killed by a signal). */
  readonly producerExit: number | null;
  readonly producerSignal: string | null;
}

/**
 * Framing: MAGIC, then chunks `[u32 BE length > 0][payload bytes]`, then a zero-length chunk
 * `[u32 0]`, then `[u32 BE json length][JSON StreamTrailer]`. Bytes after the trailer are ignored
 * (ffl's receiver may append status text). A chunk longer than MAX_CHUNK, a bad magic or EOF before
 * the trailer fails the stream.
 */
export const FRAME_MAGIC = Buffer.from('DKSTRM1\n', 'ascii');
export const MAX_CHUNK = 4 * 1024 * 1024;

/**
 * Default stall window: once the first payload byte reached the receiver, no byte moved on either
 * side for this long aborts the stream.
 */
export const DEFAULT_STALL_SECONDS = 60;
/**
 * Default readiness window: from the start of an attempt to the first payload byte at the receiver
 * (the target command starting, ffl's link hand-over and WebRTC setup: 10-20 s with the real ffl,
 * reference §8, and up to ~75 s when WebRTC fails and ffl falls back to its relay after 60 s).
 */
export const DEFAULT_READY_SECONDS = 120;
/** Default retries: the whole stream re-runs from the producer this many times. */
export const DEFAULT_RETRIES = 2;
