import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalHost } from '@deploykit/host';
import { dumpXattrs, extraXattrs, keepXattrsForUndo, makeXattrsExactly, xattrNamesByPath } from './exact-xattrs.js';
import { TargetJournal } from './target-journal.js';
import { undoAll } from './undo-test-support.js';

const setfattr = (...args: string[]): void => {
  execFileSync('setfattr', args);
};

test('a getfattr dump parses into names per entry; what only the copy has is named', () => {
  const dump =
    '# file: .\nuser.root=0sAA==\n\n# file: a.txt\nuser.one=0sMQ==\nuser.two=0sMg==\n\n# file: sub/b\nsystem.posix_acl_access=0sAgAAAA==\nuser.empty\n\n';
  assert.deepEqual(
    [...xattrNamesByPath(dump)].map(([path, names]) => [path, [...names]]),
    [
      ['.', ['user.root']],
      ['a.txt', ['user.one', 'user.two']],
      ['sub/b', ['system.posix_acl_access', 'user.empty']],
    ],
  );
  assert.deepEqual(extraXattrs(dump, '# file: a.txt\nuser.one=0sMQ==\n\n'), [
    ['.', 'user.root'],
    ['a.txt', 'user.two'],
    ['sub/b', 'system.posix_acl_access'],
    ['sub/b', 'user.empty'],
  ]);
});

test("a copy's xattrs and ACLs become exactly the source's (dropped ones go), and its undo puts the copy's own back", async () => {
  const root = await mkdtemp(join(tmpdir(), 'dk-exact-xattrs-'));
  try {
    const copy = join(root, 'copy');
    const source = join(root, 'source');
    for (const dir of [copy, source]) {
      await mkdir(join(dir, 'sub'), { recursive: true });
      await writeFile(join(dir, 'kept.txt'), 'k');
      await writeFile(join(dir, 'sub', 'acl.txt'), 'a');
      await symlink('kept.txt', join(dir, 'link'));
    }
    // The copy as the migration left it: a tag, a second tag, an ACL.
    setfattr('-n', 'user.tag', '-v', 'before', join(copy, 'kept.txt'));
    setfattr('-n', 'user.dropped', '-v', 'x', join(copy, 'kept.txt'));
    execFileSync('setfacl', ['-m', 'u:65534:r', join(copy, 'sub', 'acl.txt')]);
    // The source since: the tag changed, the second tag and the ACL removed, a new tag on the directory.
    setfattr('-n', 'user.tag', '-v', 'after', join(source, 'kept.txt'));
    setfattr('-n', 'user.new', '-v', 'y', join(source, 'sub'));
    const host = new LocalHost('test');
    const wanted = await dumpXattrs(host, source);
    const before = await dumpXattrs(host, copy);
    const journal = new TargetJournal(join(root, 'run.jsonl'));
    await keepXattrsForUndo(host, copy, join(root, 'xattrs.dump'), journal);
    assert.equal(await makeXattrsExactly(host, copy, wanted), 2, 'user.dropped and the ACL go');
    assert.equal(await dumpXattrs(host, copy), wanted, 'exactly the source');
    const undone = await undoAll(journal, host);
    assert.deepEqual(undone.failed, []);
    assert.equal(await dumpXattrs(host, copy), before, 'the copy has its own xattrs and ACL back, and not the new one');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('a dump naming a path through a symlink of the copy is refused; nothing is removed through it', async () => {
  const root = await mkdtemp(join(tmpdir(), 'dk-exact-xattrs-'));
  try {
    const copy = join(root, 'copy');
    const outside = join(root, 'outside');
    await mkdir(copy);
    await mkdir(outside);
    await writeFile(join(outside, 'f'), 'f');
    setfattr('-n', 'user.keep', '-v', 'me', join(outside, 'f'));
    await symlink(outside, join(copy, 'dir'));
    await assert.rejects(
      makeXattrsExactly(new LocalHost('test'), copy, '# file: dir/f\nuser.other=0sMQ==\n\n'),
      (error: Error & { code?: string }) => error.code === 'METADATA_PATH_UNSAFE',
    );
    assert.match(execFileSync('getfattr', ['-d', join(outside, 'f')], { encoding: 'utf8' }), /user\.keep="me"/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
