import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FFL_STANDIN_ENV, fflStandinPath, readHookEventFile, startHookEndpoint } from './index.js';
import { waitForFile, withWorkspace } from './standin-workspace.js';

const FFL = fflStandinPath;
const COMPLETED_LINE = 'File transfer completed\n';

/** Waits for the atomically written `--json` file and returns its parsed content. */
async function readShareJson(path: string): Promise<Record<string, unknown>> {
  await waitForFile(path);
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

function eventNames(path: string): string[] {
  return readHookEventFile(path).map((event) => event.event);
}

/** Drops repeated progress events so a sequence can be compared exactly. */
function collapseProgress(names: readonly string[]): string[] {
  return names.filter((name, index) => !(name.endsWith('/progress') && names[index - 1] === name));
}

const HEAD_OF_SEQUENCE = [
  '/cli/arguments/global/options/get',
  '/cli/arguments/get',
  '/source/reader/create',
  '/share/create',
  '/share/start',
  '/tunnel/start',
  '/tunnel/create',
  '/share/link/create',
];

describe('ffl stand-in', { concurrency: 4 }, () => {
  it('follows the argv grammar and its exit codes (reference §0)', async () => {
    await withWorkspace(async (workspace) => {
      const help = await workspace.receive([]);
      assert.equal(help.code, 0);
      assert.match(help.stdout.toString(), /^usage: FFL\.py/);
      const version = await workspace.receive(['--version']);
      assert.equal(version.code, 0);
      assert.match(version.stdout.toString(), /4\.0\.6/);
      const unknown = await workspace.receive(['-', '--bogus']);
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /^usage: FFL\.py[\s\S]*error: unrecognized arguments: --bogus/);
      assert.equal(unknown.stdout.length, 0);
      const badChoice = await workspace.receive(['--hook', workspace.path('h.jsonl'), '-', '--stdin-cache', 'maybe']);
      assert.equal(badChoice.code, 2);
      assert.match(badChoice.stderr, /invalid choice: 'maybe'/);
      const badPort = await workspace.receive(['share', '-', '--port', '80']);
      assert.equal(badPort.code, 2);
      const badCode = await workspace.receive(['-', '--pickup-code', '12345']);
      assert.equal(badCode.code, 1);
      assert.equal(badCode.stdout.toString(), 'Error: --pickup-code must be exactly 6 digits\n');
      const missingUrl = await workspace.receive(['download']);
      assert.equal(missingUrl.code, 2);
      const missingHookDir = await workspace.receive(['-', '--hook', workspace.path('missing/events.jsonl')]);
      assert.equal(missingHookDir.code, 1);
      assert.match(
        missingHookDir.stdout.toString(),
        /^Oops, something went wrong: \[Errno 2\] No such file or directory: '.*missing\/events\.jsonl'\n/,
      );
    });
  });

  it('direct path: 3 MB arrives with the trailing "File transfer completed" line and sequence A', async () => {
    await withWorkspace(async (workspace) => {
      const hook = workspace.path('events.jsonl');
      const json = workspace.path('share.json');
      const sender = workspace.startShell(
        `head -c 3000000 /dev/urandom | tee input.bin | ${FFL} - --foreground --disable-clipboard --max-downloads 1 --pickup-code 123456 --e2ee --hook ${hook} --json ${json} --name backup.tar`,
      );
      const share = await readShareJson(json);
      assert.deepEqual(Object.keys(share), [
        'file',
        'content_name',
        'file_size',
        'upload_mode',
        'tunnel_type',
        'link',
        'e2ee',
        'pickup_code',
        'pubkey_enabled',
        'user',
      ]);
      assert.equal(share['file'], '-');
      assert.equal(share['file_size'], -1);
      assert.equal(share['content_name'], 'backup.tar');
      assert.equal(share['pickup_code'], '123456');
      assert.equal(share['e2ee'], true);
      const link = String(share['link']);
      assert.match(link, /^http:\/\/127\.0\.0\.1:\d+\/[A-Za-z0-9]{8}$/);

      const started = Date.now();
      const received = await workspace.receive(['download', link, '--stdout', '--pickup-code', '123456']);
      const sent = await sender.done;
      const elapsed = Date.now() - started;
      assert.equal(received.code, 0, received.stderr);
      assert.equal(sent.code, 0);
      const input = readFileSync(workspace.path('input.bin'));
      assert.equal(received.stdout.length, 3_000_000 + 24, received.stderr);
      assert.ok(received.stdout.subarray(0, 3_000_000).equals(input), 'payload differs');
      assert.equal(received.stdout.subarray(3_000_000).toString(), COMPLETED_LINE);
      assert.match(received.stderr, /🔒 End-to-end encryption detected\n/);
      assert.match(received.stderr, /Attempting WebRTC download\.\.\.\n[\s\S]*Checksum verified\nDownload complete\n$/);

      const lines = sent.stdout.toString().split('\n');
      assert.equal(lines[0], '🔐 End-to-end encryption enabled');
      const linkIndex = lines.indexOf("Please share the link below with the person you'd like to share the file with.");
      assert.equal(lines[linkIndex + 1], link);
      assert.equal(lines[linkIndex + 2], '');
      assert.ok(lines.includes('Pickup code: 123456'));
      assert.ok(lines.includes('Maximum downloads (1) reached. Shutting down server.'));

      assert.deepEqual(collapseProgress(eventNames(hook)), [
        ...HEAD_OF_SEQUENCE,
        '/e2ee/create',
        '/session/create',
        '/server/create',
        '/share/available',
        '/webrtc/offer/create',
        '/webrtc/connect/complete',
        '/webrtc/transfer/create',
        '/webrtc/transfer/progress',
        '/webrtc/transfer/complete',
        '/receipt/create',
        '/download/limit/reach',
        '/session/delete',
        '/server/shutdown',
        '/share/complete',
      ]);
      const events = readHookEventFile(hook);
      const firstLine = readFileSync(hook, 'utf8').split('\n')[0] ?? '';
      assert.ok(firstLine.startsWith('{"event": "/cli/arguments/global/options/get", "timestamp": "'), firstLine);
      assert.deepEqual(Object.keys(JSON.parse(firstLine) as object), ['event', 'timestamp', 'data']);
      assert.match(events[0]?.timestamp ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
      assert.equal(events.find((event) => event.event === '/share/create')?.data['fileSize'], 0);
      assert.equal(events.find((event) => event.event === '/share/link/create')?.data['fileSize'], -1);
      const serverCreate = events.find((event) => event.event === '/server/create')?.data;
      assert.equal((serverCreate?.['recipientAuth'] as Record<string, unknown> | undefined)?.['pickupCode'], '123456');
      assert.equal(
        events.find((event) => event.event === '/webrtc/transfer/complete')?.data['bytesTransferred'],
        3_000_000,
      );
      assert.equal(events.find((event) => event.event === '/session/delete')?.data['status'], 3);
      // Progress is throttled to at most one event per second of transfer.
      const progressCount = events.filter((event) => event.event === '/webrtc/transfer/progress').length;
      assert.ok(progressCount <= Math.ceil(elapsed / 1000) + 1, `${progressCount} progress events in ${elapsed} ms`);
      // Normal exit removes the stdin cache.
      assert.deepEqual(readdirSync(workspace.tmp), []);
    });
  });

  it('relay path (--force-relay): exact bytes on stdout and sequence B', async () => {
    await withWorkspace(async (workspace) => {
      const hook = workspace.path('events.jsonl');
      const json = workspace.path('share.json');
      const sender = workspace.startShell(
        `head -c 3000000 /dev/urandom | tee input.bin | ${FFL} - --force-relay --max-downloads 1 --pickup-code 654321 --stdin-cache off --hook ${hook} --json ${json}`,
        // --force-relay forbids the ACK, so the sender always waits its full ACK wait: keep it short.
        { [FFL_STANDIN_ENV.ackWaitMs]: '300' },
      );
      const link = String((await readShareJson(json))['link']);
      const received = await workspace.receive([link, '--stdout', '--pickup-code', '654321']);
      const sent = await sender.done;
      assert.equal(received.code, 0, received.stderr);
      assert.equal(sent.code, 0);
      assert.ok(received.stdout.equals(readFileSync(workspace.path('input.bin'))), 'payload differs');
      assert.match(received.stderr, /WebRTC not supported, using HTTP download\.\.\.\n/);
      assert.match(received.stderr, /Download complete\n$/);
      assert.match(sent.stdout.toString(), /\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] Downloading by user\n/);
      assert.deepEqual(collapseProgress(eventNames(hook)), [
        ...HEAD_OF_SEQUENCE,
        '/session/create',
        '/server/create',
        '/share/available',
        '/download/create',
        '/download/progress',
        '/download/complete',
        '/download/limit/reach',
        '/session/delete',
        '/server/shutdown',
        '/share/complete',
      ]);
      const complete = readHookEventFile(hook).find((event) => event.event === '/download/complete');
      assert.equal(complete?.data['bytesTransferred'], 0);
      assert.equal(complete?.data['connectionType'], 'http');
    });
  });

  it('wrong pickup code: exit 1 with 401 text, locked with 429 after the 3rd wrong attempt; SIGINT then stops the share', async () => {
    await withWorkspace(async (workspace) => {
      const hook = workspace.path('events.jsonl');
      const json = workspace.path('share.json');
      const sender = workspace.startFfl([
        '-',
        '--pickup-code',
        '111111',
        '--max-downloads',
        '1',
        '--hook',
        hook,
        '--json',
        json,
      ]);
      const link = String((await readShareJson(json))['link']);
      for (let attempt = 1; attempt <= 3; attempt += 1) {
        const wrong = await workspace.receive(['download', link, '--stdout', '--pickup-code', '222222']);
        assert.equal(wrong.code, 1);
        assert.match(
          wrong.stdout.toString(),
          /^Oops, something went wrong: Download failed: Both WebRTC and HTTP downloads failed\. WebRTC: 401 Client Error: Unauthorized for url: .*\/offer\. HTTP: HTTP download failed: HTTP download failed: (401|429)\n/,
        );
      }
      const locked = await workspace.receive(['download', link, '--stdout', '--pickup-code', '111111']);
      assert.equal(locked.code, 1);
      assert.match(
        locked.stdout.toString(),
        /WebRTC: 429 Client Error: Too Many Requests for url: .*HTTP download failed: 429/,
      );
      const missing = await workspace.receive(['download', link, '--stdout'], { DISABLE_WEBRTC: 'True' });
      assert.equal(missing.code, 1);
      assert.match(missing.stdout.toString(), /Download failed: HTTP download failed: 429/);

      sender.child.kill('SIGINT');
      const stopped = await sender.done;
      assert.equal(stopped.code, 0);
      assert.match(stopped.stdout.toString(), /Exiting on user request \(Ctrl\+C\)\.\.\.\n$/);
      const names = eventNames(hook);
      assert.deepEqual(names.slice(-3), ['/session/delete', '/server/shutdown', '/share/stop']);
      assert.equal(readHookEventFile(hook).find((event) => event.event === '/session/delete')?.data['status'], 4);
      // Pickup failures emit nothing, and the stream was never consumed.
      assert.ok(!names.some((name) => name.startsWith('/download/') || name.startsWith('/webrtc/')));
    });
  });

  it('--timeout with no receiver: exit 0, /share/complete, and stdin is never read', async () => {
    await withWorkspace(async (workspace) => {
      const hook = workspace.path('events.jsonl');
      const marker = workspace.path('producer-finished');
      // 1 MB does not fit the 64 KiB pipe buffer: head only succeeds if ffl reads stdin (else it dies of SIGPIPE).
      const sender = workspace.startShell(
        `{ head -c 1000000 /dev/zero && touch ${marker}; } | ${FFL} - --timeout 1 --hook ${hook}`,
      );
      const finished = await sender.done;
      assert.equal(finished.code, 0);
      assert.equal(existsSync(marker), false, 'producer finished, so ffl read stdin without a receiver');
      assert.match(finished.stdout.toString(), /Timeout \(1 seconds\) reached\. Shutting down server\.\n/);
      assert.match(finished.stdout.toString(), /Press Ctrl\+C to terminate the program when done\.\n/);
      assert.deepEqual(eventNames(hook).slice(-5), [
        '/share/available',
        '/session/timeout',
        '/session/delete',
        '/server/shutdown',
        '/share/complete',
      ]);
    });
  });

  it('producer exits 3 after 1 MB: both sides exit 0 and 1 MB is delivered (.env of the receiver forces relay)', async () => {
    await withWorkspace(async (workspace) => {
      const json = workspace.path('share.json');
      const receiverDir = workspace.path('receiver');
      mkdirSync(receiverDir);
      writeFileSync(join(receiverDir, '.env'), 'DISABLE_WEBRTC=True\n');
      const sender = workspace.startShell(
        `{ head -c 1000000 /dev/urandom | tee input.bin; exit 3; } | ${FFL} - --max-downloads 1 --json ${json}; echo "producer=\${PIPESTATUS[0]} ffl=\${PIPESTATUS[1]}" >&2`,
      );
      const link = String((await readShareJson(json))['link']);
      const received = await workspace.receive(['download', link, '--stdout'], {}, receiverDir);
      const sent = await sender.done;
      assert.equal(received.code, 0, received.stderr);
      assert.match(sent.stderr, /producer=3 ffl=0/);
      assert.match(sent.stdout.toString(), /Maximum downloads \(1\) reached/);
      assert.match(received.stderr, /WebRTC not supported[\s\S]*Checksum verified\nDownload complete\n$/);
      assert.ok(received.stdout.equals(readFileSync(workspace.path('input.bin'))));
      assert.ok(existsSync(join(workspace.dir, 'tunnels.json')), 'tunnels.json written into FFL_STORAGE_LOCATION');
    });
  });

  it('sender killed mid-stream: receiver exits 1 with the Oops text after the partial payload; cache left behind', async () => {
    await withWorkspace(async (workspace) => {
      const json = workspace.path('share.json');
      const sender = workspace.startFfl(['-', '--max-downloads', '1', '--json', json], {
        [FFL_STANDIN_ENV.killAfterBytes]: '1000000',
      });
      // The sender dies with most of this unread; the EPIPE is expected.
      sender.child.stdin?.on('error', () => undefined);
      sender.child.stdin?.end(Buffer.alloc(3_000_000, 7));
      const link = String((await readShareJson(json))['link']);
      const received = await workspace.receive(['download', link, '--stdout']);
      const sent = await sender.done;
      assert.equal(sent.signal, 'SIGKILL');
      assert.equal(received.code, 1);
      const output = received.stdout.toString('latin1');
      const oops = output.indexOf(
        'Oops, something went wrong: Download failed: Both WebRTC and HTTP downloads failed. WebRTC: WebRTC connection failed before download completed. HTTP: ',
      );
      // The receiver may discard what it had buffered but not consumed when the stream broke.
      assert.ok(oops > 500_000 && oops <= 1_000_000, `Oops text at ${oops}`);
      assert.match(
        output.slice(oops),
        /\nPlease try again or try later\.\n\nIf you still get the same problem, please contact us at .*\.\nWe will fix the problem as soon as possible\.\n$/,
      );
      assert.equal(readdirSync(workspace.tmp).filter((name) => /^stdin_cache_.+\.bin$/.test(name)).length, 1);
    });
  });

  it('handoff (sequence C) and 410 once a --stdin-cache off stream left the replay window', async () => {
    await withWorkspace(async (workspace) => {
      const hook = workspace.path('events.jsonl');
      const json = workspace.path('share.json');
      const sender = workspace.startShell(
        `head -c 3000000 /dev/urandom | tee input.bin | ${FFL} - --stdin-cache off --max-downloads 2 --hook ${hook} --json ${json}`,
        {
          [FFL_STANDIN_ENV.webrtcDropAfterBytes]: '1000000',
          READER_STDIN_HANDOFF_WINDOW_MB: '1',
        },
      );
      const link = String((await readShareJson(json))['link']);
      const first = await workspace.receive(['download', link, '--stdout']);
      assert.equal(first.code, 0, first.stderr);
      assert.ok(first.stdout.equals(readFileSync(workspace.path('input.bin'))), 'handoff payload differs');
      const create = readHookEventFile(hook).find((event) => event.event === '/download/create');
      const resumeOffset = Number(create?.data['resumeOffset']);
      assert.ok(resumeOffset > 500_000 && resumeOffset <= 1_000_000, `resumeOffset ${resumeOffset}`);
      const names = eventNames(hook);
      assert.ok(
        names.includes('/webrtc/transfer/create') &&
          !names.includes('/webrtc/transfer/complete') &&
          !names.includes('/download/fail'),
      );

      const second = await workspace.receive(['download', link, '--stdout'], { DISABLE_WEBRTC: 'True' });
      assert.equal(second.code, 1);
      assert.match(
        second.stdout.toString(),
        /^Oops, something went wrong: Download failed: HTTP download failed: 410\n/,
      );
      process.kill(-(sender.child.pid ?? 0), 'SIGINT');
      assert.equal((await sender.done).code, 0);
    });
  });

  it('HTTP leg drop (sequence D): -o resumes by Range and the file is complete', async () => {
    await withWorkspace(async (workspace) => {
      const hook = workspace.path('events.jsonl');
      const json = workspace.path('share.json');
      const sender = workspace.startShell(
        `head -c 2000000 /dev/urandom | tee input.bin | ${FFL} - --force-relay --max-downloads 1 --hook ${hook} --json ${json}`,
        {
          [FFL_STANDIN_ENV.httpDropAfterBytes]: '500000',
          [FFL_STANDIN_ENV.ackWaitMs]: '300',
        },
      );
      const link = String((await readShareJson(json))['link']);
      const received = await workspace.receive(['download', link, '-o', workspace.path('out.bin')]);
      const sent = await sender.done;
      assert.equal(received.code, 0, received.stdout.toString());
      assert.equal(sent.code, 0);
      assert.match(
        received.stdout.toString(),
        /Resuming HTTP download from \d+ after connection error \(1\/8\)\n[\s\S]*Downloaded: .*out\.bin\n$/,
      );
      assert.ok(readFileSync(workspace.path('out.bin')).equals(readFileSync(workspace.path('input.bin'))));
      assert.match(sent.stdout.toString(), /Connection disconnected, wait retrying\.\n/);
      const failed = readHookEventFile(hook).find((event) => event.event === '/download/fail');
      assert.equal(failed?.data['reason'], 'connection-lost');
      assert.ok(statSync(workspace.path('out.bin')).size === 2_000_000);
    });
  });

  it('throttled transfer shows progress; SIGTERM kills the sender without events and leaves the cache', async () => {
    await withWorkspace(async (workspace) => {
      const hook = workspace.path('events.jsonl');
      const json = workspace.path('share.json');
      const sender = workspace.startFfl(
        ['-', '--force-relay', '--max-downloads', '1', '--hook', hook, '--json', json],
        {
          [FFL_STANDIN_ENV.throttleBytesPerSecond]: '400000',
        },
      );
      sender.child.stdin?.on('error', () => undefined);
      sender.child.stdin?.end(Buffer.alloc(2_000_000, 1));
      const link = String((await readShareJson(json))['link']);
      const receiving = workspace.receive(['download', link, '--stdout']);
      while (!eventNames(hook).includes('/download/create')) await sleep(30);
      await sleep(1400);
      const progress = readHookEventFile(hook).filter((event) => event.event === '/download/progress');
      // First chunk, then at most one per second: 2 in 1.4 s (3 only if the machine stalls).
      assert.ok(progress.length >= 2 && progress.length <= 3, `${progress.length} progress events in 1.4 s`);
      const bytes = progress.map((event) => Number(event.data['bytesTransferred']));
      assert.ok((bytes.at(-1) ?? 0) > (bytes[0] ?? 0) && (bytes.at(-1) ?? 0) < 2_000_000, bytes.join(','));
      const before = eventNames(hook).length;
      sender.child.kill('SIGTERM');
      const killed = await sender.done;
      assert.equal(killed.signal, 'SIGTERM');
      const received = await receiving;
      assert.equal(received.code, 1);
      assert.match(
        received.stdout.toString('latin1'),
        /Oops, something went wrong: Download failed: Network error during HTTP download: /,
      );
      assert.equal(eventNames(hook).length, before, 'SIGTERM must not emit events');
      assert.equal(readdirSync(workspace.tmp).filter((name) => name.startsWith('stdin_cache_')).length, 1);
    });
  });

  it('HTTP hook: 200 gets every event plus registration; 204 drops events after 3 failures; tunnel failure exits 1', async () => {
    await withWorkspace(async (workspace) => {
      await using good = await startHookEndpoint();
      await using bad = await startHookEndpoint({ status: 204 });
      const json = workspace.path('share.json');
      const sender = workspace.startFfl(['-', '--timeout', '1', '--hook', good.url, '--json', json]);
      const link = String((await readShareJson(json))['link']);
      const head = await fetch(link, { method: 'HEAD' });
      assert.equal(head.headers.get('ffl-mode'), 'P2P');
      assert.equal((await sender.done).code, 0);
      const names = good.events.map((event) => event.event);
      assert.ok(names.includes('/share/link/create') && names.includes('/hook/server/endpoints/register'));
      assert.equal(names.at(-1), '/share/complete');

      const failing = workspace.startFfl(['-', '--timeout', '1', '--hook', bad.url]);
      assert.equal((await failing.done).code, 0);
      assert.deepEqual(
        bad.events.map((event) => event.event),
        ['/cli/arguments/global/options/get', '/cli/arguments/get', '/source/reader/create'],
      );

      const tunnelHook = workspace.path('tunnel.jsonl');
      const tunnel = await workspace.receive(['-', '--hook', tunnelHook], { [FFL_STANDIN_ENV.tunnelFail]: '1' });
      assert.equal(tunnel.code, 1);
      assert.match(tunnel.stdout.toString(), /Oops, something went wrong: Failed to connect server\n/);
      assert.deepEqual(eventNames(tunnelHook).slice(-4), [
        '/share/start',
        '/tunnel/start',
        '/tunnel/fail',
        '/share/fail',
      ]);
    });
  });
});
