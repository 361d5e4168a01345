// The sending ffl killed mid-stream, 20 runs at once on a CPU-loaded machine (two busy loops besides
// the runs themselves), against the stand-in at the real ffl timings: every run must name the sender
// and leave no file and no process of its own (test/src/ffl-sandbox.ts finds them by run id). The runs
// mostly sleep (link ~2 s, WebRTC setup ~10 s), so the 20 together take about a minute.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FFL_STANDIN_ENV } from '@deploykit/ffl-standin';
import { describeResult, diagnose, findLeftovers, MiB, sendOverFfl, withBusyCpus, withSandbox } from './ffl-sandbox.js';

test('the sending ffl killed mid-stream is named as the sender 20 runs of 20, concurrently on a CPU-loaded machine, and no run leaves a file or process', async (t) => {
  const started = Date.now();
  // allSettled: a run that throws must not end the test while the others still run (their sandboxes
  // would never be disposed).
  const settled = await withBusyCpus(() =>
    Promise.allSettled(
      Array.from({ length: 20 }, (_unused, index) =>
        withSandbox(async (sandbox) => {
          const { result } = await sendOverFfl(sandbox, {
            bytes: 4 * MiB,
            senderEnv: { [FFL_STANDIN_ENV.killAfterBytes]: String(MiB) },
          });
          const found: string[] = [];
          if (
            result.ok ||
            result.failure?.stage !== 'sender' ||
            result.failure.code !== 'FFL_SENDER_FAILED' ||
            result.failure.signal !== 'SIGKILL'
          ) {
            found.push(`run ${index}: ${describeResult(result)}`);
          }
          for (const leftover of await findLeftovers(sandbox)) found.push(`run ${index}: ${leftover}`);
          return found;
        }),
      ),
    ),
  );
  diagnose(t, '20 concurrent runs under load took', Date.now() - started);
  const problems = settled.flatMap((outcome, index) =>
    outcome.status === 'fulfilled' ? outcome.value : [`run ${index}: threw ${String(outcome.reason)}`],
  );
  assert.deepEqual(problems, []);
});
