import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { secret } from '@deploykit/core';
import { LocalHost } from './local-host.js';
import { isProcessRunning, liveProcessGroups } from './process-groups.js';

const host = new LocalHost();

test('run collects exit code, stdout and stderr', async () => {
  const result = await host.run({ argv: ['bash', '-c', 'echo out; echo err >&2; exit 3'] });
  assert.equal(result.exitCode, 3);
  assert.equal(result.stdout, 'out\n');
  assert.equal(result.stderr, 'err\n');
  assert.equal(result.timedOut, false);
});

test('a missing program is exit 127 with a message naming it', async () => {
  const result = await host.run({ argv: ['no-such-program-dk'] });
  assert.equal(result.exitCode, 127);
  assert.match(result.stderr, /no-such-program-dk.*ENOENT/);
});

test('a timeout kills the whole process group, children included', async () => {
  const result = await host.run({ argv: ['bash', '-c', 'sleep 30 & echo $! ; wait'], timeoutMs: 300 });
  assert.equal(result.timedOut, true);
  assert.equal(result.signal, 'SIGTERM');
  const child = Number(result.stdout.trim());
  assert.ok(child > 1);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(isProcessRunning(child), false, 'the background child must be gone');
  assert.deepEqual(liveProcessGroups(), []);
});

test('run does not hang on a daemon that keeps our pipes open', async () => {
  const started = Date.now();
  const result = await host.run({ argv: ['bash', '-c', 'sleep 5 & echo $!'] });
  assert.ok(Date.now() - started < 2000);
  process.kill(Number(result.stdout.trim()));
});

test('a node process that ran such a command can exit: run releases the pipes the daemon holds', () => {
  // Resolving is not enough: an open pipe keeps node's event loop (and so `deploy`) alive (issue 10).
  const module = new URL('./local-host.js', import.meta.url).href;
  const script = `const { LocalHost } = await import(${JSON.stringify(module)}); const r = await new LocalHost().run({ argv: ['bash', '-c', 'sleep 300 & echo $!'] }); console.log(r.stdout.trim());`;
  const started = Date.now();
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  const seconds = (Date.now() - started) / 1000;
  const daemon = Number(child.stdout.trim());
  try {
    assert.equal(child.status, 0, `node did not exit by itself within ${seconds.toFixed(1)} s: ${child.stderr}`);
    assert.ok(seconds < 10, `node took ${seconds.toFixed(1)} s to exit`);
    assert.equal(isProcessRunning(daemon), true, 'the daemon itself is left running');
  } finally {
    if (daemon > 1) process.kill(daemon, 'SIGTERM');
  }
});

test('secret env reaches the child but not its argv', async () => {
  const proc = host.spawn({ argv: ['bash', '-c', 'echo "$TOKEN"; sleep 0.3'], env: { TOKEN: secret('s3cr3t-value') } });
  const cmdline = readFileSync(`/proc/${proc.pid}/cmdline`, 'utf8');
  assert.ok(!cmdline.includes('s3cr3t-value'));
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const result = await proc.wait();
  assert.equal(result.exitCode, 0);
  assert.equal(out, 's3cr3t-value\n');
});

test('input is written to stdin', async () => {
  const result = await host.run({ argv: ['sha256sum'], input: 'abc' });
  assert.match(result.stdout, /^ba7816bf/);
});

test('stdoutFd and stdinFd: the child writes into and reads from our file descriptors, at their offsets', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'local-host-fd-'));
  try {
    const out = openSync(join(dir, 'out'), 'w+');
    writeSync(out, 'head:');
    const writer = host.spawn({ argv: ['sh', '-c', 'printf "from the child"; echo to-stderr >&2'], stdoutFd: out });
    const written = await writer.wait();
    assert.equal(written.exitCode, 0);
    assert.equal(written.stderr, 'to-stderr\n');
    assert.equal(writer.stdout.readableEnded || writer.stdout.destroyed, true, 'stdout is an ended stream');
    writeSync(out, ':tail');
    closeSync(out);
    assert.equal(readFileSync(join(dir, 'out'), 'utf8'), 'head:from the child:tail');
    const input = openSync(join(dir, 'out'), 'r');
    readSync(input, Buffer.alloc(5), 0, 5, null);
    const reader = await host.run({ argv: ['cat'], stdinFd: input });
    closeSync(input);
    assert.equal(reader.stdout, 'from the child:tail');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
