import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createHash, randomBytes } from 'node:crypto';
import { secret, type Secret } from '@deploykit/core';
import { LocalHost } from '@deploykit/host';
import type { StreamEvent } from '../contract.js';
import { FrameEncoder, type ProducerStatus } from '../framing/frame-encoder.js';
import { resolveReceiverTransport } from '../transports/registry.js';
import { runReceiver, type ReceiverOptions, type ReceiveResult } from './receiver.js';

// These cases test behaviour, not timing: the ffl stand-in (sender and receiver) adds no delays.
const host = new LocalHost('local', { FFL_STANDIN_TIME_SCALE: '0' });
let work = '';

/** Runs a bash script in the work dir; fails the test on a non-zero exit. */
async function sh(script: string): Promise<string> {
  const result = await host.run({ argv: ['bash', '-euo', 'pipefail', '-c', script], cwd: work });
  assert.equal(result.exitCode, 0, `${script}\n${result.stderr}`);
  return result.stdout;
}

/** Frames a payload as the sending side would. */
async function frame(payload: Buffer, status: ProducerStatus = { exitCode: 0, signal: null }): Promise<Buffer> {
  const encoder = new FrameEncoder();
  const out: Buffer[] = [];
  encoder.on('data', (chunk: Buffer) => out.push(chunk));
  const ended = new Promise((resolve) => encoder.on('end', resolve));
  encoder.end(payload);
  encoder.finish(status);
  await ended;
  return Buffer.concat(out);
}

/** Writes framed bytes to a file in the work dir and returns its path. */
async function framedFile(name: string, framed: Buffer): Promise<string> {
  const path = join(work, name);
  await writeFile(path, framed);
  return path;
}

/** Where a test receive reads from, as the target command's `--from` would say it. */
interface InputOptions {
  readonly deleteAfter?: boolean;
  readonly stdin?: Readable;
  readonly credential?: Secret;
  readonly binaryPath?: string;
  /** The environment the transport is chosen in (SSH_CONNECTION makes `-` the ssh channel). */
  readonly environment?: NodeJS.ProcessEnv;
}

/** Runs the receiver on the input `from` names (a file, `-`, an ffl link); returns the result and the events. */
async function receive(
  from: string,
  consumer: ReceiverOptions['consumer'],
  extra: Partial<Omit<ReceiverOptions, 'input'>> & InputOptions = {},
): Promise<{ result: ReceiveResult; events: StreamEvent[] }> {
  const { deleteAfter, stdin, credential, binaryPath, environment, ...options } = extra;
  const transport = resolveReceiverTransport(from, environment ?? {});
  const input = await transport.openReceiver({
    from,
    deleteAfter: deleteAfter ?? false,
    host,
    runId: 'run1',
    label: 'volumes',
    ...(stdin === undefined ? {} : { stdin }),
    ...(credential === undefined ? {} : { credential }),
    ...(binaryPath === undefined ? {} : { binaryPath }),
  });
  const events: StreamEvent[] = [];
  const result = await runReceiver({
    stream: 'volumes',
    runId: 'run1',
    consumer,
    input,
    stallSeconds: 5,
    emit: (event) => events.push(event),
    ...options,
  });
  return { result, events };
}

/** Lists what sits beside the target dir (staging or old leftovers show up here). */
async function besideTarget(): Promise<string[]> {
  return (await readdir(join(work, 'target'))).sort();
}

let sourceTar: Buffer;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'receiver-'));
  await sh(`
    mkdir -p src/sub "src/odd name" target/app
    echo hello > src/sub/file
    head -c 300000 /dev/urandom > "src/odd name/blob"
    ln src/sub/file src/sub/hard
    ln -s sub/file src/link
    chown 1234:4321 src/sub/file
    chmod 0640 src/sub/file
    echo old > target/app/old-file
    tar -C src -cf source.tar .
  `);
  sourceTar = await readFile(join(work, 'source.tar'));
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

test('into DIR: a framed real tar lands in DIR with owners, modes and links; old DIR replaced; done after the swap', async () => {
  const path = await framedFile('good.framed', await frame(sourceTar));
  const dir = join(work, 'target', 'app');
  const { result, events } = await receive(path, { kind: 'into', dir });
  assert.equal(result.ok, true, JSON.stringify(result));
  const sha256 = createHash('sha256').update(sourceTar).digest('hex');
  assert.deepEqual(result.ok && { bytes: result.bytes, sha256: result.sha256 }, { bytes: sourceTar.length, sha256 });
  await sh(
    `diff -r src target/app && test "$(stat -c '%u:%g %a' target/app/sub/file)" = "1234:4321 640" && test "$(stat -c %h target/app/sub/hard)" = 2 && test "$(readlink target/app/link)" = sub/file`,
  );
  assert.deepEqual(await besideTarget(), ['app']);
  const kinds = events.map((event) => event.kind);
  assert.deepEqual([kinds[0], kinds.at(-1)], ['ready', 'done']);
  assert.ok(kinds.includes('connected') && kinds.includes('path'));
});

test("command consumer: the payload reaches sha256sum's stdin unchanged", async () => {
  const payload = randomBytes(3 * 1024 * 1024 + 17);
  const path = await framedFile('cmd.framed', await frame(payload));
  const out = join(work, 'sum.txt');
  const { result } = await receive(path, { kind: 'command', argv: ['sh', '-c', 'sha256sum > "$0"', out] });
  assert.equal(result.ok, true, JSON.stringify(result));
  const expected = createHash('sha256').update(payload).digest('hex');
  assert.equal((await readFile(out, 'utf8')).split(' ')[0], expected);
  assert.equal(result.ok && result.sha256, expected);
});

test('a truncated stream fails as integrity; DIR untouched and no staging left', async () => {
  const framed = await frame(sourceTar);
  const path = await framedFile('cut.framed', framed.subarray(0, Math.floor(framed.length / 2)));
  const dir = join(work, 'target', 'app');
  const before = await sh('find target -printf "%p %s\\n" | sort');
  const { result, events } = await receive(path, { kind: 'into', dir });
  assert.equal(result.ok, false);
  assert.deepEqual(!result.ok && [result.stage, result.code], ['integrity', 'FRAME_TRUNCATED']);
  assert.equal(await sh('find target -printf "%p %s\\n" | sort'), before);
  assert.deepEqual(await besideTarget(), ['app']);
  const failed = events.filter((event) => event.kind === 'failed');
  assert.equal(failed.length, 1);
  assert.equal(
    events.some((event) => event.kind === 'done'),
    false,
  );
});

test('producer exit 3 in the trailer fails as stage producer with exit code 3', async () => {
  const path = await framedFile('p3.framed', await frame(sourceTar, { exitCode: 3, signal: null }));
  const { result } = await receive(path, { kind: 'into', dir: join(work, 'target', 'app') });
  assert.deepEqual(!result.ok && [result.stage, result.code, result.exitCode], ['producer', 'PRODUCER_FAILED', 3]);
  assert.match(!result.ok ? result.message : '', /exited with code 3/);
  assert.deepEqual(await besideTarget(), ['app']);
});

test('text after the trailer is ignored; the source file is deleted when asked', async () => {
  const framed = Buffer.concat([await frame(sourceTar), Buffer.from('File transfer completed\n')]);
  const path = await framedFile('trail.framed', framed);
  const dir = join(work, 'target', 'trail');
  const { result } = await receive(path, { kind: 'into', dir }, { deleteAfter: true });
  assert.equal(result.ok, true, JSON.stringify(result));
  await sh('diff -r src target/trail');
  assert.equal(existsSync(path), false);
});

test('an unsafe tar entry fails as integrity before anything is swapped in', async () => {
  await sh("mkdir -p evil && echo x > evil/f && tar -C evil --transform 's,^,../,' -cf evil.tar f");
  const path = await framedFile('evil.framed', await frame(await readFile(join(work, 'evil.tar'))));
  const { result } = await receive(path, { kind: 'into', dir: join(work, 'target', 'app') });
  assert.deepEqual(!result.ok && [result.stage, result.code], ['integrity', 'TAR_UNSAFE_ENTRY']);
  assert.equal(existsSync(join(work, 'target', 'f')), false);
  assert.deepEqual(
    (await besideTarget()).filter((name) => name.startsWith('app')),
    ['app'],
  );
});

test('tar running out of space fails as stage consumer with "No space left on device"', async () => {
  const small = join(work, 'small');
  await mkdir(small);
  await sh(`mount -t tmpfs -o size=1m tmpfs ${small}`);
  try {
    await sh('mkdir -p big && head -c 3000000 /dev/urandom > big/blob && tar -C big -cf big.tar .');
    const path = await framedFile('big.framed', await frame(await readFile(join(work, 'big.tar'))));
    const { result, events } = await receive(path, { kind: 'into', dir: join(small, 'app') });
    assert.deepEqual(!result.ok && [result.stage, result.code, result.exitCode], ['consumer', 'CONSUMER_NO_SPACE', 2]);
    assert.match(!result.ok ? result.message : '', /No space left on device/);
    // GNU tar reports a full disk as a short write; the free-space check names it.
    assert.match(!result.ok ? (result.stderrTail ?? '') : '', /Wrote only|No space left on device/);
    assert.deepEqual(await readdir(small), []);
    const failed = events.find((event) => event.kind === 'failed');
    assert.ok(failed && failed.kind === 'failed' && failed.firstFailureAt.length > 0);
  } finally {
    await sh(`umount ${small}`);
  }
});

test('a SIGSTOPped consumer is detected as a consumer stall within the window and killed', async () => {
  const path = await framedFile('stop.framed', await frame(randomBytes(16 * 1024 * 1024)));
  const pidFile = join(work, 'stopped.pid');
  const started = Date.now();
  const { result, events } = await receive(
    path,
    { kind: 'command', argv: ['sh', '-c', 'echo $$ > "$0"; kill -STOP $$; exec cat > /dev/null', pidFile] },
    { stallSeconds: 2 },
  );
  const elapsed = Date.now() - started;
  assert.deepEqual(!result.ok && [result.stage, result.code], ['consumer', 'STALLED']);
  assert.ok(elapsed < 6000, `took ${elapsed} ms`);
  assert.ok(events.some((event) => event.kind === 'stalled'));
  const pid = Number((await readFile(pidFile, 'utf8')).trim());
  assert.throws(() => process.kill(pid, 0), /ESRCH/);
});

test('a sender that goes silent is detected as a sender stall', async () => {
  const input = new PassThrough();
  const framed = await frame(randomBytes(100000));
  input.write(framed.subarray(0, 50000));
  const { result, events } = await receive(
    '-',
    { kind: 'command', argv: ['sh', '-c', 'cat > /dev/null'] },
    {
      stdin: input,
      environment: { SSH_CONNECTION: '127.0.0.2 40000 127.0.0.3 22' },
      stallSeconds: 1,
    },
  );
  assert.deepEqual(!result.ok && [result.stage, result.code], ['sender', 'STALLED']);
  assert.ok(events.some((event) => event.kind === 'path' && event.path === 'ssh'));
  input.destroy();
});

test('abort kills the consumer and removes staging', async () => {
  const input = new PassThrough();
  input.write((await frame(sourceTar)).subarray(0, 20000));
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 300);
  const dir = join(work, 'target', 'app');
  const { result } = await receive('-', { kind: 'into', dir }, { stdin: input, signal: controller.signal });
  assert.deepEqual(!result.ok && [result.stage, result.code], ['receiver', 'ABORTED']);
  assert.deepEqual(
    (await besideTarget()).filter((name) => name.startsWith('app')),
    ['app'],
  );
  input.destroy();
});

const fflPath = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'ffl-standin', 'bin', 'ffl');

/** Starts the ffl stand-in sender on framed bytes and returns it with its link. */
async function startFflSender(
  framed: Buffer,
  env: Record<string, string> = {},
): Promise<{ link: string; stop: () => Promise<void> }> {
  const cwd = join(work, `ffl-send-${randomBytes(3).toString('hex')}`);
  await mkdir(join(cwd, 'storage'), { recursive: true });
  const sender = host.spawn({
    argv: [
      fflPath,
      '-',
      '--stdin-cache',
      'off',
      '--max-downloads',
      '1',
      '--pickup-code',
      '246810',
      '--foreground',
      '--disable-clipboard',
      '--timeout',
      '60',
    ],
    input: framed,
    cwd,
    env: { FFL_STORAGE_LOCATION: join(cwd, 'storage'), ...env },
  });
  let text = '';
  const link = await new Promise<string>((resolve, reject) => {
    sender.stdout.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const match = /^(http:\/\/127\.0\.0\.1:\d+\/\S+)$/m.exec(text);
      if (match) resolve(match[1]!);
    });
    void sender.wait().then((r) => reject(new Error(`ffl sender exited ${String(r.exitCode)}: ${text}${r.stderr}`)));
  });
  return {
    link,
    stop: async () => {
      sender.kill('SIGINT');
      await sender.wait();
    },
  };
}

test('ffl source (stand-in): direct path with its trailing "File transfer completed" line lands in DIR', async () => {
  const sender = await startFflSender(await frame(sourceTar));
  try {
    const dir = join(work, 'target', 'via-ffl');
    const { result } = await receive(
      sender.link,
      { kind: 'into', dir },
      { credential: secret('246810'), binaryPath: fflPath },
    );
    assert.equal(result.ok, true, JSON.stringify(result));
    await sh('diff -r src target/via-ffl');
    assert.deepEqual(
      (await readdir(tmpdir())).filter((name) => name.startsWith('deploy-ffl-run1-')),
      [],
    );
  } finally {
    await sender.stop();
  }
});

test('ffl source (stand-in): a sender dying mid-stream is named as the sender, with ffl error line and no progress bar in the tail, pickup code never shown', async () => {
  const sender = await startFflSender(await frame(randomBytes(2 * 1024 * 1024)), {
    FFL_STANDIN_KILL_AFTER_BYTES: '500000',
  });
  try {
    const { result, events } = await receive(
      sender.link,
      { kind: 'command', argv: ['sh', '-c', 'cat > /dev/null'] },
      { credential: secret('246810'), binaryPath: fflPath },
    );
    assert.deepEqual(!result.ok && [result.stage, result.code, result.exitCode], ['sender', 'FFL_SENDER_GONE', 1]);
    const failed = !result.ok ? result : undefined;
    assert.match(
      failed?.message ?? '',
      /^the sending ffl is gone: ffl download exited with code 1: Oops, something went wrong: Download failed: Both WebRTC and HTTP downloads failed\. WebRTC: WebRTC connection failed before download completed\. HTTP: Failed to get file metadata: /,
    );
    assert.match(failed?.stderrTail ?? '', /Oops, something went wrong: Download failed:/);
    assert.doesNotMatch(failed?.stderrTail ?? '', /Progress: |\r/);
    assert.doesNotMatch(JSON.stringify({ result, events }), /246810/);
  } finally {
    await sender.stop();
  }
});
