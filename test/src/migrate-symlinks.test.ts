// End to end: `deploy migrate` over ssh of a minimal app (no database, one volume) whose volume holds
// every kind of symlink the tar guard used to refuse or choke on - absolute, dangling, climbing out,
// a chain 1,000 deep, the exponential pattern - carried verbatim, together with what export-tar drops
// (issue 10): sub-second mtimes of files, dirs and symlinks, the volume root's own mode, owner and
// mtime, and a 64 MiB sparse file that must cost about its data on the wire and arrive sparse; every
// entry compared field by field with its mtime in ns; nothing outside the app on b is touched (a
// canary's mode, ACL, xattr and mtime). Then a volume that changes between the metadata
// scan and the backup (a dir with an ACL becomes a symlink to a root-only dir on b) fails in the
// metadata step without putting the ACL outside; `deploy stream send/receive --into` (the same guard)
// carries the links too and refuses a FIFO once, without retrying; and a FIFO / device node in a
// migrated volume is refused on the source before any byte moves.
import { test } from 'node:test';
import { existsSync, readdirSync } from 'node:fs';
import assert from 'node:assert/strict';
import { quoteWord } from '@deploykit/core';
import { controlDirParents } from '@deploykit/host';
import type { Lab } from '@deploykit/testlab';
import {
  labShell,
  runOrThrow,
  treeFingerprint,
  diffTreeFingerprints,
  withLab,
  type TreeEntry,
} from './helpers/index.js';
import { assertExit, deployOnA, findRunLeftovers, parseReport } from './migrate-lab.js';
import { sendFromA } from './transport-helpers.js';

const APP_YAML = `name: links
runtime: process
volumes:
  - name: files
    path: data/files
borg:
  repository: "{state_dir}/borg/{app}"
  archive: "{app}-{now}"
`;

/** Scripts of the app; bin/backup runs `before-backup` (if any) in the app dir, then archives the volume. */
const SCRIPTS: Record<string, string> = {
  install: 'mkdir -p data/files',
  start: 'exit 0',
  stop: 'exit 75',
  backup: [
    'if [ -x ./before-backup ]; then ./before-backup; fi',
    'export BORG_REPO="$DEPLOY_BORG_REPO" BORG_BASE_DIR="$DEPLOY_APP_STATE_DIR/borg" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes',
    'borg info >/dev/null 2>&1 || borg init --make-parent-dirs -e none',
    'borg create "::$DEPLOY_BORG_ARCHIVE" data/files',
  ].join('\n'),
  restore: 'exit 75',
};

async function makeApp(lab: Lab, volumeScript: string, beforeBackup?: string, appYaml = APP_YAML): Promise<void> {
  const a = labShell(lab, 'a');
  const dir = `${lab.host('a').appsRoot}/links`;
  const files = Object.entries(SCRIPTS)
    .map(
      ([phase, body]) =>
        `printf '%s\\n' '#!/usr/bin/env bash' 'set -euo pipefail' ${quoteWord(body)} > bin/${phase} && chmod +x bin/${phase}`,
    )
    .join(' && ');
  await runOrThrow(
    a,
    `rm -rf ${dir} ${lab.host('a').stateDir}/borg/links && mkdir -p ${dir}/bin ${dir}/data/files && cd ${dir} && cat > app.yaml && ${files}`,
    appYaml,
  );
  if (beforeBackup !== undefined)
    await runOrThrow(
      a,
      `cd ${dir} && printf '%s\\n' '#!/usr/bin/env bash' 'set -euo pipefail' ${quoteWord(beforeBackup)} > before-backup && chmod +x before-backup`,
    );
  await runOrThrow(a, `cd ${dir}/data/files && ${volumeScript}`);
}

const MiB = 1024 * 1024;
/** The sparse file's size: big against its 5 MiB of data, small enough to hash twice in a few seconds. */
const SPARSE_SIZE = 64 * MiB;

/** A sparse file's size and allocated bytes (`stat` %b blocks of %B bytes). */
async function allocation(lab: Lab, host: string, path: string): Promise<{ size: number; allocated: number }> {
  const [blocks, blockSize, size] = (await runOrThrow(labShell(lab, host), `stat -c '%b %B %s' ${quoteWord(path)}`))
    .trim()
    .split(' ')
    .map(Number) as [number, number, number];
  return { size, allocated: blocks * blockSize };
}

/** Everything a canary outside the app shows: mode, owner, size, mtime, ctime, ACL and xattrs. */
function canaryState(lab: Lab, dir: string): Promise<string> {
  return runOrThrow(
    labShell(lab, 'b'),
    `cd ${quoteWord(dir)} && stat -c '%n %a %u:%g %s %Y %Z' . * && getfacl -Rp . && getfattr -R -d -m - -h .`,
  );
}

test('symlinks of every kind migrate verbatim over ssh; nothing outside the app is touched; devices and FIFOs are refused on the source', {
  timeout: 420_000,
}, async (t) => {
  await withLab({ hosts: 2, postgres: false }, async (lab) => {
    const outside = `${lab.host('b').root}/outside`;
    const appOnB = `${lab.host('b').appsRoot}/links`;
    await runOrThrow(
      labShell(lab, 'b'),
      [
        `mkdir -p ${outside} && cd ${outside}`,
        "printf 'root only\\n' > canary && chmod 0600 canary && chmod 0700 .",
        'setfacl -m u:4321:r canary && setfattr -n user.mark -v canary canary',
        "touch -d '2001-02-03 04:05:06 UTC' canary",
      ].join(' && '),
    );
    const canaryBefore = await canaryState(lab, outside);

    await t.test(
      "absolute, dangling, climbing, 1,000-deep and exponential symlinks arrive as the same links, with ns mtimes, the root's metadata and a sparse file",
      async () => {
        const exponential = Array.from({ length: 20 }, (_, index) =>
          index === 0
            ? 'ln -s . e0'
            : `ln -s ${Array.from({ length: Math.floor(200 / String(`e${index - 1}/`).length) }, () => `e${index - 1}`).join('/')} e${index}`,
        ).join(' && ');
        await makeApp(
          lab,
          [
            'mkdir -p real/deeper && echo data > real/file && chmod 640 real/file',
            'ln -s /etc/hostname current',
            `ln -s ${outside}/canary canary-link && ln -s ${outside} outside-dir`,
            'ln -s does/not/exist dangling && ln -s ../../../../../../outside real/deeper/climb',
            `ln -s . c0 && python3 -c 'import os; [os.symlink(f"c{i - 1}", f"c{i}") for i in range(1, 1001)]'`,
            exponential,
            'ln -s real/file to-file && ln to-file hard-to-link',
            // 64 MiB, 5 MiB of it data at two offsets, ending in a hole.
            `truncate -s ${SPARSE_SIZE} sparse.img`,
            'dd if=/dev/urandom of=sparse.img bs=1M count=3 seek=8 conv=notrunc iflag=fullblock status=none',
            'dd if=/dev/urandom of=sparse.img bs=1M count=2 seek=48 conv=notrunc iflag=fullblock status=none',
            'chown 4321:4322 real/file',
            // Distinct sub-second mtimes (export-tar keeps whole seconds), children before their dirs, the root last.
            'touch -h -d @1500000001.111111111 real/file && touch -h -d @1500000002.222222222 current && touch -h -d @1500000003.333333333 dangling',
            'touch -h -d @1500000004.444444444 sparse.img && touch -h -d @1500000005.555555555 real/deeper/climb',
            'touch -h -d @1500000006.666666666 real/deeper && touch -h -d @1500000007.777777777 real',
            'chmod 2750 . && chown 4321:4322 . && touch -h -d @1500000008.888888888 .',
          ].join(' && '),
        );
        const sparsePath = 'data/files/sparse.img';
        const sparseOnA = await allocation(lab, 'a', `${lab.host('a').appsRoot}/links/${sparsePath}`);
        assert.equal(sparseOnA.size, SPARSE_SIZE);
        assert.ok(
          sparseOnA.allocated >= 5 * MiB && sparseOnA.allocated < 16 * MiB,
          `allocated on a: ${sparseOnA.allocated}`,
        );
        // Run on a with a 100-character TMPDIR: ssh's control socket (<dir>/<40 hex>.<16 chars>) cannot
        // live there (Unix socket paths hold 107 bytes), so deploy must put it elsewhere and still clean up.
        const tmpBase = `${lab.host('a').root}/tmp/`;
        const longTmp = `${tmpBase}${'t'.repeat(100 - tmpBase.length)}`;
        assert.equal(longTmp.length, 100);
        const started = Date.now();
        const run = await lab.ssh(
          'a',
          `mkdir -p ${quoteWord(longTmp)} && TMPDIR=${quoteWord(longTmp)} deploy migrate links --to b --transport ssh --json`,
        );
        const elapsed = Date.now() - started;
        console.log(`migrate of ${1000 + 20 + 7} symlinks over ssh: ${elapsed} ms`);
        assertExit(run, 0, 'migrate links with a 100-character TMPDIR');
        const report = parseReport(run);
        assert.deepEqual(
          await runOrThrow(labShell(lab, 'a'), `ls -A ${quoteWord(longTmp)}`),
          '',
          'the run left nothing in its TMPDIR',
        );
        const controlLeftovers = controlDirParents().flatMap((dir) =>
          existsSync(dir) ? readdirSync(dir).filter((name) => name.includes(report.runId)) : [],
        );
        assert.deepEqual(controlLeftovers, [], 'no control dir of the run is left where it went instead');
        assert.equal(report.ok, true);
        assert.equal(
          report.targetReport?.verification.ok,
          true,
          JSON.stringify(report.targetReport?.verification.problems),
        );
        // The old guard's resolver doubled its work per exponential link: 20 of them never finished.
        assert.ok(elapsed < 180_000, `took ${elapsed} ms`);
        // The sparse file's holes travelled as zero-run counts: the volume part counts its full size, but
        // took about its data on the wire (plus tar headers of ~1,100 entries).
        const volumePart = report.parts.find((part) => part.id === 'volume:files');
        assert.ok(volumePart, JSON.stringify(report.parts));
        console.log(
          `volume part: ${volumePart.bytes} bytes, ${volumePart.wireBytes} on the wire; sparse file allocated ${sparseOnA.allocated} on a`,
        );
        assert.ok(volumePart.bytes > SPARSE_SIZE, `part bytes ${volumePart.bytes}`);
        assert.ok(
          volumePart.wireBytes !== undefined && volumePart.wireBytes < sparseOnA.allocated + 16 * MiB,
          `wire bytes ${volumePart.wireBytes}`,
        );
        // ... and arrived sparse (fallocate --dig-holes), not as 64 MiB of written zeros.
        const sparseOnB = await allocation(lab, 'b', `${appOnB}/${sparsePath}`);
        assert.equal(sparseOnB.size, SPARSE_SIZE);
        assert.ok(
          sparseOnB.allocated <= sparseOnA.allocated + MiB,
          `allocated on b: ${sparseOnB.allocated}, on a: ${sparseOnA.allocated}`,
        );
        const source = await treeFingerprint(lab, 'a', `${lab.host('a').appsRoot}/links/data/files`, { mtime: true });
        const target = await treeFingerprint(lab, 'b', `${appOnB}/data/files`, { mtime: true });
        // Every entry (the root `.` included) equal field by field (type, mode, owner, size, SHA-256, link
        // target, mtime in ns as find's %T@ prints it, hard links) but one: borg 1.2 archives hard links
        // of regular files only, so two names of one symlink arrive as two symlinks with the same target
        // (backup/restore does the same).
        assert.deepEqual(diffTreeFingerprints(source, target), [
          '~ hard-to-link: hardLinks ["hard-to-link","to-file"] -> undefined',
          '~ to-file: hardLinks ["hard-to-link","to-file"] -> undefined',
        ]);
        // Not equal by accident: the target holds what the script set (find's %T@ prints 10 fraction digits).
        const entry = (path: string): TreeEntry | undefined =>
          target.entries.find((candidate) => candidate.path === path);
        const fields = (path: string): unknown[] => {
          const found = entry(path);
          return [found?.type, found?.mode, found?.uid, found?.gid, found?.mtime];
        };
        assert.deepEqual(fields('.'), ['d', '2750', 4321, 4322, '1500000008.8888888880']);
        assert.deepEqual(fields('real'), ['d', '755', 0, 0, '1500000007.7777777770']);
        assert.deepEqual(fields('real/deeper'), ['d', '755', 0, 0, '1500000006.6666666660']);
        assert.deepEqual(fields('real/file'), ['f', '640', 4321, 4322, '1500000001.1111111110']);
        assert.deepEqual(fields('current'), ['l', '777', 0, 0, '1500000002.2222222220']);
        assert.deepEqual(fields('dangling'), ['l', '777', 0, 0, '1500000003.3333333330']);
        assert.deepEqual(fields('real/deeper/climb'), ['l', '777', 0, 0, '1500000005.5555555550']);
        assert.deepEqual(
          [entry('sparse.img')?.size, entry('sparse.img')?.mtime],
          [SPARSE_SIZE, '1500000004.4444444440'],
        );
        assert.equal(
          entry('sparse.img')?.sha256,
          source.entries.find((candidate) => candidate.path === 'sparse.img')?.sha256,
        );
        const link = (path: string): string | undefined =>
          target.entries.find((entry) => entry.path === path && entry.type === 'l')?.target;
        assert.equal(link('current'), '/etc/hostname');
        assert.equal(link('canary-link'), `${outside}/canary`);
        assert.equal(link('dangling'), 'does/not/exist');
        assert.equal(link('real/deeper/climb'), '../../../../../../outside');
        assert.equal(link('c1000'), 'c999');
        assert.equal(target.entries.filter((entry) => entry.type === 'l').length, 1000 + 1 + 20 + 7);
        assert.equal(link('hard-to-link'), 'real/file');
        assert.equal(await canaryState(lab, outside), canaryBefore, 'nothing outside the app on b changed');
        assert.deepEqual(
          (await findRunLeftovers(lab, 'b', report.runId, { postgres: false })).filter(
            (line) => !line.startsWith('process'),
          ),
          [],
        );
      },
    );

    await t.test(
      'a dir with an ACL that becomes a symlink to a root-only dir before the backup: the metadata step refuses, the ACL goes nowhere',
      async () => {
        await runOrThrow(labShell(lab, 'b'), `rm -rf ${appOnB}`);
        // Preflight scans swap/canary's ACL and xattr; the archive then holds swap -> the outside dir on b.
        await makeApp(
          lab,
          "mkdir swap && printf 'mine\\n' > swap/canary && setfacl -m u:4999:rwx swap/canary && setfattr -n user.mark -v hijacked swap/canary && echo ok > plain",
          `rm -rf data/files/swap && ln -s ${outside} data/files/swap`,
        );
        const run = await deployOnA(lab, ['migrate', 'links', '--to', 'b', '--transport', 'ssh', '--json']);
        const report = parseReport(run);
        assert.equal(report.ok, false);
        assert.equal(report.failure?.code, 'METADATA_PATH_UNSAFE', JSON.stringify(report.failure));
        assert.match(
          report.failure?.message ?? '',
          /carried metadata names "swap\/canary", a path through the symlink "swap"/,
        );
        assert.equal(
          await canaryState(lab, outside),
          canaryBefore,
          'the ACL and xattr were not put on the canary outside',
        );
        assert.equal((await lab.ssh('b', `test -e ${appOnB} && echo present || echo absent`)).stdout.trim(), 'absent');
        assert.deepEqual(
          (await findRunLeftovers(lab, 'b', report.runId, { postgres: false })).filter(
            (line) => !line.startsWith('process'),
          ),
          [],
        );
      },
    );

    await t.test(
      'deploy stream send/receive --into (the same tar guard): links verbatim; a FIFO refused once, never retried',
      async () => {
        const volume = `${lab.host('a').appsRoot}/links/data/files`;
        await makeApp(
          lab,
          `mkdir -p real && echo data > real/file && ln -s /etc/hostname current && ln -s ${outside}/canary canary-link && ln -s gone dangling && ln -s ../../../../x real/climb`,
        );
        const into = `${lab.host('b').root}/stream-copy/data`;
        const run = await sendFromA(lab, [
          '--name',
          'volume',
          '--to',
          'b',
          '--transport',
          'ssh',
          '--producer',
          JSON.stringify(['tar', '-C', volume, '-c', '.']),
          '--into',
          into,
        ]);
        assert.equal(run.exitCode, 0, run.stderr);
        assert.deepEqual(
          diffTreeFingerprints(await treeFingerprint(lab, 'a', volume), await treeFingerprint(lab, 'b', into)),
          [],
        );
        await runOrThrow(labShell(lab, 'a'), `mkfifo ${volume}/real/queue`);
        const refused = await sendFromA(lab, [
          '--name',
          'volume',
          '--to',
          'b',
          '--transport',
          'ssh',
          '--retries',
          '2',
          '--producer',
          JSON.stringify(['tar', '-C', volume, '-c', '.']),
          '--into',
          into,
        ]);
        assert.equal(refused.exitCode, 5, refused.stderr);
        assert.match(refused.stderr, /refusing tar entry "\.\/real\/queue": a FIFO/);
        const { error } = refused.json as {
          error: { code: string; hint: string; details: { result: { retries: number; failures: unknown[] } } };
        };
        assert.equal(error.code, 'TAR_SPECIAL_FILE');
        assert.deepEqual(
          [error.details.result.retries, error.details.result.failures.length],
          [0, 1],
          `one attempt only: ${refused.stdout}`,
        );
        assert.match(error.hint, /retrying cannot help/);
        assert.doesNotMatch(refused.stderr, /volume: retry \d/);
        // The copy received before stays as it was.
        assert.equal((await runOrThrow(labShell(lab, 'b'), `readlink ${into}/current`)).trim(), '/etc/hostname');
        assert.equal(await canaryState(lab, outside), canaryBefore);
      },
    );

    for (const [what, make, named] of [
      ['a FIFO', 'mkfifo sub/queue', '"sub/queue" (FIFO)'],
      ['a device node', 'mknod sub/null c 1 3', '"sub/null" (character device)'],
    ] as const) {
      await t.test(`${what} in the volume is named on the source before any byte moves`, async () => {
        await runOrThrow(labShell(lab, 'b'), `rm -rf ${appOnB}`);
        await makeApp(lab, `mkdir sub && echo ok > sub/file && ${make}`);
        const run = await deployOnA(lab, ['migrate', 'links', '--to', 'b', '--transport', 'ssh', '--json']);
        assertExit(run, 3, `migrate with ${what}`);
        // Refused by the source preflight: the --json error shape, no run report (no part was sent).
        const { ok, error } = JSON.parse(run.stdout) as {
          ok: boolean;
          error: { kind: string; code: string; message: string; hint: string };
        };
        assert.equal(ok, false);
        assert.deepEqual([error.kind, error.code], ['config', 'VOLUME_SPECIAL_FILES']);
        assert.ok(error.message.includes(named), error.message);
        assert.match(
          error.message,
          /^volume files holds device nodes or FIFOs it does not declare, which a migration does not carry \(on a\)/,
        );
        assert.match(
          error.hint,
          /declare each in app\.yaml under the volume - special_files: \[\{ path: "sub\/(queue|null)", type: (fifo|char) \}\]/,
        );
        // Nothing was backed up or sent: the app's Borg repository was never made.
        assert.equal(
          (await lab.ssh('a', `test -e ${lab.host('a').stateDir}/borg/links && echo made || echo none`)).stdout.trim(),
          'none',
        );
        assert.equal((await lab.ssh('b', `ls -A ${lab.host('b').appsRoot}`)).stdout.trim(), '');
      });
    }
    await t.test(
      'a declared FIFO and a declared char device arrive with their mode, owner and device number; an undeclared FIFO beside them is still refused',
      async () => {
        await runOrThrow(labShell(lab, 'b'), `rm -rf ${appOnB}`);
        const declared = APP_YAML.replace(
          '    path: data/files\n',
          '    path: data/files\n    special_files:\n      - { path: sub/queue, type: fifo }\n      - { path: dev/null, type: char }\n',
        );
        const volume =
          'mkdir sub dev && echo ok > sub/file && mkfifo -m 0620 sub/queue && chown 4001:4002 sub/queue && mknod -m 0640 dev/null c 1 3 && chown 4003:4004 dev/null';
        await makeApp(lab, `${volume} && mkfifo sub/undeclared`, undefined, declared);
        const refused = await deployOnA(lab, ['migrate', 'links', '--to', 'b', '--transport', 'ssh', '--json']);
        assertExit(refused, 3, 'migrate with an undeclared FIFO beside declared ones');
        const { error } = JSON.parse(refused.stdout) as { error: { code: string; message: string } };
        assert.equal(error.code, 'VOLUME_SPECIAL_FILES');
        assert.match(error.message, /\(on a\): "sub\/undeclared" \(FIFO\)$/, 'only the undeclared one is named');
        await makeApp(lab, volume, undefined, declared);
        const run = await deployOnA(lab, ['migrate', 'links', '--to', 'b', '--transport', 'ssh', '--json']);
        const report = parseReport(run);
        assert.equal(report.ok, true, JSON.stringify(report.failure));
        const stat = await runOrThrow(
          labShell(lab, 'b'),
          `cd ${appOnB}/data/files && stat -c '%n|%F|%a|%u:%g|%t:%T' sub/queue dev/null && cat sub/file`,
        );
        assert.deepEqual(stat.trim().split('\n'), [
          'sub/queue|fifo|620|4001:4002|0:0',
          'dev/null|character special file|640|4003:4004|1:3',
          'ok',
        ]);
      },
    );
    assert.equal(await canaryState(lab, outside), canaryBefore);
  });
});
