// End-to-end: `deploy stream send` over the ssh and local transports between two lab hosts, with the
// faults the pipeline must name and clean up after (docs/transports.md).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { startLab, type Lab } from '@deploykit/testlab';
import { quoteWord } from '@deploykit/core';
import { FrameEncoder } from '@deploykit/transport';
import { labShell, runOrThrow } from './helpers/index.js';
import {
  assertNoLeftovers,
  assertNoStreamProcesses,
  assertSameDatabase,
  assertSameTree,
  borgProducer,
  createFixtures,
  findRunTraces,
  seedPreviousData,
  settleEmpty,
  sendFromA,
  THROTTLE,
  waitForLabProcess,
  type TransportFixtures,
} from './transport-helpers.js';

/** Frames `payload` exactly as the sending deploy does. */
async function frame(payload: Buffer, exitCode = 0): Promise<Buffer> {
  const encoder = new FrameEncoder();
  const out: Buffer[] = [];
  encoder.on('data', (chunk: Buffer) => out.push(chunk));
  const ended = new Promise((resolve) => encoder.on('end', resolve));
  encoder.end(payload);
  encoder.finish({ exitCode, signal: null });
  await ended;
  return Buffer.concat(out);
}

describe('ssh and local transports', { concurrency: false }, () => {
  let lab: Lab;
  let fixtures: TransportFixtures;
  let b: string;
  before(async () => {
    lab = await startLab({ hosts: 2 });
    fixtures = await createFixtures(lab);
    b = lab.host('b').root;
  });
  after(async () => {
    await lab?.down();
  });

  test('ssh: a borg export-tar stream lands identical in --into DIR on host b', async () => {
    const into = `${b}/apps/notes/data`;
    const run = await sendFromA(lab, [
      '--name',
      'volumes',
      '--to',
      'b',
      '--transport',
      'ssh',
      '--producer',
      JSON.stringify(borgProducer(fixtures)),
      '--into',
      into,
    ]);
    assert.equal(run.exitCode, 0, run.stderr);
    assert.equal(run.json?.ok, true);
    assert.equal(run.json?.path, 'ssh');
    assert.match(String(run.json?.sha256), /^[0-9a-f]{64}$/);
    await assertSameTree(lab, fixtures.dataDir, into);
    await assertNoLeftovers(lab, into);
    await assertNoStreamProcesses(lab);
  });

  test('ssh: a pg_dump stream restores into host b with identical content', async () => {
    await runOrThrow(labShell(lab, 'b'), 'createdb dst_ssh');
    const run = await sendFromA(lab, [
      '--name',
      'database',
      '--to',
      'b',
      '--transport',
      'ssh',
      '--producer',
      JSON.stringify(['pg_dump', '-Fc', fixtures.database]),
      '--consumer',
      JSON.stringify(['pg_restore', '--no-owner', '-d', 'dst_ssh']),
    ]);
    assert.equal(run.exitCode, 0, run.stderr);
    await assertSameDatabase(lab, fixtures.database, 'dst_ssh');
    await assertNoStreamProcesses(lab);
  });

  test('local: the same borg and pg_dump streams on one host', async () => {
    const into = `${lab.host('a').root}/local-copy/data`;
    const run = await sendFromA(lab, [
      '--name',
      'volumes',
      '--transport',
      'local',
      '--producer',
      JSON.stringify(borgProducer(fixtures)),
      '--into',
      into,
    ]);
    assert.equal(run.exitCode, 0, run.stderr);
    assert.equal(run.json?.path, 'local');
    const [source, copy] = await Promise.all([
      runOrThrow(
        labShell(lab, 'a'),
        `cd ${fixtures.dataDir} && find . -printf '%p %y %m %l\\n' | sort && find . -type f -exec sha256sum {} + | sort`,
      ),
      runOrThrow(
        labShell(lab, 'a'),
        `cd ${into} && find . -printf '%p %y %m %l\\n' | sort && find . -type f -exec sha256sum {} + | sort`,
      ),
    ]);
    assert.equal(copy, source);
    await runOrThrow(labShell(lab, 'a'), 'createdb dst_local');
    const db = await sendFromA(lab, [
      '--name',
      'database',
      '--transport',
      'local',
      '--producer',
      JSON.stringify(['pg_dump', '-Fc', fixtures.database]),
      '--consumer',
      JSON.stringify(['pg_restore', '--no-owner', '-d', 'dst_local']),
    ]);
    assert.equal(db.exitCode, 0, db.stderr);
    const [x, y] = await Promise.all([
      runOrThrow(
        labShell(lab, 'a'),
        `psql -X -At -d src -c "select count(*), md5(string_agg(body, ',' order by id)) from notes"`,
      ),
      runOrThrow(
        labShell(lab, 'a'),
        `psql -X -At -d dst_local -c "select count(*), md5(string_agg(body, ',' order by id)) from notes"`,
      ),
    ]);
    assert.equal(y, x);
  });

  test('the receiver killed mid-stream: named, nothing swapped in, nothing left', async () => {
    const into = `${b}/fault-receiver/data`;
    const untouched = await seedPreviousData(lab, into);
    const sending = sendFromA(lab, [
      '--name',
      'volumes',
      '--to',
      'b',
      '--retries',
      '0',
      '--producer',
      JSON.stringify(borgProducer(fixtures, 1_000_000)),
      '--into',
      into,
    ]);
    const pid = await waitForLabProcess(lab, /^node \S+deploy stream receive --jsonl/);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    process.kill(pid, 'SIGKILL');
    const run = await sending;
    assert.equal(run.exitCode, 5, run.stderr);
    assert.match(run.stderr, /receiver failed/);
    await untouched();
    await assertNoStreamProcesses(lab);
    await assertNoLeftovers(lab, into);
  });

  test('the producer exits non-zero halfway: the producer is named with its exit code and stderr', async () => {
    const into = `${b}/fault-producer/data`;
    const untouched = await seedPreviousData(lab, into);
    const producer = [
      'sh',
      '-c',
      `${quoteWord('borg')} export-tar ${quoteWord(fixtures.archive)} - | head -c 1500000; echo 'disk exploded' >&2; exit 3`,
    ];
    const run = await sendFromA(lab, [
      '--name',
      'volumes',
      '--to',
      'b',
      '--retries',
      '0',
      '--producer',
      JSON.stringify(producer),
      '--into',
      into,
    ]);
    assert.equal(run.exitCode, 5);
    assert.match(run.stderr, /producer failed \(exit 3\)/);
    assert.match(run.stderr, /disk exploded/);
    await untouched();
    await assertNoStreamProcesses(lab);
    await assertNoLeftovers(lab, into);
  });

  test('a truncated stream fails integrity; trailing garbage after the trailer is ignored', async () => {
    const into = `${b}/fault-truncated/data`;
    const untouched = await seedPreviousData(lab, into);
    const tarBytes = Buffer.from(
      await runOrThrow(labShell(lab, 'a'), `tar -C ${fixtures.dataDir}/uploads -c 2026 | base64 -w0`),
      'base64',
    );
    const framed = await frame(tarBytes);
    const shellB = labShell(lab, 'b');
    const truncated = await shellB.run(
      `base64 -d | deploy stream receive --transport ssh --name volumes --run-id t1 --into ${quoteWord(into)}`,
      framed.subarray(0, framed.length - 200).toString('base64'),
    );
    assert.equal(truncated.exitCode, 5);
    assert.match(truncated.stderr, /integrity|truncated/);
    await untouched();
    const polluted = await shellB.run(
      `base64 -d | deploy stream receive --transport ssh --name volumes --run-id t2 --into ${quoteWord(into)}`,
      Buffer.concat([framed, Buffer.from('File transfer completed\n')]).toString('base64'),
    );
    assert.equal(polluted.exitCode, 0, polluted.stderr);
    const listed = await runOrThrow(shellB, `ls ${quoteWord(into)}/2026 | wc -l`);
    assert.equal(listed.trim(), '41');
    await assertNoLeftovers(lab, into);
  });

  test('a stopped consumer stalls the stream: aborted after the window, consumer named', async () => {
    const marker = `${b}/stall-sink.bin`;
    const sending = sendFromA(lab, [
      '--name',
      'blob',
      '--to',
      'b',
      '--retries',
      '0',
      '--stall-seconds',
      '2',
      '--producer',
      JSON.stringify(['sh', '-c', `head -c 40000000 /dev/zero | node ${quoteWord(THROTTLE)} 4000000`]),
      '--consumer',
      JSON.stringify(['dd', `of=${marker}`, 'bs=65536', 'status=none']),
    ]);
    const pid = await waitForLabProcess(lab, /dd of=.*stall-sink/);
    await new Promise((resolve) => setTimeout(resolve, 500));
    process.kill(pid, 'SIGSTOP');
    const started = Date.now();
    const run = await sending;
    assert.equal(run.exitCode, 5);
    assert.match(
      run.stderr,
      /consumer failed: (no byte moved for \d+ s \(window 2 s\)|the consumer took no bytes for \d+ s)/,
    );
    assert.ok(Date.now() - started < 20_000, 'the stall aborted the stream promptly');
    await assertNoStreamProcesses(lab);
    await assertNoLeftovers(lab);
  });

  test('the ssh connection dropped: the sender is named and the remote receiver is killed', async () => {
    const into = `${b}/fault-ssh/data`;
    const untouched = await seedPreviousData(lab, into);
    const sending = sendFromA(lab, [
      '--name',
      'volumes',
      '--to',
      'b',
      '--retries',
      '0',
      '--producer',
      JSON.stringify(borgProducer(fixtures, 1_000_000)),
      '--into',
      into,
    ]);
    const pid = await waitForLabProcess(lab, /^ssh .*stream receive --jsonl/);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    process.kill(pid, 'SIGKILL');
    const run = await sending;
    assert.equal(run.exitCode, 5);
    assert.match(run.stderr, /sender failed \(killed by SIGKILL\): the ssh connection to b dropped/);
    await untouched();
    await assertNoStreamProcesses(lab);
    await assertNoLeftovers(lab, into);
  });

  /** Starts a throttled send of run `runId` on host a; resolves once its temp dirs (named with the run id) exist and the receiver runs. */
  async function startRunSend(
    runId: string,
    into: string,
  ): Promise<{ sending: ReturnType<typeof sendFromA>; pid: number }> {
    const sending = sendFromA(lab, [
      '--run-id',
      runId,
      '--name',
      'volumes',
      '--to',
      'b',
      '--retries',
      '0',
      '--producer',
      JSON.stringify(borgProducer(fixtures, 1_000_000)),
      '--into',
      into,
    ]);
    const pid = await waitForLabProcess(lab, new RegExp(`^node \\S+deploy stream send .*--run-id ${runId}`));
    // The receiver on b runs under the same run id, and a's temp dirs (control socket, attempt) carry it.
    await waitForLabProcess(lab, new RegExp(`deploy stream receive .*--run-id ${runId}`));
    const tmpA = `${lab.host('a').root}/tmp`;
    const deadline = Date.now() + 15_000;
    let named: string[] = [];
    while (named.length < 2 && Date.now() < deadline) {
      named = (await readdir(tmpA)).filter((entry) => entry.startsWith(`dk-${runId}-`));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(
      named.length,
      2,
      `a send of run ${runId} names its control and attempt dirs with the run id: ${named.join(', ')}`,
    );
    await new Promise((resolve) => setTimeout(resolve, 1000));
    return { sending, pid };
  }

  test('stream send --run-id, SIGTERMed: it stops both sides and removes everything of the run before it exits', async () => {
    const runId = `term-${randomBytes(3).toString('hex')}`;
    const into = `${b}/fault-sigterm/data`;
    const untouched = await seedPreviousData(lab, into);
    const { sending, pid } = await startRunSend(runId, into);
    process.kill(pid, 'SIGTERM');
    const run = await sending;
    assert.equal(run.exitCode, 130, run.stderr);
    assert.match(run.stderr, /SIGTERM: stopping and undoing/);
    assert.deepEqual(await settleEmpty(() => findRunTraces(lab, runId)), [], `nothing of run ${runId} is left`);
    await untouched();
    await assertNoStreamProcesses(lab);
    await assertNoLeftovers(lab, into);
  });

  test('stream send --run-id, SIGKILLed: the next send of the run and `stream cleanup --run-id` remove what it left', async () => {
    const runId = `kill-${randomBytes(3).toString('hex')}`;
    const into = `${b}/fault-sigkill/data`;
    const untouched = await seedPreviousData(lab, into);
    for (const next of ['send', 'cleanup'] as const) {
      const { sending, pid } = await startRunSend(runId, into);
      process.kill(pid, 'SIGKILL');
      await sending;
      // A killed process cleans up nothing: its dirs (and its ssh master, ControlPersist) remain.
      const left = await findRunTraces(lab, runId);
      assert.ok(
        left.some((trace) => trace.includes(`dk-${runId}-send${pid}-cm-`)) &&
          left.some((trace) => trace.includes(`dk-${runId}-stream${pid}-`)),
        `the killed send left its dirs: ${left.join(', ')}`,
      );
      if (next === 'send') {
        const again = await sendFromA(lab, [
          '--run-id',
          runId,
          '--name',
          'note',
          '--to',
          'b',
          '--retries',
          '0',
          '--producer',
          JSON.stringify(['echo', 'hi']),
          '--consumer',
          JSON.stringify(['sh', '-c', 'cat >/dev/null']),
        ]);
        assert.equal(again.exitCode, 0, again.stderr);
      } else {
        const cleanup = await lab.ssh('a', `deploy stream cleanup --run-id ${runId}`);
        assert.equal(cleanup.exitCode, 0, cleanup.stderr);
        assert.match(cleanup.stdout, new RegExp(`removed \\S+/dk-${runId}-send${pid}-cm-`));
      }
      assert.deepEqual(
        await settleEmpty(() => findRunTraces(lab, runId)),
        [],
        `after the ${next}, nothing of run ${runId} is left`,
      );
    }
    await untouched();
    await assertNoStreamProcesses(lab);
    await assertNoLeftovers(lab, into);
  });

  test('the target disk is full: the consumer is named, the previous data untouched', async () => {
    const mount = `${b}/small-disk`;
    const into = `${mount}/data`;
    await runOrThrow(labShell(lab, 'b'), `mkdir -p ${mount} && mount -t tmpfs -o size=1m tmpfs ${mount}`);
    try {
      const untouched = await seedPreviousData(lab, into);
      const run = await sendFromA(lab, [
        '--name',
        'volumes',
        '--to',
        'b',
        '--retries',
        '0',
        '--producer',
        JSON.stringify(borgProducer(fixtures)),
        '--into',
        into,
      ]);
      assert.equal(run.exitCode, 5);
      assert.match(run.stderr, /consumer failed/);
      assert.match(run.stderr, /No space left on device/);
      await untouched();
      await assertNoStreamProcesses(lab);
      await assertNoLeftovers(lab, into);
    } finally {
      await lab.ssh('b', `umount ${mount}`);
    }
  });

  test('a retry recovers from a producer that fails once', async () => {
    const into = `${b}/retry/data`;
    const marker = `${lab.host('a').root}/failed-once`;
    const producer = [
      'sh',
      '-c',
      `if [ ! -e ${marker} ]; then touch ${marker}; borg export-tar ${fixtures.archive} - | head -c 100000; exit 9; fi; exec borg export-tar ${fixtures.archive} -`,
    ];
    const run = await sendFromA(lab, [
      '--name',
      'volumes',
      '--to',
      'b',
      '--retries',
      '2',
      '--producer',
      JSON.stringify(producer),
      '--into',
      into,
    ]);
    assert.equal(run.exitCode, 0, run.stderr);
    assert.equal(run.json?.retries, 1);
    const failures = run.json?.failures as { stage: string; exitCode: number }[];
    assert.equal(failures.length, 1);
    assert.equal(failures[0]?.stage, 'producer');
    assert.equal(failures[0]?.exitCode, 9);
    await assertSameTree(lab, fixtures.dataDir, into);
    await assertNoLeftovers(lab, into);
  });

  test('an unknown transport lists the known ones', async () => {
    const run = await sendFromA(lab, [
      '--name',
      'x',
      '--to',
      'b',
      '--transport',
      'carrier-pigeon',
      '--producer',
      '["true"]',
      '--into',
      '/nonexistent',
    ]);
    assert.equal(run.exitCode, 2);
    assert.match(run.stderr, /ffl, ssh, scp, local/);
  });
});
