import type { Readable, Writable } from 'node:stream';
import type { Host, RunResult, Secret } from '@deploykit/core';
import type { StreamEvent, StreamPath, StreamStage, StreamTrailer, TransportName } from '../contract.js';
import type { ProducerStatus } from '../framing/frame-encoder.js';
import type { StageFailure } from '../pipeline/stage-failure.js';
import type { FflBinaryOptions } from './ffl-binary.js';

/** Options only some transports read. */
export interface TransportOptions {
  /** Where the ffl binary comes from (PATH, a path, or a URL + SHA-256) and extra env for it. */
  readonly ffl?: FflBinaryOptions & { readonly env?: Readonly<Record<string, string>> };
  /** scp: where the bytes are written on the source before the copy (default: the attempt's temp dir). */
  readonly scp?: { readonly sourceStagingDir?: string };
}

/** What preflight() sees: the hosts, the expected size and the transport options. */
export interface PreflightContext {
  readonly stream: string;
  readonly source: Host;
  readonly target: Host;
  /** How `deploy` is started on the target (default ['deploy']). */
  readonly deployCommand: readonly string[];
  readonly estimatedBytes?: number;
  readonly options: TransportOptions;
}

/**
 * Where the target command reads the bytes from, in the words of its `--from` option: `-` (its
 * stdin), a file path on the target, or a link; `deleteAfter` asks it to delete a file it read.
 */
export interface TargetInputSpec {
  readonly from: string;
  readonly deleteAfter?: boolean;
}

/** What openSender() gets: both hosts, the command to start on the target and the event sinks. */
export interface SenderContext extends PreflightContext {
  readonly runId: string;
  readonly attempt: number;
  /** A fresh local temp dir for this attempt; the caller removes it afterwards. */
  readonly attemptDir: string;
  /** Secrets to mask in stderr tails; a transport adds its own (the ffl pickup code). */
  readonly secrets: Secret[];
  /**
   * The command that receives on the target (`deploy stream receive ...` or `deploy receive <app>
   * ...`), built for where this transport delivers the bytes.
   */
  targetArgv(input: TargetInputSpec): readonly string[];
  /** Environment of the target command (no secrets: a transport adds its own credential as a Secret). */
  readonly targetEnv?: Readonly<Record<string, string>>;
  /** Publishes an event of the transfer (connected, path...). */
  emit(event: StreamEvent): void;
  /** Reports a failure of a stage; the caller blames the first one and aborts everything. */
  report(failure: StageFailure): void;
}

/** How the target command ended, and what the transport makes of it. */
export interface SenderChannelExit {
  readonly result: RunResult;
  /**
   * Set when the end says something about the transport itself (a dropped ssh connection, ffl's
   * sender failing); otherwise the target command's own answer (its events) explains the end.
   */
  readonly failure?: Pick<StageFailure, 'stage' | 'code' | 'message' | 'hint'>;
}

/**
 * A file a local producer process writes into directly, as its stdout (scp's staged file): no
 * payload byte passes through deploy on the source. The transport frames and hashes it itself.
 */
export interface ProducerFile {
  /** The open file descriptor to give the producer as its stdout (after start()). */
  readonly fd: number;
  /** Prepares the file (its header) and starts hashing what the producer writes. */
  start(): void;
  /** Payload bytes seen so far. */
  readonly bytes: number;
  /** When the payload last grew (ms since epoch). */
  readonly lastMoveAt: number;
  /** After the producer exited: completes the file and returns its trailer; the transfer goes on from there. */
  finish(status: ProducerStatus): Promise<StreamTrailer>;
}

/** The source half of one transfer: bytes go into `sink`, the target command answers on `output`. */
export interface SenderChannel {
  /** Where the bytes go. */
  readonly sink: Writable;
  /**
   * Instead of writing framed bytes into `sink`: a file a local producer process writes into
   * directly (scp). `sink` then stays unwritten; the transfer starts after finish().
   */
  readonly producerFile?: ProducerFile;
  /** The target command's stdout: JSON lines of its events. */
  readonly output: Readable;
  /** The target command's stderr (its tail explains a crash). */
  readonly errors: Readable;
  /** Resolves when bytes may flow (the target command is running or the link is shared). */
  readonly ready: Promise<void>;
  /** Resolves when the target command ended (never rejects). */
  readonly exited: Promise<SenderChannelExit>;
  /**
   * Resolves when the receiving side first takes bytes, for transports where that comes well after
   * `ready` (ffl: link hand-over and WebRTC setup); absent when bytes flow from `ready` on.
   */
  readonly connected?: Promise<void>;
  /** True when the target's answers reach us before the first byte is sent (a pipe into the target command). */
  readonly interactive: boolean;
  /** How the bytes travel when the sending side knows it up front (ffl learns it later, from its hook). */
  readonly path?: StreamPath;
  /** Bytes the transport itself reports moving (ffl hook counters, scp copy): feeds stall detection. */
  transportBytes(): number;
  /** Bytes written to disk on the source for this transfer (scp's file); 0 for streaming transports. */
  stagedBytes(): number;
  /** Kills every process of the transfer on both hosts and removes its files. Idempotent. */
  abort(): Promise<void>;
  /**
   * Asks the target command to stop and undo its work (SIGINT), keeping the channel open so its
   * last events still arrive: what Ctrl+C on the source does once the bytes are all sent.
   */
  interrupt(): void;
}

/** What openReceiver() gets: where to read from (the target command's `--from`) and a temp dir. */
export interface ReceiverInputContext {
  readonly from: string;
  readonly deleteAfter: boolean;
  readonly host: Host;
  readonly runId: string;
  /** A label for processes and temp dirs (the stream or app name). */
  readonly label: string;
  /** The pickup code or other credential the transport needs, from the environment. */
  readonly credential?: Secret;
  /** Where the transport's own binary is, when not on PATH (ffl). */
  readonly binaryPath?: string;
  /** Replaces process.stdin for `-` (tests). */
  readonly stdin?: Readable;
}

/** What a transport says about a failed input after the payload broke off. */
export interface InputFailure {
  /**
   * Whose failure it is when the transport can tell (ffl: the sending ffl vanished, so the
   * receiving one failed); default `receiver`.
   */
  readonly stage?: Extract<StreamStage, 'sender' | 'receiver'>;
  readonly code: string;
  readonly message: string;
  /** What to do next, when the transport knows better than "run it again". */
  readonly hint?: string;
  readonly exitCode?: number | null;
  readonly stderrTail?: string;
}

/** The target half of one transfer: the incoming bytes, and the transport's own verdict. */
export interface ReceiverInput {
  readonly stream: Readable;
  /**
   * Set when the input is a complete staged stream file on this host (scp, see scp-file.ts): the
   * stream receiver then checks it in place and lets the consumer read the file itself, instead of
   * reading `stream`.
   */
  readonly stagedFile?: string;
  /** Temp paths the input made (close() removes them; a later run does when this one was killed). */
  readonly paths?: readonly string[];
  /** How the bytes travel, when the receiving side can tell. */
  readonly path?: StreamPath;
  /** Secrets the input knows (masked in messages). */
  readonly secrets: readonly Secret[];
  /**
   * Asked when the payload broke off or ended early: resolves with the transport's own failure (ffl
   * exited non-zero, with its message) within `graceMs`, or undefined when the transport did not fail.
   */
  transportFailure(graceMs: number): Promise<InputFailure | undefined>;
  /** Called when the input ended on its own before the payload did (e.g. ffl exited): lets the reader blame it. */
  onEnded(listener: (failure: InputFailure | undefined) => void): void;
  /** The payload is complete and verified: let the transport finish (ffl's lingering exit) within `graceMs`. */
  complete(graceMs: number): Promise<void>;
  /** Stops the transport's processes and removes its temp files (and a consumed file with deleteAfter). Idempotent. */
  close(): Promise<void>;
}

/** A credential of a transport's target half. */
export interface ReceiverCredentialSpec {
  /** What to call it in prompts and messages ("pickup code"). */
  readonly label: string;
  /** The environment variable that may carry it. */
  readonly envName: string;
  /** Its shape; a value that does not match is refused before anything starts. */
  readonly pattern: RegExp;
  /** The shape in words, for the message ("6 digits"). */
  readonly shape: string;
}

/** What a transport promises, for docs and `--help`. */
export interface TransportGuarantees {
  readonly encryption: string;
  readonly needsSshTrust: boolean;
  readonly stagedBytes: string;
  readonly retry: string;
  readonly pathDetection: string;
}

/**
 * One transport: both halves. The source half starts the target command fed with our bytes
 * (`openSender`); the target half opens the bytes a target command was told to read
 * (`accepts` + `openReceiver`). Generic code never asks which transport it holds.
 */
export interface Transport {
  readonly name: TransportName;
  readonly summary: string;
  readonly guarantees: TransportGuarantees;
  /**
   * True when the target command's answers reach the source before the first payload byte (a pipe
   * into it: ssh, local); false when the target starts reading only once the bytes exist (scp's
   * file, ffl's share), so the source asks it first with a separate check.
   */
  readonly interactive: boolean;
  /**
   * The credential the target half needs besides `--from` (ffl: the pickup code), how it is passed
   * (an environment variable, a 0600 file or a prompt, never argv) and what it looks like.
   */
  readonly receiverCredential?: ReceiverCredentialSpec;
  /** Checks this transport's own tools on both hosts; throws DependencyError naming the host and where it looked. */
  preflight(context: PreflightContext): Promise<void>;
  /** Source half: starts the target command and the sender of one transfer. */
  openSender(context: SenderContext): Promise<SenderChannel>;
  /** Target half: true when this transport delivers a `--from` value like this one here. */
  accepts(from: string, environment: NodeJS.ProcessEnv): boolean;
  /** Target half: opens the bytes named by `--from` on this host. */
  openReceiver(context: ReceiverInputContext): Promise<ReceiverInput>;
}
