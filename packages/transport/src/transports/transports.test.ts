import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { appendFile, chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type DeployError, displayArgv, secret } from '@deploykit/core';
import { LocalHost } from '@deploykit/host';
import { pickFirstFailure, stripProgressFrames, tailText } from '../pipeline/stage-failure.js';
import { fflFailureLine, isFflSenderGone } from './ffl.js';
import { buildFflShareArgv } from './ffl-argv.js';
import { downloadFflBinary, locateFflBinary, resolveFflBinary } from './ffl-binary.js';
import { mapFflHookEvent, tailFflHookFile, type FflHookEvent } from './ffl-hook.js';
import { buildReceiverArgv } from './receiver-argv.js';
import { resolveReceiverTransport, resolveTransport } from './registry.js';
import { classifySshExit } from './ssh.js';

test('resolveTransport finds each transport and lists the known ones for an unknown name', () => {
  for (const name of ['ffl', 'ssh', 'scp', 'local']) assert.equal(resolveTransport(name).name, name);
  assert.throws(
    () => resolveTransport('pigeon'),
    (error: DeployError) => error.kind === 'usage' && error.hint === 'Known transports: ffl, ssh, scp, local.',
  );
});

test('the ffl share argv follows reference §6 and carries no pickup code (ffl generates it)', () => {
  const argv = buildFflShareArgv({ binary: 'ffl', hookFile: '/t/h.jsonl', jsonFile: '/t/s.json', name: 'volumes' });
  assert.equal(
    displayArgv(argv),
    'ffl - --stdin-cache off --max-downloads 1 --e2ee --recipient-auth pickup --hook /t/h.jsonl --json /t/s.json --foreground --disable-clipboard --name volumes',
  );
  assert.ok(!argv.includes('--timeout'));
  assert.ok(!argv.includes('--pickup-code'));
});

test('the generated pickup code is read back from /share/link/create', () => {
  const signals = mapFflHookEvent({
    event: '/share/link/create',
    timestamp: 't',
    data: { link: 'http://127.0.0.1:1/abcd1234', pickupCode: '042917' },
  });
  assert.deepEqual(signals, [{ kind: 'link', link: 'http://127.0.0.1:1/abcd1234', pickupCode: '042917' }]);
});

test('the receiver argv carries the consumer as one JSON word and never a secret', () => {
  assert.deepEqual(
    buildReceiverArgv({
      deployCommand: ['deploy'],
      stream: 'db',
      runId: 'r1',
      consumer: { kind: 'command', argv: ['pg_restore', '-d', 'x y'] },
      input: { from: 'http://l/u' },
    }),
    [
      'deploy',
      'stream',
      'receive',
      '--jsonl',
      '--quiet',
      '--name',
      'db',
      '--run-id',
      'r1',
      '--from',
      'http://l/u',
      '--consumer',
      '["pg_restore","-d","x y"]',
    ],
  );
  assert.deepEqual(
    buildReceiverArgv({
      deployCommand: ['deploy'],
      stream: 'v',
      runId: 'r1',
      consumer: { kind: 'into', dir: '/srv/x' },
      input: { from: '/tmp/f.dk', deleteAfter: true },
      stallSeconds: 9,
      readySeconds: 90,
    }).slice(5),
    [
      '--name',
      'v',
      '--run-id',
      'r1',
      '--from',
      '/tmp/f.dk',
      '--into',
      '/srv/x',
      '--stall-seconds',
      '9',
      '--ready-seconds',
      '90',
      '--delete-after',
    ],
  );
  assert.throws(
    () =>
      buildReceiverArgv({
        deployCommand: ['deploy'],
        stream: 'db',
        runId: 'r',
        consumer: { kind: 'command', argv: [secret('pw')] },
        input: { from: '-' },
      }),
    /secret/,
  );
});

test('the target half is chosen from --from: a link is ffl, - in an ssh session ssh, - elsewhere local, a path scp', () => {
  assert.equal(resolveReceiverTransport('https://x.fastfilelink.com/abcd1234', {}).name, 'ffl');
  assert.equal(resolveReceiverTransport('http://127.0.0.1:4000/abcd1234', {}).name, 'ffl');
  assert.equal(resolveReceiverTransport('-', { SSH_CONNECTION: '127.0.0.2 1 127.0.0.3 22' }).name, 'ssh');
  assert.equal(resolveReceiverTransport('-', {}).name, 'local');
  assert.equal(resolveReceiverTransport('/tmp/dk-scp-x/notes.dk', {}).name, 'scp');
});

test('ffl hook events map onto link, connected, path, progress, delivery and failure', () => {
  const map = (event: string, data: Record<string, unknown> = {}): unknown[] =>
    mapFflHookEvent({ event, data } as FflHookEvent);
  assert.deepEqual(map('/share/link/create', { link: 'http://127.0.0.1:1/abc' }), [
    { kind: 'link', link: 'http://127.0.0.1:1/abc' },
  ]);
  assert.deepEqual(map('/webrtc/offer/create'), [{ kind: 'connected' }]);
  assert.deepEqual(map('/webrtc/transfer/create'), [{ kind: 'path', path: 'direct' }]);
  assert.deepEqual(map('/download/create', { connectionType: 'http' }), [
    { kind: 'connected' },
    { kind: 'path', path: 'relay' },
  ]);
  assert.deepEqual(map('/download/progress', { bytesTransferred: 65536, speed: 10 }), [
    { kind: 'progress', bytes: 65536, rate: 10 },
  ]);
  assert.deepEqual(map('/receipt/create'), [{ kind: 'delivered' }]);
  assert.deepEqual(map('/download/fail', { reason: 'connection-lost', error: 'Connection lost' }), [
    { kind: 'failed', code: 'FFL_LEG_FAILED', message: 'ffl download leg failed: Connection lost' },
  ]);
  assert.deepEqual(map('/share/complete'), []);
});

test('the hook tail tolerates a partial last line and reads it once completed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dk-hook-test-'));
  try {
    const file = join(dir, 'hook.jsonl');
    const seen: string[] = [];
    const stop = tailFflHookFile(file, (event) => seen.push(event.event), 20);
    await writeFile(file, '{"event": "/share/create", "data": {}}\n{"event": "/share/li');
    await sleep(100);
    assert.deepEqual(seen, ['/share/create']);
    await appendFile(file, 'nk/create", "data": {"link": "x"}}\n');
    await stop();
    assert.deepEqual(seen, ['/share/create', '/share/link/create']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('ffl binary resolution: configured path, PATH, /opt-style search dirs, and a clear message when missing', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dk-ffl-bin-test-'));
  try {
    const bin = join(dir, 'opt');
    await mkdir(bin);
    await writeFile(join(bin, 'ffl'), '#!/bin/sh\necho ffl\n');
    await chmod(join(bin, 'ffl'), 0o755);
    const host = new LocalHost('b', { PATH: '/usr/bin:/bin' });
    assert.deepEqual(await locateFflBinary(host, { searchDirs: [bin] }), { path: join(bin, 'ffl'), source: 'path' });
    assert.deepEqual(await locateFflBinary(host, { path: join(bin, 'ffl') }), {
      path: join(bin, 'ffl'),
      source: 'configured',
    });
    const onPath = new LocalHost('b', { PATH: `${bin}:/usr/bin:/bin` });
    assert.equal((await locateFflBinary(onPath, { searchDirs: [] })).path, join(bin, 'ffl'));
    await assert.rejects(locateFflBinary(host, { searchDirs: [join(dir, 'none')] }), (error: DeployError) => {
      assert.equal(error.message, `ffl is not installed on host b (looked in PATH and ${join(dir, 'none')})`);
      return error.kind === 'dependency';
    });
    await assert.rejects(locateFflBinary(host, { path: join(dir, 'nope') }), /configured path/);
    // A probe that dies (here a `sh` that kills itself) is not "ffl is not installed".
    const broken = join(dir, 'broken');
    await mkdir(broken);
    await writeFile(join(broken, 'sh'), '#!/bin/bash\nkill -KILL $$\n');
    await chmod(join(broken, 'sh'), 0o755);
    await assert.rejects(
      locateFflBinary(new LocalHost('b', { PATH: `${broken}:/usr/bin:/bin` }), { searchDirs: [bin] }),
      (error: DeployError) => {
        assert.equal(error.message, 'could not look for ffl on host b: the probe was killed by SIGKILL');
        return error.code === 'FFL_PROBE_FAILED';
      },
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('ffl binary download: checked against its SHA-256, refused without one or on a mismatch', async () => {
  const body = Buffer.from('#!/bin/sh\necho downloaded\n');
  const sha = createHash('sha256').update(body).digest('hex');
  const server = createServer((request, response) => {
    if (request.url === '/ffl') response.end(body);
    else response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const dir = await mkdtemp(join(tmpdir(), 'dk-ffl-dl-test-'));
  try {
    const url = `http://127.0.0.1:${port}/ffl`;
    const got = await resolveFflBinary(new LocalHost('a'), { url, sha256: sha }, dir);
    assert.equal(got.source, 'download');
    assert.deepEqual(await readFile(got.path), body);
    await assert.rejects(downloadFflBinary(url, undefined, dir), (error: DeployError) => error.kind === 'config');
    await assert.rejects(downloadFflBinary(url, '0'.repeat(64), dir), /has SHA-256 .* expected 0{64}/);
    await assert.rejects(downloadFflBinary(`http://127.0.0.1:${port}/missing`, sha, dir), /HTTP 404/);
  } finally {
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('the first failure is the earliest cause; consequences only when nothing else failed', () => {
  const sigpipe = { stage: 'producer' as const, code: 'P', message: 'p', at: 1, consequential: true };
  const receiver = { stage: 'receiver' as const, code: 'R', message: 'r', at: 5 };
  const consumer = { stage: 'consumer' as const, code: 'C', message: 'c', at: 3 };
  assert.equal(pickFirstFailure([sigpipe, receiver, consumer]), consumer);
  assert.equal(pickFirstFailure([sigpipe]), sigpipe);
  assert.equal(pickFirstFailure([]), undefined);
});

test('ssh exit 255 is a dropped connection only when ssh says so or was killed', () => {
  assert.equal(
    classifySshExit({ exitCode: 255, signal: null, stderr: 'Connection to 127.0.0.3 closed by remote host.' }, 'b')
      ?.stage,
    'sender',
  );
  assert.equal(classifySshExit({ exitCode: null, signal: 'SIGKILL', stderr: '' }, 'b')?.stage, 'sender');
  // Anything else is the target command's own end: its answer (or its missing answer) explains it.
  assert.equal(classifySshExit({ exitCode: 255, signal: null, stderr: '' }, 'b'), undefined);
});

test('an error tail drops tqdm progress frames (ffl writes them on stderr) and keeps status and error lines', () => {
  const stderr = [
    'Attempting WebRTC download...',
    'Downloading volumes (unknown bytes)',
    `${['63.72 KB [00:00, 6.91 MB/sec]', '1.23 MB [00:00, 5.65 MB/sec]  ', '2.86 MB [00:01, 2.67 MB/sec]'].map((frame) => `\rProgress: ${frame}`).join('')}`,
    '\r 45%|████▌     | 9.00M/20.0M [00:03<00:04, 2.95MB/s]',
    `\r${' '.repeat(40)}\rWebRTC connection failed before download completed`,
    'Oops, something went wrong: Download failed: Both WebRTC and HTTP downloads failed.',
  ].join('\n');
  assert.equal(
    stripProgressFrames(stderr),
    [
      'Attempting WebRTC download...',
      'Downloading volumes (unknown bytes)',
      'WebRTC connection failed before download completed',
      'Oops, something went wrong: Download failed: Both WebRTC and HTTP downloads failed.',
    ].join('\n'),
  );
  // 500 frames on one line would otherwise be the whole tail.
  const flood = `status\n${Array.from({ length: 500 }, (_unused, index) => `\rProgress: ${index}.00 MB [00:${String(index % 60).padStart(2, '0')}, 3.00 MB/sec]`).join('')}\nthe error\n`;
  assert.equal(tailText(flood), 'status\nthe error');
});

test("ffl's failure line is read from its stdout tail, and a dead sender is told apart from the receiver's own failures", () => {
  const payload = Buffer.concat([
    Buffer.from([0xff, 0x00, 0x81]),
    Buffer.from('Oops, something went wrong: Download failed: x ✓\nPlease try again or try later.\n'),
  ]);
  assert.equal(fflFailureLine(payload), 'Oops, something went wrong: Download failed: x ✓');
  const gone =
    "Oops, something went wrong: Download failed: Both WebRTC and HTTP downloads failed. WebRTC: WebRTC connection failed before download completed. HTTP: Failed to get file metadata: HTTPConnectionPool(host='127.0.0.1', port=4000): Max retries exceeded with url: /abcd1234 (Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f0>: Failed to establish a new connection: [Errno 111] Connection refused'))";
  assert.equal(isFflSenderGone(gone), true);
  assert.equal(
    isFflSenderGone(
      'Oops, something went wrong: Download failed: Both WebRTC and HTTP downloads failed. WebRTC: 401 Client Error: Unauthorized for url: http://x/offer. HTTP: HTTP download failed: HTTP download failed: 401',
    ),
    false,
  );
  assert.equal(
    isFflSenderGone('Oops, something went wrong: Download failed: Checksum verification failed: local=a, remote=b'),
    false,
  );
});
