import type { Readable, Writable } from 'node:stream';
import type { Arg } from './quote.js';
import type { Secret } from './secret.js';

/** One command to run on a host, as data. */
export interface CommandSpec {
  readonly argv: readonly Arg[];
  readonly cwd?: string;
  /** Extra environment; Secret values travel by environment (local) or stdin preamble (ssh), never argv. */
  readonly env?: Readonly<Record<string, string | Secret>>;
  /** Bytes to write to stdin, then close it. Without input, stdin is /dev/null unless `stdin: 'pipe'`. */
  readonly input?: string | Buffer;
  readonly stdin?: 'ignore' | 'pipe';
  /**
   * Local hosts only: the child reads its stdin from this open file descriptor (at its current
   * offset) instead of a pipe, so no byte passes through us. Hosts that cannot honour it throw.
   */
  readonly stdinFd?: number;
  /**
   * Local hosts only: the child writes its stdout straight into this open file descriptor (a
   * staged file); the HostProcess's stdout is then an empty, ended stream. Hosts that cannot honour it throw.
   */
  readonly stdoutFd?: number;
  /** Kill the whole process group after this many milliseconds. */
  readonly timeoutMs?: number;
  /** Keep at most this many bytes of stdout/stderr in the result (tail). Default 1 MiB. */
  readonly maxBuffer?: number;
  /** A short label for logs and plans. */
  readonly label?: string;
}

/** What a finished command left behind. */
export interface RunResult {
  readonly argv: readonly Arg[];
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
  readonly timedOut: boolean;
  /**
   * ssh only: whether the remote command started (its pid marker arrived). ssh exits 255 both when
   * it could not connect and when the connection was lost or the remote command was killed after
   * it started; this tells the two apart.
   */
  readonly remoteStarted?: boolean;
}

/** A running command whose streams the caller consumes. */
export interface HostProcess {
  readonly pid: number | undefined;
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Resolves when the process (group) ended; never rejects. */
  wait(): Promise<RunResult>;
  /** Signals the whole process group (locally) or the remote command (ssh). */
  kill(signal?: NodeJS.Signals): void;
}

/** Where commands run: the only thing that spawns processes. */
export interface Host {
  readonly name: string;
  readonly kind: 'local' | 'ssh' | 'recording';
  /** Runs to completion and collects output. Never rejects for a non-zero exit; check exitCode. */
  run(spec: CommandSpec): Promise<RunResult>;
  /** Starts a command with streaming stdio (stdin is a pipe when spec.stdin is 'pipe'). */
  spawn(spec: CommandSpec): HostProcess;
  /** Releases connections (ssh ControlMaster). */
  close(): Promise<void>;
}
