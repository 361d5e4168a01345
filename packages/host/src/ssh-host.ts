import { rmSync } from 'node:fs';
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import type { CommandSpec, Host, HostProcess, RunResult } from '@deploykit/core';
import { LocalHost } from './local-host.js';
import { makeControlDir } from './control-dir.js';
import { TailBuffer } from './tail-buffer.js';
import {
  buildRemoteCommand,
  buildSecretPreamble,
  buildSshBaseArgv,
  REMOTE_PID_MARKER,
  type SshTarget,
} from './ssh-argv.js';

/** Exit status of the OpenSSH client when the connection failed or was lost (or the remote command was killed by a signal). */
export const SSH_CONNECTION_FAILED = 255;

/** How long a kill() asked for before the remote pid marker arrived waits for it before it stops only the local ssh. */
export const KILL_MARKER_WAIT_MS = 10_000;

/**
 * Says what ssh's exit 255 means for a command on `hostName`: `unreachable` when the remote command
 * never started (no pid marker: refused, unresolvable, no route, authentication failed), `lost` when
 * it had started and then the connection dropped or the remote process was killed. The message names
 * what happened and `what` was running; the hint says what to do next.
 */
export function describeSshFailure(
  result: Pick<RunResult, 'stderr' | 'remoteStarted'>,
  hostName: string,
  what: string,
): { kind: 'unreachable' | 'lost'; message: string; hint: string } {
  const sshLine = result.stderr
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('Warning: Permanently added'))
    .pop();
  if (result.remoteStarted === true) {
    return {
      kind: 'lost',
      message: `the connection to ${hostName} was lost or the remote process was killed while ${what} ran there (ssh exit 255${sshLine ? `: ${sshLine}` : ', no message: the remote command was killed by a signal'})`,
      hint: `It had started on ${hostName}: check whether ${hostName} is up and something killed it there (OOM killer, a reboot, an operator, sshd restarted), then run it again.`,
    };
  }
  return {
    kind: 'unreachable',
    message: `cannot reach host ${hostName} over ssh${sshLine ? `: ${sshLine}` : ''}`,
    hint: `Check that \`ssh ${hostName} true\` works (keys, known_hosts, sshd running).`,
  };
}

/**
 * Takes the remote pid marker line out of stderr and reports the pid. The marker is the remote
 * command's first output, but ssh's own messages can come before it (`Warning: Permanently added
 * ... to the list of known hosts.`, a ProxyCommand's words), so every line is looked at until the
 * marker was found; lines before it are passed on as they complete, everything after it untouched.
 */
export class PidMarkerFilter extends Transform {
  /** The incomplete line seen so far, while the marker is not found yet; null afterwards. */
  #pending: Buffer | null = Buffer.alloc(0);
  readonly #onPid: (pid: number) => void;
  constructor(onPid: (pid: number) => void) {
    super();
    this.#onPid = onPid;
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#pending === null) {
      callback(null, chunk);
      return;
    }
    let data: Buffer = Buffer.concat([this.#pending, chunk]);
    let start = 0;
    for (let newline = data.indexOf(10); newline !== -1; newline = data.indexOf(10, start)) {
      const line = data.subarray(start, newline).toString('utf8').replace(/\r$/, '');
      const match = line.startsWith(REMOTE_PID_MARKER) ? /^(\d+)$/.exec(line.slice(REMOTE_PID_MARKER.length)) : null;
      if (match) {
        const pid = Number(match[1]);
        if (pid > 1) this.#onPid(pid);
        // Everything before the marker line, and everything after it, goes on; the marker does not.
        const rest = Buffer.concat([data.subarray(0, start), data.subarray(newline + 1)]);
        this.#pending = null;
        callback(null, rest.length > 0 ? rest : undefined);
        return;
      }
      start = newline + 1;
    }
    if (data.length - start > 64 * 1024) {
      // 64 KiB without a line end is no ssh message and no marker: stop looking, pass it all on.
      this.#pending = null;
      callback(null, data);
      return;
    }
    // Complete lines (not the marker) go on now; an incomplete one waits for its end.
    this.#pending = data.subarray(start);
    data = data.subarray(0, start);
    callback(null, data.length > 0 ? data : undefined);
  }
  override _flush(callback: TransformCallback): void {
    callback(null, this.#pending && this.#pending.length > 0 ? this.#pending : undefined);
  }
}

/** Runs commands on another machine through the OpenSSH client, reusing one connection (ControlMaster). */
export class SshHost implements Host {
  readonly kind = 'ssh' as const;
  readonly name: string;
  readonly target: SshTarget;
  readonly #local = new LocalHost('ssh-client');
  readonly #ownsControlDir: boolean;
  constructor(name: string, target: SshTarget) {
    this.name = name;
    this.#ownsControlDir = target.controlDir === undefined;
    this.target = {
      ...target,
      controlDir: target.controlDir ?? makeControlDir('dk-cm-'),
    };
  }

  /** The full local argv (ssh ... -- remote command) for a spec; used by plans and tests. */
  buildArgv(spec: CommandSpec): string[] {
    return [...buildSshBaseArgv(this.target), '--', buildRemoteCommand(spec)];
  }

  spawn(spec: CommandSpec): HostProcess {
    if (spec.stdinFd !== undefined || spec.stdoutFd !== undefined)
      throw new TypeError(
        'SshHost.spawn: stdinFd/stdoutFd are local file descriptors, a remote command cannot use them',
      );
    const preamble = buildSecretPreamble(spec);
    const needsStdin = spec.input !== undefined || spec.stdin === 'pipe' || preamble.length > 0;
    // Bytes stay bytes: a binary input (a bundle header) must not go through a string.
    const input =
      spec.input === undefined
        ? undefined
        : typeof spec.input === 'string'
          ? preamble + spec.input
          : Buffer.concat([Buffer.from(preamble), spec.input]);
    const proc = this.#local.spawn({
      argv: this.buildArgv(spec),
      ...(input !== undefined ? { input } : {}),
      ...(needsStdin && input === undefined ? { stdin: 'pipe' as const } : {}),
      ...(spec.timeoutMs !== undefined ? { timeoutMs: spec.timeoutMs } : {}),
      ...(spec.maxBuffer !== undefined ? { maxBuffer: spec.maxBuffer } : {}),
    });
    if (input === undefined && preamble.length > 0 && proc.stdin) proc.stdin.write(preamble);
    if (input === undefined && spec.stdin !== 'pipe' && proc.stdin && preamble.length > 0) proc.stdin.end();
    let remotePid: number | undefined;
    // A kill() asked for before the marker arrived: sent once it does (or given up, see kill()).
    let pendingKill: NodeJS.Signals | undefined;
    let markerWait: NodeJS.Timeout | undefined;
    let exited = false;
    const stderrTail = new TailBuffer(spec.maxBuffer ?? 1024 * 1024);
    const stderr = proc.stderr.pipe(
      new PidMarkerFilter((pid) => {
        remotePid = pid;
        if (pendingKill !== undefined) {
          const signal = pendingKill;
          pendingKill = undefined;
          clearTimeout(markerWait);
          kill(signal);
        }
      }),
    );
    const stderrOut = new PassThrough();
    stderr.on('data', (chunk: Buffer) => stderrTail.push(chunk));
    stderr.pipe(stderrOut);
    const done = proc.wait().then((result) => {
      exited = true;
      clearTimeout(markerWait);
      return { ...result, argv: spec.argv, stderr: stderrTail.text(), remoteStarted: remotePid !== undefined };
    });
    const kill = (signal: NodeJS.Signals = 'SIGTERM'): void => {
      if (remotePid === undefined && !exited) {
        // The remote command may run already with its marker still on its way (in ssh's pipe, or
        // not read yet on a busy machine): killing only our ssh now would leave it running there
        // (no pty, no SIGHUP). Wait for the marker and signal the remote group then; when none
        // comes (the connection is not up yet or never will be), stop our ssh after a while.
        pendingKill = pendingKill === 'SIGKILL' ? pendingKill : signal;
        markerWait ??= setTimeout(() => {
          if (pendingKill !== undefined) proc.kill(pendingKill === 'SIGINT' ? 'SIGTERM' : pendingKill);
        }, KILL_MARKER_WAIT_MS);
        return;
      }
      // SIGINT asks the remote command to stop gracefully: keep our channel open so its last words
      // (and its cleanup, which a closed pipe would break) still come through. Other signals end both.
      const graceful = signal === 'SIGINT' && remotePid !== undefined;
      if (remotePid !== undefined) {
        // The remote group outlives a dead channel (no pty, no SIGHUP), so signal it explicitly.
        void this.#local.run({
          argv: [
            ...buildSshBaseArgv(this.target),
            '--',
            `kill -${signal.replace(/^SIG/, '')} -- -${remotePid} 2>/dev/null; true`,
          ],
          timeoutMs: 15_000,
        });
      }
      if (!graceful) proc.kill(signal);
    };
    return {
      get pid() {
        return proc.pid;
      },
      stdin: spec.stdin === 'pipe' ? proc.stdin : null,
      stdout: proc.stdout,
      stderr: stderrOut,
      wait: () => done,
      kill,
    };
  }

  async run(spec: CommandSpec): Promise<RunResult> {
    const proc = this.spawn(spec);
    const out = new TailBuffer(spec.maxBuffer ?? 1024 * 1024);
    proc.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    proc.stderr.resume();
    const result = await proc.wait();
    return { ...result, stdout: out.text() };
  }

  /** Closes the shared connection and removes its socket directory. */
  async close(): Promise<void> {
    await this.#local.run({
      argv: [...buildSshBaseArgv(this.target).slice(0, -2), '-O', 'exit', this.target.destination],
      timeoutMs: 10_000,
    });
    if (this.#ownsControlDir && this.target.controlDir)
      rmSync(this.target.controlDir, { recursive: true, force: true });
  }
}
