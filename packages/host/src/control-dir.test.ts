import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { controlDirFits, makeControlDir, UNIX_SOCKET_PATH_MAX } from './control-dir.js';
import { buildControlPath } from './ssh-argv.js';

test('a control dir fits a socket path whatever TMPDIR is, and is private', () => {
  const saved = process.env.TMPDIR;
  const long = join(tmpdir(), `dk-long-${'x'.repeat(100)}`).slice(0, 100);
  mkdirSync(long, { recursive: true });
  try {
    process.env.TMPDIR = long;
    assert.equal(tmpdir(), long);
    const dir = makeControlDir('dk-cm-');
    try {
      assert.ok(!dir.startsWith(long), `not under the 100-character TMPDIR: ${dir}`);
      assert.ok(controlDirFits(dir));
      assert.ok(buildControlPath(dir).length + 17 <= UNIX_SOCKET_PATH_MAX);
      assert.equal(statSync(dir).mode & 0o777, 0o700);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
    rmSync(long, { recursive: true, force: true });
  }
});
