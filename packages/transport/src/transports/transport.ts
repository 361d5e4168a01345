import type { Writable } from 'node:stream';
import type { Host, Secret } from '@deploykit/core';
import type { ConsumerSpec, StreamEvent, TransportName } from '../contract.js';
import type { StageFailure } from '../pipeline/stage-failure.js';
import type { FflBinaryOptions } from './ffl-binary.js';

/** Options only some transports read. */
export interface TransportOptions {
  /** Where the ffl binary comes from (PATH, a path, or a URL + SHA-256) and extra env for it. */
  readonly ffl?: FflBinaryOptions & { readonly env?: Readonly<Record<string, string>> };
  /** scp: where the framed file is written on the source (default: the OS temp dir). */
  readonly scp?: { readonly sourceStagingDir?: string };
}

/** What preflight() sees: the hosts, the stream's expected size and the transport options. */
export interface PreflightContext {
  readonly stream: string;
  readonly source: Host;
  readonly target: Host;
  /** How `deploy` is started on the target (default ['deploy']). */
  readonly deployCommand: readonly string[];
  readonly estimatedBytes?: number;
  readonly options: TransportOptions;
}

/** What start() gets for one attempt of one stream. */
export interface SessionContext extends PreflightContext {
  readonly runId: string;
  readonly attempt: number;
  readonly consumer: ConsumerSpec;
  readonly stallSeconds: number;
  /** A fresh local temp dir for this attempt; the pipeline removes it afterwards. */
  readonly attemptDir: string;
  /** Secrets to mask in stderr tails. */
  readonly secrets: Secret[];
  /** Publishes an event of the stream (progress, path, connected...). */
  emit(event: StreamEvent): void;
  /** Reports a failure of a stage; the pipeline blames the first one and aborts everything. */
  report(failure: StageFailure): void;
}

/** The receiver's final word: the payload it verified and handed to the consumer. */
export interface ReceiverDone {
  readonly bytes: number;
  readonly sha256: string;
  readonly elapsedMs: number;
}

/** A started sender + receiver pair of one attempt. */
export interface SenderSession {
  /** Where the framed bytes go. */
  readonly sink: Writable;
  /** Resolves when bytes may flow (receiver ready); rejects with StageFailureError. */
  readonly ready: Promise<void>;
  /** Resolves with the receiver's verified result; rejects with StageFailureError. */
  readonly finished: Promise<ReceiverDone>;
  /** Bytes the receiver reported handing to its consumer so far. */
  consumerBytes(): number;
  /** Kills every process of this session on both hosts and removes its files. Idempotent. */
  abort(): Promise<void>;
}

/** What a transport promises, for docs and `deploy stream send --help`. */
export interface TransportGuarantees {
  readonly encryption: string;
  readonly needsSshTrust: boolean;
  readonly stagedBytes: string;
  readonly retry: string;
  readonly pathDetection: string;
}

/** One transport: checks its tools, then starts the sending and receiving halves. */
export interface Transport {
  readonly name: TransportName;
  readonly summary: string;
  readonly guarantees: TransportGuarantees;
  /** Checks this transport's own tools on both hosts; throws DependencyError naming the host and where it looked. */
  preflight(context: PreflightContext): Promise<void>;
  /** Starts the receiver and the sender for one attempt. */
  start(context: SessionContext): Promise<SenderSession>;
}
