// The ffl transport against the stand-in at the real tool's timings (reference §8, docs/ffl-standin.md):
// the link after ~2 s, the first payload byte ~10 s later, ~3 MiB/s, a dead sender noticed by the
// receiving ffl after ~30 s. No lab: both halves run on this machine (test/src/ffl-sandbox.ts). These
// cases test timing and faults; they mostly sleep and run concurrently (about 45 s).
// transport-ffl-sender-death.test.ts runs the 20 concurrent sender deaths under load.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HostProcess } from '@deploykit/core';
import { FFL_STANDIN_ENV } from '@deploykit/ffl-standin';
import {
  collectOutput,
  DEPLOY,
  describeResult,
  diagnose,
  findLeftovers,
  frame,
  measureFirstByte,
  MiB,
  parseJsonl,
  PICKUP_CODE,
  sendOverFfl,
  startShare,
  waitForHookEvent,
  withSandbox,
  type Sandbox,
} from './ffl-sandbox.js';

/** `deploy stream receive` of the run pulling `link` (code in its env) into a consumer that drops the bytes. */
function receiveFromLink(sandbox: Sandbox, link: string): HostProcess {
  return sandbox.host.spawn({
    argv: [
      ...DEPLOY,
      'stream',
      'receive',
      '--jsonl',
      '--quiet',
      '--name',
      'x',
      '--run-id',
      sandbox.runId,
      '--from',
      link,
      '--consumer',
      JSON.stringify(['sh', '-c', 'cat > /dev/null']),
    ],
    env: { DEPLOY_PICKUP_CODE: PICKUP_CODE },
  });
}

describe('ffl transport at the real ffl timings (stand-in, reference §8)', { concurrency: true }, () => {
  test('default windows: a stream over ffl completes although its first byte comes ~10 s after the link', async (t) => {
    await withSandbox(async (sandbox) => {
      const { result, events, input, output } = await sendOverFfl(sandbox, { bytes: 3 * MiB });
      assert.equal(result.ok, true, describeResult(result));
      assert.equal(result.path, 'direct');
      assert.ok(input.equals(await readFile(output)), 'the payload arrived unchanged');
      const { linkAt, firstByteAt } = measureFirstByte(events);
      diagnose(t, 'first payload byte after the link', firstByteAt - linkAt);
      assert.ok(firstByteAt - linkAt >= 8000, 'the stand-in delayed the first byte like the real WebRTC setup');
      assert.deepEqual(await findLeftovers(sandbox), []);
    });
  });

  test('a stall window shorter than the connection setup (5 s) holds: it starts counting at the first payload byte', async (t) => {
    await withSandbox(async (sandbox) => {
      const { result, events, input, output } = await sendOverFfl(sandbox, { bytes: 3 * MiB, stallSeconds: 5 });
      assert.equal(result.ok, true, describeResult(result));
      assert.ok(input.equals(await readFile(output)), 'the payload arrived unchanged');
      const { linkAt, firstByteAt } = measureFirstByte(events);
      diagnose(t, 'first payload byte after the link', firstByteAt - linkAt);
      assert.ok(firstByteAt - linkAt > 5000, 'the first byte came after more than one stall window');
      assert.deepEqual(await findLeftovers(sandbox), []);
    });
  });

  test('the readiness window is enforced and configurable: 4 s is too short for the link and the WebRTC setup', async (t) => {
    await withSandbox(async (sandbox) => {
      const { result, started } = await sendOverFfl(sandbox, { bytes: MiB, readySeconds: 4 });
      diagnose(t, 'failed after', Date.now() - started);
      assert.equal(result.ok, false);
      assert.equal(result.failure?.stage, 'receiver', describeResult(result));
      assert.equal(result.failure?.code, 'RECEIVER_NOT_READY');
      assert.match(result.failure?.message ?? '', /no payload byte reached the receiver on local within 4 s/);
      assert.match(result.failure?.hint ?? '', /--ready-seconds/);
      assert.deepEqual(await findLeftovers(sandbox), []);
    });
  });

  test('the receiving side alone names a dead sending ffl as the sender, with ffl error line and no progress-bar text in its tail', async (t) => {
    await withSandbox(async (sandbox) => {
      const { share, link, stop } = await startShare(sandbox, {
        input: await frame(randomBytes(4 * MiB)),
        env: { [FFL_STANDIN_ENV.killAfterBytes]: String(MiB) },
      });
      try {
        const receive = receiveFromLink(sandbox, link);
        const stdout = collectOutput(receive);
        await share.wait();
        const diedAt = Date.now();
        const result = await receive.wait();
        diagnose(t, 'the receiving side named the failure after the sender died', Date.now() - diedAt);
        assert.equal(result.exitCode, 5, result.stderr);
        const failed = parseJsonl(stdout()).find((event) => event['kind'] === 'failed');
        assert.equal(failed?.['stage'], 'sender', JSON.stringify(failed));
        assert.equal(failed?.['code'], 'FFL_SENDER_GONE');
        assert.match(String(failed?.['message']), /Failed to get file metadata: .*Connection refused/);
        const tail = String(failed?.['stderrTail']);
        assert.match(tail, /Oops, something went wrong: Download failed: Both WebRTC and HTTP downloads failed/);
        assert.doesNotMatch(tail, /Progress: |\r/);
        assert.doesNotMatch(JSON.stringify(failed), new RegExp(PICKUP_CODE));
        assert.deepEqual(await findLeftovers(sandbox), []);
      } finally {
        await stop();
      }
    });
  });

  test('SIGTERM of `deploy stream receive` while its sender is dead: it removes its deploy-ffl dir and stops its ffl before exiting', async (t) => {
    await withSandbox(async (sandbox) => {
      const { share, link, stop } = await startShare(sandbox, {
        input: await frame(randomBytes(4 * MiB)),
        env: { [FFL_STANDIN_ENV.killAfterBytes]: String(MiB) },
      });
      try {
        const receive = receiveFromLink(sandbox, link);
        const stdout = collectOutput(receive);
        await share.wait();
        // The receiving ffl now sits in its ~30 s before it notices; the source gives up long before.
        await sleep(2000);
        assert.ok(
          (await readdir(sandbox.tmp)).some((name) => name.startsWith(`deploy-ffl-${sandbox.runId}-`)),
          'the receive made its ffl dir',
        );
        const termAt = Date.now();
        receive.kill('SIGTERM');
        const result = await receive.wait();
        diagnose(t, 'exit after SIGTERM', Date.now() - termAt);
        assert.ok(Date.now() - termAt < 2000, 'done within the 2 s a LocalHost kill() waits before SIGKILL');
        assert.equal(result.signal, null, 'it exited by itself');
        const failed = parseJsonl(stdout()).find((event) => event['kind'] === 'failed');
        assert.deepEqual([failed?.['stage'], failed?.['code']], ['receiver', 'ABORTED']);
        assert.deepEqual(await findLeftovers(sandbox, 0), []);
      } finally {
        await stop();
      }
    });
  });

  test('SIGTERM of `deploy receive <app> --from LINK` while its sender is stalled: no deploy-ffl dir and no process of the run is left', async (t) => {
    await withSandbox(async (sandbox) => {
      const { link, hook, stop } = await startShare(sandbox, {});
      try {
        const receive = sandbox.host.spawn({
          argv: [...DEPLOY, 'receive', 'notes', '--from', link, '--json'],
          env: { DEPLOY_PICKUP_CODE: PICKUP_CODE },
        });
        // The data channel is open and the share waits for bytes its producer never writes.
        await waitForHookEvent(hook, '/webrtc/transfer/create', 60_000);
        await sleep(500);
        const logs = await readdir(join(sandbox.state, 'logs'));
        const runId = logs.find((name) => name.endsWith('.log'))?.replace(/\.log$/, '') ?? '';
        assert.ok(
          (await readdir(sandbox.tmp)).some((name) => name.startsWith(`deploy-ffl-${runId}-`)),
          `the receive made its ffl dir (run ${runId})`,
        );
        const termAt = Date.now();
        receive.kill('SIGTERM');
        const result = await receive.wait();
        diagnose(t, 'exit after SIGTERM', Date.now() - termAt);
        assert.ok(Date.now() - termAt < 2000, 'done within the 2 s a LocalHost kill() waits before SIGKILL');
        assert.equal(result.exitCode, 130, result.stderr);
        assert.deepEqual(await findLeftovers(sandbox, 0), []);
      } finally {
        await stop();
      }
    });
  });
});
