import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { DependencyError } from '@deploykit/core';

/** A server process the lab started, detached so it outlives the CLI that started it. */
export interface LabDaemon {
  pid: number;
  /** Start time in clock ticks after boot (/proc/<pid>/stat field 22): with pid, the process identity. */
  startTime: number;
  /** Set once the process exited (while we still watch it); readiness checks give up then. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
}

/** Starts argv detached in its own session, output appended to logFile; throws DependencyError if it cannot start. */
export function spawnLabDaemon(
  argv: readonly string[],
  options: { logFile: string; env: Record<string, string>; uid?: number; gid?: number; cwd?: string },
): LabDaemon {
  const [file, ...args] = argv;
  if (file === undefined) throw new DependencyError('LAB_EMPTY_ARGV', 'spawnLabDaemon got an empty argv');
  const log = openSync(options.logFile, 'a');
  try {
    const child = spawn(file, args, {
      detached: true,
      stdio: ['ignore', log, log],
      env: options.env,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      ...(options.uid === undefined ? {} : { uid: options.uid }),
      ...(options.gid === undefined ? {} : { gid: options.gid }),
    });
    if (child.pid === undefined) {
      throw new DependencyError('LAB_DAEMON_NOT_STARTED', `cannot start ${file}`, {
        hint: 'Run `bash scripts/setup-system.sh` as root to install the lab tools.',
      });
    }
    const daemon: LabDaemon = { pid: child.pid, startTime: readStartTime(child.pid), exit: undefined };
    child.on('error', () => undefined);
    child.on('exit', (code, signal) => (daemon.exit = { code, signal }));
    child.unref();
    return daemon;
  } finally {
    closeSync(log);
  }
}

/**
 * Polls `ready` every 25 ms until it resolves true; throws DependencyError with the log tail when the
 * daemon exits first or `timeoutMs` passes.
 */
export async function waitForDaemon(
  daemon: LabDaemon,
  what: string,
  logFile: string,
  ready: () => Promise<boolean> | boolean,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ready()) return;
    const problem =
      daemon.exit !== undefined
        ? `exited (${daemon.exit.code ?? daemon.exit.signal})`
        : Date.now() > deadline
          ? `was not ready within ${timeoutMs} ms`
          : undefined;
    if (problem !== undefined) {
      let tail = '';
      try {
        tail = readFileSync(logFile, 'utf8').trim().split('\n').slice(-8).join('\n');
      } catch {
        tail = '(no log)';
      }
      throw new DependencyError('LAB_DAEMON_FAILED', `${what} ${problem}; ${logFile} ends with:\n${tail}`, {
        hint: `Read ${logFile}; an old lab may still hold the address (npm run lab -- down).`,
      });
    }
    await sleep(25);
  }
}

function readStartTime(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  } catch {
    return 0;
  }
}

/** Resolves true when a stream connection to a TCP port or unix socket path succeeds. */
export function probeConnect(target: { host: string; port: number } | { path: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(target);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
