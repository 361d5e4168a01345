import { spawn as spawnChild } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import {
  revealValue,
  settlesWithinIo,
  type CommandSpec,
  type Host,
  type HostProcess,
  type RunResult,
} from '@deploykit/core';
import { TailBuffer } from './tail-buffer.js';
import { signalProcessGroup, trackProcessGroup, untrackProcessGroup } from './process-groups.js';

const DEFAULT_MAX_BUFFER = 1024 * 1024;
/** Grace period between SIGTERM and SIGKILL when a timeout or kill stops a process group. */
export const KILL_GRACE_MS = 2000;
/**
 * How long run() waits for stdout/stderr to close after the process exited. A script that leaves a
 * daemon holding its pipes (bin/start) must not hang us; see docs/decisions/0002-spawning.md.
 */
const STREAM_DRAIN_MS = 200;

/** Waits until every stream closed, or at most `ms` milliseconds plus the I/O already waiting then. */
async function waitClosed(streams: readonly Readable[], ms: number): Promise<void> {
  const open = streams.filter((s) => !s.closed && !s.destroyed);
  if (open.length === 0) return;
  await settlesWithinIo(
    Promise.all(open.map((s) => new Promise<void>((resolve) => s.once('close', () => resolve())))),
    ms,
  );
}

/** Resolves Secret values in an env map to strings (they go to the child's environment, never argv). */
export function resolveEnv(env: CommandSpec['env']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env ?? {})) out[key] = revealValue(value);
  return out;
}

/** A stream that has ended and closes at once: the stdout of a child writing into a file descriptor. */
function endedStream(): Readable {
  const stream = new PassThrough();
  stream.end();
  stream.resume();
  return stream;
}

/** Runs commands on this machine; each command leads its own process group so it can be killed whole. */
export class LocalHost implements Host {
  readonly kind = 'local' as const;
  readonly name: string;
  readonly #baseEnv: Record<string, string>;
  constructor(name = 'local', baseEnv: Record<string, string> = {}) {
    this.name = name;
    this.#baseEnv = baseEnv;
  }

  spawn(spec: CommandSpec): HostProcess {
    const [file, ...args] = spec.argv.map((a) => revealValue(a));
    if (file === undefined) throw new TypeError('LocalHost.spawn: empty argv');
    const started = Date.now();
    const stdinMode = spec.input !== undefined || spec.stdin === 'pipe' ? 'pipe' : (spec.stdinFd ?? 'ignore');
    const child = spawnChild(file, args, {
      cwd: spec.cwd,
      env: { ...process.env, ...this.#baseEnv, ...resolveEnv(spec.env) },
      stdio: [stdinMode, spec.stdoutFd ?? 'pipe', 'pipe'],
      detached: true,
    });
    const stdout = child.stdout ?? endedStream();
    const stderr = child.stderr!;
    const pid = child.pid;
    if (pid !== undefined) trackProcessGroup(pid);
    const stderrTail = new TailBuffer(spec.maxBuffer ?? DEFAULT_MAX_BUFFER);
    stderr.on('data', (chunk: Buffer) => stderrTail.push(chunk));
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const stopGroup = (signal: NodeJS.Signals): void => {
      if (pid === undefined) return;
      signalProcessGroup(pid, signal);
      if (signal !== 'SIGKILL' && killTimer === undefined) {
        killTimer = setTimeout(() => signalProcessGroup(pid, 'SIGKILL'), KILL_GRACE_MS);
        killTimer.unref();
      }
    };
    const timeout =
      spec.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            stopGroup('SIGTERM');
          }, spec.timeoutMs);
    if (child.stdin) {
      child.stdin.on('error', () => undefined);
      if (spec.input !== undefined) child.stdin.end(spec.input);
    }
    const done = new Promise<RunResult>((resolve) => {
      let spawnError: Error | undefined;
      child.once('error', (error) => {
        spawnError = error;
        // A spawn failure (ENOENT, EACCES) emits no 'exit'.
        if (pid === undefined) finish(127, null);
      });
      const finish = (exitCode: number | null, signal: NodeJS.Signals | null): void => {
        if (timeout) clearTimeout(timeout);
        if (pid !== undefined) untrackProcessGroup(pid);
        void waitClosed([stdout, stderr], STREAM_DRAIN_MS).then(() => {
          const reason = spawnError ? `${file}: ${spawnError.message}\n` : '';
          resolve({
            argv: spec.argv,
            exitCode: spawnError && exitCode === null && signal === null ? 127 : exitCode,
            signal,
            stdout: '',
            stderr: stderrTail.text() + reason,
            durationMs: Date.now() - started,
            timedOut,
          });
        });
      };
      child.once('exit', (code, signal) => finish(code, signal));
    });
    return {
      pid,
      stdin: child.stdin ?? null,
      stdout,
      stderr,
      wait: () => done,
      kill: (signal: NodeJS.Signals = 'SIGTERM') => stopGroup(signal),
    };
  }

  async run(spec: CommandSpec): Promise<RunResult> {
    const proc = this.spawn(spec);
    const out = new TailBuffer(spec.maxBuffer ?? DEFAULT_MAX_BUFFER);
    proc.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    const result = await proc.wait();
    // wait() gave the pipes their drain time; one still open is held by a process the command left
    // behind, and an open pipe would keep this (node) process alive for that process's whole life.
    proc.stdout.destroy();
    proc.stderr.destroy();
    return { ...result, stdout: out.text() };
  }

  async close(): Promise<void> {
    // Nothing pooled locally.
  }
}
