// The stand-in at the real tool's timings (reference §8), with real processes and real delays: these
// cases test timing, so they leave FFL_STANDIN_TIME_SCALE unset. They mostly sleep and run concurrently
// (about 75 s of wall time, bounded by the 60 s send-buffer stall).
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FFL_STANDIN_ENV, readHookEventFile, type FflHookEvent } from './index.js';
import { withWorkspace, type Running, type Workspace } from './standin-workspace.js';

const MiB = 1024 * 1024;
/** Late timers and process start-up on a loaded 2-core machine: added to every upper bound. */
const SLACK_MS = 1500;
const SHARE_ARGS = ['-', '--max-downloads', '1', '--stdin-cache', 'off', '--foreground', '--disable-clipboard'];

/** Asserts a measured duration against the reference's range and reports it as a test diagnostic. */
function assertWithin(t: TestContext, actualMs: number, minMs: number, maxMs: number, what: string): void {
  t.diagnostic(`${what}: ${(actualMs / 1000).toFixed(2)} s`);
  assert.ok(
    actualMs >= minMs && actualMs <= maxMs + SLACK_MS,
    `${what}: ${(actualMs / 1000).toFixed(2)} s, expected ${minMs / 1000}-${maxMs / 1000} s (+${SLACK_MS / 1000} s slack)`,
  );
}

/** ms since epoch of a hook event (local ISO time without an offset, as ffl writes it). */
function eventTime(event: FflHookEvent): number {
  return Date.parse(event.timestamp);
}

function findEvent(hook: string, name: string): FflHookEvent | undefined {
  return existsSync(hook) ? readHookEventFile(hook).find((event) => event.event === name) : undefined;
}

async function waitForEvent(hook: string, name: string, timeoutMs: number): Promise<FflHookEvent> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const event = findEvent(hook, name);
    if (event !== undefined) return event;
    if (Date.now() > deadline) throw new Error(`no ${name} within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

/** Storage dirs of one side: what ffl leaves there. */
function storageFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.startsWith('ffl.db'))
    .sort();
}

/** Starts a sender on `payload` with its own storage dir and hook file; resolves once its link is printed. */
async function startSender(
  workspace: Workspace,
  payload: Buffer,
  args: readonly string[] = [],
  extra: Record<string, string> = {},
): Promise<{ sender: Running; link: string; linkAt: number; hook: string; storage: string }> {
  const storage = workspace.path(`sender-${randomBytes(3).toString('hex')}`);
  mkdirSync(storage);
  const hook = join(storage, 'events.jsonl');
  const sender = workspace.startFfl([...SHARE_ARGS, '--hook', hook, ...args], {
    FFL_STORAGE_LOCATION: storage,
    ...extra,
  });
  // A sender that dies or stops reading leaves the rest of the payload unwritten.
  sender.child.stdin?.on('error', () => undefined);
  sender.child.stdin?.end(payload);
  const link = await sender.waitForLine(/^http:\/\/127\.0\.0\.1:\d+\/[A-Za-z0-9]{8}$/);
  return { sender, link, linkAt: Date.now(), hook, storage };
}

function receiverStorage(workspace: Workspace): string {
  const storage = workspace.path(`receiver-${randomBytes(3).toString('hex')}`);
  mkdirSync(storage);
  return storage;
}

describe('ffl stand-in at real timings (reference §8)', { concurrency: true }, () => {
  it('direct path: link 1-7 s after start, first byte 8-13 s after the receiver starts, ~3 MiB/s, sender exit 4-6 s after the last byte; progress bars and ffl.db on both sides', async (t) => {
    await withWorkspace(
      async (workspace) => {
        const payload = randomBytes(6 * MiB);
        const { sender, link, linkAt, hook, storage } = await startSender(workspace, payload, [
          '--pickup-code',
          '123456',
        ]);
        assertWithin(t, linkAt - sender.startedAt, 1000, 7000, 'link printed after start');
        const downloads = receiverStorage(workspace);
        const received = await workspace.receive(['download', link, '--stdout', '--pickup-code', '123456'], {
          FFL_STORAGE_LOCATION: downloads,
        });
        const sent = await sender.done;
        assert.equal(received.code, 0, received.stderr);
        assert.equal(sent.code, 0);
        assert.ok(received.stdout.subarray(0, payload.length).equals(payload), 'payload differs');
        assertWithin(
          t,
          eventTime(await waitForEvent(hook, '/webrtc/offer/create', 0)) - received.startedAt,
          6500,
          8000,
          '/webrtc/offer/create after the receiver started',
        );
        assert.ok(received.firstStdoutAt !== undefined);
        assertWithin(
          t,
          received.firstStdoutAt - received.startedAt,
          8000,
          13000,
          'first payload byte after the receiver started',
        );
        const complete = await waitForEvent(hook, '/webrtc/transfer/complete', 0);
        const rate = Number(complete.data['averageSpeed']);
        t.diagnostic(`throughput: ${(rate / MiB).toFixed(2)} MiB/s`);
        assert.ok(rate >= 2.3 * MiB && rate <= 4 * MiB, `throughput ${(rate / MiB).toFixed(2)} MiB/s, expected 2.3-4`);
        assertWithin(t, sent.exitedAt - eventTime(complete), 4000, 6000, 'sender exit after /webrtc/transfer/complete');
        // tqdm bars on stderr on both sides, `\r`-separated (the sender's marks the direct path).
        assert.match(sent.stderr, /\rProgress: [\d.]+ [KMG]?B \[\d\d:\d\d, [^\]]+\], {2}P2P direct/);
        assert.match(received.stderr, /\rProgress: [\d.]+ [KMG]?B \[\d\d:\d\d, [^\]]+\]/);
        assert.match(received.stderr, /Download complete\n$/);
        // SQLite history on both sides; a clean exit leaves no -wal/-shm.
        assert.deepEqual(storageFiles(storage), ['ffl.db']);
        assert.deepEqual(storageFiles(downloads), ['ffl.db']);
      },
      { timeScale: 'real' },
    );
  });

  it('relay path (receiver DISABLE_WEBRTC=True): no WebRTC setup before the first byte', async (t) => {
    await withWorkspace(
      async (workspace) => {
        const payload = randomBytes(MiB);
        const { sender, link } = await startSender(workspace, payload);
        const received = await workspace.receive(['download', link, '--stdout'], {
          FFL_STORAGE_LOCATION: receiverStorage(workspace),
          DISABLE_WEBRTC: 'True',
        });
        assert.equal(received.code, 0, received.stderr);
        assert.ok(received.stdout.equals(payload));
        assert.ok(received.firstStdoutAt !== undefined);
        assertWithin(t, received.firstStdoutAt - received.startedAt, 0, 1500, 'first byte over the relay');
        assert.equal((await sender.done).code, 0);
      },
      { timeScale: 'real' },
    );
  });

  it('receiver killed mid-stream: the sender keeps running, emits /download/fail "WebRTC send buffer stalled" 60 s later, SIGINT exits 0; the killed receiver leaves ffl.db-wal/-shm', async (t) => {
    await withWorkspace(
      async (workspace) => {
        const { sender, link, hook } = await startSender(workspace, randomBytes(30 * MiB));
        const downloads = receiverStorage(workspace);
        const receiver = workspace.startReceiver(['download', link, '--stdout'], { FFL_STORAGE_LOCATION: downloads });
        while (receiver.stdoutSoFar().length < MiB) await sleep(50);
        process.kill(-receiver.child.pid!, 'SIGKILL');
        const killedAt = Date.now();
        await receiver.done;
        const fail = await waitForEvent(hook, '/download/fail', 75_000);
        assertWithin(t, eventTime(fail) - killedAt, 59_500, 61_000, '/download/fail after the receiver died');
        assert.equal(fail.data['reason'], 'unknown');
        assert.match(
          String(fail.data['error']),
          /^WebRTC send buffer stalled during chunk send after sending \d+ bytes for peer [0-9a-f]{32} \(waited 60s\)$/,
        );
        await sleep(1000);
        assert.equal(sender.child.exitCode, null, 'the sender never exits on its own');
        const names = readHookEventFile(hook).map((event) => event.event);
        assert.ok(!names.includes('/download/limit/reach') && !names.includes('/share/complete'), names.join(' '));
        process.kill(sender.child.pid!, 'SIGINT');
        const sent = await sender.done;
        assert.equal(sent.code, 0);
        assert.equal(readHookEventFile(hook).at(-1)?.event, '/share/stop');
        assert.deepEqual(storageFiles(downloads), ['ffl.db', 'ffl.db-shm', 'ffl.db-wal']);
      },
      { timeScale: 'real' },
    );
  });

  it('sender killed mid-stream: the receiving ffl notices after 29-33 s, exits 1 and appends the metadata error to stdout; the sender leaves ffl.db-wal/-shm', async (t) => {
    await withWorkspace(
      async (workspace) => {
        const payload = randomBytes(12 * MiB);
        const { sender, link, storage } = await startSender(workspace, payload, [], {
          [FFL_STANDIN_ENV.killAfterBytes]: String(4 * MiB),
        });
        const receiver = workspace.startReceiver(['download', link, '--stdout'], {
          FFL_STORAGE_LOCATION: receiverStorage(workspace),
        });
        const sent = await sender.done;
        assert.equal(sent.signal, 'SIGKILL');
        const received = await receiver.done;
        assert.equal(received.code, 1);
        assertWithin(t, received.exitedAt - sent.exitedAt, 29_000, 33_000, 'receiver exit after the sender died');
        const output = received.stdout.toString('latin1');
        const oops = output.indexOf('Oops, something went wrong: ');
        assert.ok(
          oops > 0 && received.stdout.subarray(0, oops).equals(payload.subarray(0, oops)),
          `partial payload then the error (at ${oops})`,
        );
        const line = output.slice(oops).split('\n')[0] ?? '';
        assert.match(
          line,
          /^Oops, something went wrong: Download failed: Both WebRTC and HTTP downloads failed\. WebRTC: WebRTC connection failed before download completed\. HTTP: Failed to get file metadata: HTTPConnectionPool\(host='127\.0\.0\.1', port=\d+\): Max retries exceeded with url: \/[A-Za-z0-9]{8} \(Caused by NewConnectionError\('<urllib3\.connection\.HTTPConnection object at 0x[0-9a-f]+>: Failed to establish a new connection: \[Errno 111\] Connection refused'\)\)$/,
        );
        // The error is on stdout only; stderr holds status lines and progress-bar frames.
        assert.doesNotMatch(received.stderr, /Oops/);
        assert.match(received.stderr, /\rProgress: /);
        assert.deepEqual(storageFiles(storage), ['ffl.db', 'ffl.db-shm', 'ffl.db-wal']);
      },
      { timeScale: 'real' },
    );
  });

  it('wrong pickup code: the receiver exits 1 after ~7 s with the 401 text on stdout; the sender emits nothing and keeps waiting', async (t) => {
    await withWorkspace(
      async (workspace) => {
        const { sender, link, hook } = await startSender(workspace, randomBytes(1000), ['--pickup-code', '123456']);
        const received = await workspace.receive(['download', link, '--stdout', '--pickup-code', '654321'], {
          FFL_STORAGE_LOCATION: receiverStorage(workspace),
        });
        assert.equal(received.code, 1);
        assertWithin(t, received.exitedAt - received.startedAt, 6500, 8000, 'receiver exit after a wrong code');
        assert.match(
          received.stdout.toString(),
          new RegExp(
            `WebRTC: 401 Client Error: Unauthorized for url: ${link.replace(/[.]/g, '\\.')}/offer\\. HTTP: HTTP download failed: HTTP download failed: 401\\n`,
          ),
        );
        const names = readHookEventFile(hook).map((event) => event.event);
        assert.equal(names.at(-1), '/share/available', `nothing after /share/available: ${names.join(' ')}`);
        assert.equal(sender.child.exitCode, null);
        process.kill(sender.child.pid!, 'SIGINT');
        assert.equal((await sender.done).code, 0);
      },
      { timeScale: 'real' },
    );
  });

  it('FFL_STANDIN_TIME_SCALE=0.1 scales every delay and the default throughput by a tenth', async (t) => {
    await withWorkspace(
      async (workspace) => {
        const payload = randomBytes(12 * MiB);
        const { sender, link, linkAt, hook } = await startSender(workspace, payload);
        assertWithin(t, linkAt - sender.startedAt, 100, 300, 'link printed after start');
        const received = await workspace.receive(['download', link, '--stdout'], {
          FFL_STORAGE_LOCATION: receiverStorage(workspace),
        });
        const sent = await sender.done;
        assert.equal(received.code, 0, received.stderr);
        assert.ok(received.firstStdoutAt !== undefined);
        assertWithin(
          t,
          received.firstStdoutAt - received.startedAt,
          800,
          1300,
          'first byte after the receiver started',
        );
        const complete = await waitForEvent(hook, '/webrtc/transfer/complete', 0);
        const rate = Number(complete.data['averageSpeed']);
        t.diagnostic(`throughput: ${(rate / MiB).toFixed(2)} MiB/s`);
        // Paced at 30 MiB/s: never faster than that, and clearly above the real 3 MiB/s pacing (a
        // loaded machine may not reach 30, but the 12 MiB would take 4 s at the real pace).
        assert.ok(
          rate > 3.3 * MiB && rate <= 40 * MiB,
          `throughput ${(rate / MiB).toFixed(1)} MiB/s, expected above 3.3 and at most 40 (paced at 30 in 3 MiB slices)`,
        );
        assertWithin(t, sent.exitedAt - eventTime(complete), 400, 600, 'sender exit after the last byte');
      },
      { timeScale: 0.1 },
    );
  });
});
