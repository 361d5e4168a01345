// End-to-end: the ffl transport (against the stand-in, docs/ffl-standin.md) and the legacy scp
// transport between two lab hosts, with their own faults.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startLab, type Lab } from '@deploykit/testlab';
import { quoteWord } from '@deploykit/core';
import { labShell, runOrThrow } from './helpers/index.js';
import {
  assertNoLeftovers,
  assertNoStreamProcesses,
  assertSameDatabase,
  assertSameTree,
  borgProducer,
  createFixtures,
  seedPreviousData,
  sendFromA,
  type TransportFixtures,
} from './transport-helpers.js';

describe('ffl and scp transports', { concurrency: false }, () => {
  let lab: Lab;
  let fixtures: TransportFixtures;
  let b: string;
  before(async () => {
    // These cases test behaviour, not timing (transport-ffl-timing.test.ts does): no stand-in delays.
    lab = await startLab({ hosts: 2, fflTimeScale: 0 });
    fixtures = await createFixtures(lab);
    b = lab.host('b').root;
    await runOrThrow(labShell(lab, 'b'), 'createdb dst_ffl && createdb dst_scp');
  });
  after(async () => {
    await lab?.down();
  });

  test('ffl: a borg export-tar stream lands identical on host b; path reported from the hook events', async () => {
    const into = `${b}/ffl/data`;
    const run = await sendFromA(lab, [
      '--name',
      'volumes',
      '--to',
      'b',
      '--transport',
      'ffl',
      '--producer',
      JSON.stringify(borgProducer(fixtures)),
      '--into',
      into,
    ]);
    assert.equal(run.exitCode, 0, run.stderr);
    assert.equal(run.json?.path, 'direct');
    await assertSameTree(lab, fixtures.dataDir, into);
    await assertNoLeftovers(lab, into);
    await assertNoStreamProcesses(lab);
    assert.doesNotMatch(run.stderr, /pickup/i);
  });

  test('ffl: a pg_dump stream restores into host b with identical content', async () => {
    const run = await sendFromA(lab, [
      '--name',
      'database',
      '--to',
      'b',
      '--transport',
      'ffl',
      '--producer',
      JSON.stringify(['pg_dump', '-Fc', fixtures.database]),
      '--consumer',
      JSON.stringify(['pg_restore', '--no-owner', '-d', 'dst_ffl']),
    ]);
    assert.equal(run.exitCode, 0, run.stderr);
    await assertSameDatabase(lab, fixtures.database, 'dst_ffl');
    await assertNoStreamProcesses(lab);
  });

  test('ffl: the sender dies mid-stream: the sender is named, previous data untouched', async () => {
    const into = `${b}/ffl-kill/data`;
    const untouched = await seedPreviousData(lab, into);
    const run = await sendFromA(
      lab,
      [
        '--name',
        'volumes',
        '--to',
        'b',
        '--transport',
        'ffl',
        '--retries',
        '0',
        '--producer',
        JSON.stringify(borgProducer(fixtures)),
        '--into',
        into,
      ],
      { FFL_STANDIN_THROTTLE_BYTES_PER_SEC: '2000000', FFL_STANDIN_KILL_AFTER_BYTES: '1000000' },
    );
    assert.equal(run.exitCode, 5);
    assert.match(run.stderr, /sender failed \(killed by SIGKILL\): ffl share/);
    await untouched();
    await assertNoStreamProcesses(lab);
    await assertNoLeftovers(lab, into);
  });

  test('ffl: a wrong pickup code fails the receiver with the 401, nothing swapped in', async () => {
    const into = `${b}/ffl-code/data`;
    const untouched = await seedPreviousData(lab, into);
    const work = `${lab.host('a').root}/ffl-by-hand`;
    const pid = Number(
      (
        await runOrThrow(
          labShell(lab, 'a'),
          `mkdir -p ${work}/storage && cd ${work} || exit 1
FFL_STORAGE_LOCATION=${work}/storage FFL_LANGUAGE=en setsid sh -c 'printf payload | exec ffl - --stdin-cache off --max-downloads 1 --e2ee --pickup-code 123456 --hook ${work}/hook.jsonl --json ${work}/share.json --foreground --disable-clipboard --name x' </dev/null >${work}/out 2>&1 &
echo $!`,
        )
      ).trim(),
    );
    try {
      let link = '';
      for (let tries = 0; tries < 100 && link === ''; tries += 1) {
        const share = await lab.ssh('a', `cat ${work}/share.json 2>/dev/null`);
        if (share.exitCode === 0 && share.stdout.includes('link'))
          link = (JSON.parse(share.stdout) as { link: string }).link;
        else await sleep(100);
      }
      assert.notEqual(link, '');
      const run = await lab.ssh(
        'b',
        `DEPLOY_PICKUP_CODE=654321 deploy stream receive --name x --run-id wrongcode --from ${quoteWord(link)} --into ${quoteWord(into)}`,
      );
      assert.equal(run.exitCode, 5);
      assert.match(
        run.stderr,
        /receiver failed: the pickup code was refused \(HTTP 401\): ffl download exited with code 1.*401/,
      );
      assert.doesNotMatch(run.stderr, /654321/);
      await untouched();
      await assertNoLeftovers(lab, into);
    } finally {
      // setsid made the sh its own process group with ffl inside it: stop the whole group.
      await lab.ssh(
        'a',
        `kill -INT -- -${pid} 2>/dev/null; sleep 0.5; kill -KILL -- -${pid} 2>/dev/null; rm -rf ${work}`,
      );
    }
  });

  test('scp: borg and pg_dump streams arrive identical; both staged copies are deleted', async () => {
    const into = `${b}/scp/data`;
    const run = await sendFromA(lab, [
      '--name',
      'volumes',
      '--to',
      'b',
      '--transport',
      'scp',
      '--producer',
      JSON.stringify(borgProducer(fixtures)),
      '--into',
      into,
    ]);
    assert.equal(run.exitCode, 0, run.stderr);
    assert.equal(run.json?.path, 'file');
    await assertSameTree(lab, fixtures.dataDir, into);
    const db = await sendFromA(lab, [
      '--name',
      'database',
      '--to',
      'b',
      '--transport',
      'scp',
      '--producer',
      JSON.stringify(['pg_dump', '-Fc', fixtures.database]),
      '--consumer',
      JSON.stringify(['pg_restore', '--no-owner', '-d', 'dst_scp']),
    ]);
    assert.equal(db.exitCode, 0, db.stderr);
    await assertSameDatabase(lab, fixtures.database, 'dst_scp');
    await assertNoLeftovers(lab, into);
    await assertNoStreamProcesses(lab);
  });

  test('scp: refuses with numbers when the source lacks space, and suggests a streaming transport', async () => {
    const run = await sendFromA(lab, [
      '--name',
      'volumes',
      '--to',
      'b',
      '--transport',
      'scp',
      '--estimated-bytes',
      String(2 ** 50),
      '--producer',
      '["true"]',
      '--into',
      `${b}/scp-big/data`,
    ]);
    assert.equal(run.exitCode, 6);
    assert.match(run.stderr, /source host a has [\d.]+ [KMGT]iB free in .*, the scp transport needs 1024\.0 TiB/);
    assert.match(run.stderr, /--transport ssh or ffl/);
  });

  test('scp: a failing producer leaves no staged file on either host', async () => {
    const into = `${b}/scp-fail/data`;
    const untouched = await seedPreviousData(lab, into);
    const run = await sendFromA(lab, [
      '--name',
      'volumes',
      '--to',
      'b',
      '--transport',
      'scp',
      '--retries',
      '0',
      '--producer',
      JSON.stringify(['sh', '-c', `borg export-tar ${fixtures.archive} - | head -c 500000; exit 4`]),
      '--into',
      into,
    ]);
    assert.equal(run.exitCode, 5);
    assert.match(run.stderr, /producer failed \(exit 4\)/);
    await untouched();
    await assertNoLeftovers(lab, into);
    await assertNoStreamProcesses(lab);
  });

  // A copy damaged on its way: scp is wrapped (first on PATH on host a) by a script that runs the real
  // scp, then changes the file it wrote on b (the lab's hosts share this machine's file system).
  for (const [damage, change, code] of [
    ['truncated', 'truncate -s -1000 "$f"', 'FRAME_TRUNCATED'],
    ['padded', 'truncate -s +512 "$f"', 'FRAME_GARBAGE'],
    ['corrupted', 'printf X | dd conv=notrunc bs=1 seek=600000 status=none of="$f"', 'FRAME_MISMATCH'],
  ] as const) {
    test(`scp: a staged file ${damage} on the target fails as integrity ${code}; previous data kept, no staged file left`, async () => {
      const a = lab.host('a').root;
      const into = `${b}/scp-${damage}/data`;
      const untouched = await seedPreviousData(lab, into);
      const wrapper = `${a}/scp-${damage}-bin`;
      const script = [
        '#!/bin/sh',
        'real=$(PATH=$(printf %s "$PATH" | sed "s|^[^:]*:||") command -v scp)',
        '"$real" "$@" || exit $?',
        'for last; do :; done',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion in the script
        'f=${last#*:}',
        change,
        '',
      ].join('\n');
      await runOrThrow(
        labShell(lab, 'a'),
        `mkdir -p ${quoteWord(wrapper)} && printf %s ${quoteWord(script)} > ${quoteWord(`${wrapper}/scp`)} && chmod +x ${quoteWord(`${wrapper}/scp`)}`,
      );
      const run = await sendFromA(
        lab,
        [
          '--name',
          'volumes',
          '--to',
          'b',
          '--transport',
          'scp',
          '--retries',
          '0',
          '--producer',
          JSON.stringify(borgProducer(fixtures)),
          '--into',
          into,
        ],
        { PATH: `${wrapper}:${lab.host('a').env['PATH'] ?? '/usr/bin:/bin'}` },
      );
      assert.equal(run.exitCode, 5, run.stderr);
      assert.match(run.stderr, /integrity failed: the staged (stream )?file/);
      const error = run.json?.['error'] as
        | { code?: string; details?: { result?: { failure?: { stage?: string; code?: string } } } }
        | undefined;
      const failure = error?.details?.result?.failure;
      assert.deepEqual([error?.code, failure?.stage, failure?.code], [code, 'integrity', code], run.stdout);
      await untouched();
      await assertNoLeftovers(lab, into);
      await assertNoStreamProcesses(lab);
    });
  }
});
