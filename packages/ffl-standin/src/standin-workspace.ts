import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FFL_STANDIN_ENV, fflStandinPath } from './index.js';

// Test support of the stand-in's own tests (not exported by the package).

/** How a stand-in process ended, with everything it printed. */
export interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: string;
  /** Date.now() when it was started, when its first stdout byte came, and when it exited. */
  readonly startedAt: number;
  readonly firstStdoutAt: number | undefined;
  readonly exitedAt: number;
}

/** A started stand-in process and its end. */
export interface Running {
  readonly child: ChildProcess;
  readonly done: Promise<Finished>;
  readonly startedAt: number;
  /** Everything it wrote on stdout so far. */
  stdoutSoFar(): Buffer;
  /** Resolves with the first stdout line matching `pattern` (rejects if it exits first). */
  waitForLine(pattern: RegExp): Promise<string>;
}

/** Options of a Workspace. */
export interface WorkspaceOptions {
  /**
   * `FFL_STANDIN_TIME_SCALE` for every process: default 0 (behaviour cases: no added delays);
   * `'real'` leaves it unset, so the stand-in runs at the real tool's timings (reference §8).
   */
  readonly timeScale?: number | 'real';
}

/** A temp dir with storage + TMPDIR, and every process started in it, all removed by `close()`. */
export class Workspace {
  readonly dir = mkdtempSync(join(tmpdir(), 'ffl-standin-test-'));
  readonly tmp = join(this.dir, 'tmp');
  private readonly children: ChildProcess[] = [];
  private readonly timing: Record<string, string>;

  constructor(options: WorkspaceOptions = {}) {
    mkdirSync(this.tmp);
    const scale = options.timeScale ?? 0;
    // Behaviour cases: no added delays; timing cases: the stand-in's defaults.
    this.timing = scale === 'real' ? {} : { [FFL_STANDIN_ENV.timeScale]: String(scale) };
  }

  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      FFL_STORAGE_LOCATION: this.dir,
      TMPDIR: this.tmp,
      FFL_LANGUAGE: 'en',
      ...this.timing,
      ...extra,
    };
    // The caller's own scale must not leak into a case that means the real timings.
    if (this.timing[FFL_STANDIN_ENV.timeScale] === undefined && extra[FFL_STANDIN_ENV.timeScale] === undefined)
      delete env[FFL_STANDIN_ENV.timeScale];
    return env;
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /** Starts `command` in bash in its own process group (so cleanup reaches the whole pipeline). */
  startShell(command: string, extra: Record<string, string> = {}, cwd = this.dir): Running {
    return this.track(
      spawn('bash', ['-c', command], { cwd, env: this.env(extra), detached: true, stdio: ['ignore', 'pipe', 'pipe'] }),
    );
  }

  /** Starts the stand-in directly (stdin a pipe the test controls). */
  startFfl(args: readonly string[], extra: Record<string, string> = {}, cwd = this.dir): Running {
    return this.track(
      spawn(fflStandinPath, args, { cwd, env: this.env(extra), detached: true, stdio: ['pipe', 'pipe', 'pipe'] }),
    );
  }

  /** Starts a receiver with stdin = /dev/null and returns it running (to kill it, or time it). */
  startReceiver(args: readonly string[], extra: Record<string, string> = {}, cwd = this.dir): Running {
    return this.track(
      spawn(fflStandinPath, args, { cwd, env: this.env(extra), detached: true, stdio: ['ignore', 'pipe', 'pipe'] }),
    );
  }

  /** Runs a receiver with stdin = /dev/null, as an adapter should. */
  receive(args: readonly string[], extra: Record<string, string> = {}, cwd = this.dir): Promise<Finished> {
    return this.track(
      spawn(fflStandinPath, args, { cwd, env: this.env(extra), detached: true, stdio: ['ignore', 'pipe', 'pipe'] }),
    ).done;
  }

  async close(): Promise<void> {
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private track(child: ChildProcess): Running {
    this.children.push(child);
    const startedAt = Date.now();
    const stdout: Buffer[] = [];
    let stderr = '';
    let firstStdoutAt: number | undefined;
    let exitedAt = 0;
    child.stdout?.on('data', (chunk: Buffer) => {
      firstStdoutAt ??= Date.now();
      stdout.push(chunk);
    });
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('exit', () => (exitedAt = Date.now()));
    const done = new Promise<Finished>((resolve) => {
      child.on('close', (code, signal) =>
        resolve({
          code,
          signal,
          stdout: Buffer.concat(stdout),
          stderr,
          startedAt,
          firstStdoutAt,
          exitedAt: exitedAt || Date.now(),
        }),
      );
    });
    const stdoutSoFar = (): Buffer => Buffer.concat(stdout);
    const waitForLine = (pattern: RegExp): Promise<string> =>
      new Promise((resolve, reject) => {
        const look = (): boolean => {
          const line = stdoutSoFar()
            .toString('utf8')
            .split('\n')
            .find((candidate) => pattern.test(candidate));
          if (line === undefined) return false;
          child.stdout?.off('data', look);
          resolve(line);
          return true;
        };
        if (look()) return;
        child.stdout?.on('data', look);
        void done.then(() => {
          if (!look())
            reject(
              new Error(
                `exited before printing a line matching ${String(pattern)}:\n${stdoutSoFar().toString()}${stderr}`,
              ),
            );
        });
      });
    return { child, done, startedAt, stdoutSoFar, waitForLine };
  }
}

/** Runs `body` with a fresh Workspace, always closed afterwards. */
export async function withWorkspace(
  body: (workspace: Workspace) => Promise<void>,
  options: WorkspaceOptions = {},
): Promise<void> {
  const workspace = new Workspace(options);
  try {
    await body(workspace);
  } finally {
    await workspace.close();
  }
}

/** Waits until `path` exists. */
export async function waitForFile(path: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${path}`);
    await sleep(30);
  }
}
