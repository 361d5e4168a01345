// Both halves of the ffl transport on this machine, against the stand-in at the real ffl timings
// (reference §8, docs/ffl-standin.md), each run in a sandbox of its own (TMPDIR, state dir, and a marker
// in the environment of every process it starts), so what a run leaves behind is found by its run id.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { quoteWord, type HostProcess } from '@deploykit/core';
import { isProcessRunning, LocalHost } from '@deploykit/host';
import { fflStandinPath, readHookEventFile } from '@deploykit/ffl-standin';
import { FrameEncoder, runStream, type StreamEvent, type StreamResult } from '@deploykit/transport';
import { DEPLOY_BIN } from './helpers/index.js';

export const MiB = 1024 * 1024;
export const DEPLOY = [process.execPath, DEPLOY_BIN];
/** Set in the environment of every process a run starts, so /proc finds them by the run id. */
export const RUN_MARKER = 'DK_TEST_FFL_RUN';
export const PICKUP_CODE = '246813';

/** One run's own corner of the machine: TMPDIR, state dir, and a LocalHost marking its processes. */
export interface Sandbox {
  readonly runId: string;
  readonly dir: string;
  readonly tmp: string;
  readonly state: string;
  readonly host: LocalHost;
}

export async function createSandbox(): Promise<Sandbox> {
  const runId = `t${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const dir = await mkdtemp(join(tmpdir(), 'dk-ffl-timing-'));
  const tmp = join(dir, 'tmp');
  const state = join(dir, 'state');
  await Promise.all([mkdir(tmp), mkdir(state), mkdir(join(dir, 'apps'))]);
  const host = new LocalHost('local', {
    TMPDIR: tmp,
    DEPLOY_STATE_DIR: state,
    DEPLOY_APPS_ROOT: join(dir, 'apps'),
    // The target half finds ffl (the stand-in) on PATH, as on a real host.
    PATH: `${dirname(fflStandinPath)}:${process.env.PATH ?? ''}`,
    [RUN_MARKER]: runId,
  });
  return { runId, dir, tmp, state, host };
}

/** Live processes (zombies excluded) whose environment carries the run's marker, with their command lines. */
export async function listRunProcesses(runId: string): Promise<{ pid: number; command: string }[]> {
  const found: { pid: number; command: string }[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const [environ, cmdline] = await Promise.all([
        readFile(`/proc/${name}/environ`, 'utf8'),
        readFile(`/proc/${name}/cmdline`, 'utf8'),
      ]);
      if (environ.split('\0').includes(`${RUN_MARKER}=${runId}`) && isProcessRunning(Number(name)))
        found.push({ pid: Number(name), command: cmdline.split('\0').join(' ').trim() });
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}

/** What the run left: its processes (after up to `graceMs` to exit) and anything in its TMPDIR. */
export async function findLeftovers(sandbox: Sandbox, graceMs = 5000): Promise<string[]> {
  const deadline = Date.now() + graceMs;
  let processes = await listRunProcesses(sandbox.runId);
  while (processes.length > 0 && Date.now() < deadline) {
    await sleep(200);
    processes = await listRunProcesses(sandbox.runId);
  }
  const files = await readdir(sandbox.tmp);
  return [
    ...processes.map((p) => `process ${p.pid}: ${p.command}`),
    ...files.map((name) => `${name.includes(sandbox.runId) ? 'file of the run' : 'file'} in TMPDIR: ${name}`),
  ];
}

/** Kills whatever of the run is still alive (by the pids /proc names for its marker) and removes its sandbox. */
export async function disposeSandbox(sandbox: Sandbox): Promise<void> {
  for (const { pid } of await listRunProcesses(sandbox.runId)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  await rm(sandbox.dir, { recursive: true, force: true });
}

export async function withSandbox<T>(body: (sandbox: Sandbox) => Promise<T>): Promise<T> {
  const sandbox = await createSandbox();
  try {
    return await body(sandbox);
  } finally {
    await disposeSandbox(sandbox);
  }
}

export interface TimedEvent {
  readonly at: number;
  readonly event: StreamEvent;
}

/** Streams `bytes` random bytes from a file through `deploy stream receive` (target) over ffl into a file; returns the result and timed events. */
export async function sendOverFfl(
  sandbox: Sandbox,
  options: { bytes: number; stallSeconds?: number; readySeconds?: number; senderEnv?: Record<string, string> },
): Promise<{ result: StreamResult; events: TimedEvent[]; input: Buffer; output: string; started: number }> {
  const input = randomBytes(options.bytes);
  const inputPath = join(sandbox.dir, 'input.bin');
  await writeFile(inputPath, input);
  const output = join(sandbox.dir, 'output.bin');
  const events: TimedEvent[] = [];
  const started = Date.now();
  const result = await runStream({
    name: 'timing',
    transport: 'ffl',
    source: sandbox.host,
    target: sandbox.host,
    producer: ['cat', inputPath],
    consumer: { kind: 'command', argv: ['sh', '-c', `cat > ${quoteWord(output)}`] },
    runId: sandbox.runId,
    retries: 0,
    deployCommand: DEPLOY,
    transportOptions: {
      ffl: { path: fflStandinPath, ...(options.senderEnv === undefined ? {} : { env: options.senderEnv }) },
    },
    ...(options.stallSeconds === undefined ? {} : { stallSeconds: options.stallSeconds }),
    ...(options.readySeconds === undefined ? {} : { readySeconds: options.readySeconds }),
    onEvent: (event) => events.push({ at: Date.now(), event }),
  });
  return { result, events, input, output, started };
}

/** ms from the link (the `ready` event with the ticket) to the first payload byte the target reported. */
export function measureFirstByte(events: readonly TimedEvent[]): { linkAt: number; firstByteAt: number } {
  const link = events.find(({ event }) => event.kind === 'ready' && event.ticket !== undefined);
  const first = events.find(({ event }) => event.kind === 'progress' && event.side === 'consumer' && event.bytes > 0);
  assert.ok(
    link !== undefined && first !== undefined,
    `no link or no first byte in ${events.map(({ event }) => event.kind).join(' ')}`,
  );
  return { linkAt: link.at, firstByteAt: first.at };
}

export function describeResult(result: StreamResult): string {
  return result.ok ? 'ok' : `${result.failure?.stage} ${result.failure?.code}: ${result.failure?.message}`;
}

/** Two busy loops (so both cores are loaded) for the duration of `body`; stopped by their pids. */
export async function withBusyCpus<T>(body: () => Promise<T>): Promise<T> {
  const loops: ChildProcess[] = [0, 1].map(() => spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));
  try {
    return await body();
  } finally {
    for (const loop of loops) if (loop.pid !== undefined) process.kill(loop.pid, 'SIGKILL');
  }
}

/** Frames a payload as the sending side would (optionally without its trailer: a stream still running). */
export async function frame(payload: Buffer, finished = true): Promise<Buffer> {
  const encoder = new FrameEncoder();
  const out: Buffer[] = [];
  encoder.on('data', (chunk: Buffer) => out.push(chunk));
  if (!finished) {
    encoder.write(payload);
    await sleep(50);
    return Buffer.concat(out);
  }
  const ended = new Promise((resolve) => encoder.on('end', resolve));
  encoder.end(payload);
  encoder.finish({ exitCode: 0, signal: null });
  await ended;
  return Buffer.concat(out);
}

/** A stand-in share started by hand (no run marker: it is the other side, not the run), at real timings. */
export async function startShare(
  sandbox: Sandbox,
  options: { input?: Buffer; env?: Record<string, string> },
): Promise<{ share: HostProcess; link: string; hook: string; stop: () => Promise<void> }> {
  const home = join(sandbox.dir, `share-${randomBytes(3).toString('hex')}`);
  await mkdir(join(home, 'tmp'), { recursive: true });
  const hook = join(home, 'events.jsonl');
  const host = new LocalHost('source', { TMPDIR: join(home, 'tmp') });
  const share = host.spawn({
    argv: [
      fflStandinPath,
      '-',
      '--stdin-cache',
      'off',
      '--max-downloads',
      '1',
      '--pickup-code',
      PICKUP_CODE,
      '--e2ee',
      '--hook',
      hook,
      '--foreground',
      '--disable-clipboard',
    ],
    cwd: home,
    env: { FFL_STORAGE_LOCATION: home, ...options.env },
    ...(options.input === undefined ? { stdin: 'pipe' as const } : { input: options.input }),
  });
  share.stdin?.on('error', () => undefined);
  let text = '';
  const link = await new Promise<string>((resolve, reject) => {
    share.stdout.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const match = /^(http:\/\/127\.0\.0\.1:\d+\/\S+)$/m.exec(text);
      if (match?.[1] !== undefined) resolve(match[1]);
    });
    void share
      .wait()
      .then((result) => reject(new Error(`the share ended (${String(result.exitCode)}) before its link: ${text}`)));
  });
  return {
    share,
    link,
    hook,
    stop: async () => {
      share.kill('SIGKILL');
      await share.wait();
    },
  };
}

export async function waitForHookEvent(hook: string, name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (readHookEventFile(hook).some((event) => event.event === name)) return;
    } catch {
      // Not written yet.
    }
    if (Date.now() > deadline) throw new Error(`no ${name} within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

/** The JSONL events a `deploy ... --jsonl` printed on stdout. */
export function parseJsonl(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

export function collectOutput(child: HostProcess): () => string {
  const chunks: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  return () => Buffer.concat(chunks).toString('utf8');
}

export function diagnose(t: TestContext, what: string, ms: number): void {
  t.diagnostic(`${what}: ${(ms / 1000).toFixed(2)} s`);
}
