// The live view's model: a run's events (as migrate emits them) folded into steps, parts, bytes,
// rate, ETA, path and stalls, and rendered as the frame and the plain progress line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus } from '@deploykit/core';
import { describeTransfer, renderFrame, RunView } from './run-view.js';

const MiB = 1024 * 1024;

/** Events as a run of `notes` emits them (the bus stamps time, level and the app). */
const bus = new EventBus({ runId: 'r1', app: 'notes' });

/** A migration as far as its second part, 4 of 8 MiB sent at 1 MiB/s; `now` is 10 s after the start. */
function midTransfer(): { view: RunView; start: number } {
  const start = 1_000_000;
  const view = new RunView(start);
  const events = [
    bus.emit('migrate.start', { message: 'migrating notes to b over ssh: about 10.0 MiB; run r1' }),
    bus.emit('migrate.step', { message: '[lock] lock notes on this host', data: { step: 'lock' } }),
    bus.emit('migrate.plan', {
      level: 'debug',
      data: {
        transport: 'ssh',
        steps: [
          { id: 'backup', title: 'fresh Borg archive' },
          { id: 'send:files', title: 'send files', part: 'files', bytes: 2 * MiB },
          { id: 'send:volume:uploads', title: 'send uploads', part: 'volume:uploads', bytes: 8 * MiB },
          { id: 'target', title: 'b verifies' },
        ],
      },
    }),
    bus.emit('migrate.step', { message: '[backup] fresh Borg archive', data: { step: 'backup' } }),
    bus.emit('migrate.step', { message: '[send:files] send files', data: { step: 'send:files' } }),
    bus.emit('migrate.part', {
      stream: 'files',
      data: { id: 'files', status: 'sent', bytes: 2 * MiB, elapsedMs: 1000, rate: 2 * MiB, path: 'ssh', attempts: 1 },
    }),
    bus.emit('migrate.step', { message: '[send:volume:uploads] send uploads', data: { step: 'send:volume:uploads' } }),
    bus.emit('stream.progress', {
      stream: 'volume:uploads',
      data: { bytes: 4 * MiB, expected: 8 * MiB, rate: MiB, side: 'producer' },
    }),
    bus.emit('receive.step', {
      app: 'notes@b',
      host: 'b',
      message: '[receive] take the parts',
      data: { step: 'receive' },
    }),
    // The target's own byte count does not move the source's view.
    bus.emit('stream.progress', {
      app: 'notes@b',
      host: 'b',
      stream: 'volume:uploads',
      data: { stream: 'volume:uploads', bytes: 1, side: 'consumer' },
    }),
  ];
  for (const [index, item] of events.entries()) view.apply(item, start + 1000 * (index + 1));
  return { view, start };
}

test('the view folds a run: steps with states, the part in flight with bytes of its total, rate and ETA, the bundle, path, the target step', () => {
  const { view, start } = midTransfer();
  assert.deepEqual(
    view.steps.map((step) => [step.id, step.state]),
    [
      ['lock', 'done'],
      ['backup', 'done'],
      ['send:files', 'done'],
      ['send:volume:uploads', 'running'],
      ['target', 'pending'],
    ],
  );
  const frame = renderFrame(view, start + 10_000);
  assert.deepEqual(frame, [
    'migrating notes to b over ssh: about 10.0 MiB; run r1  10.0 s',
    '+ lock                 lock notes on this host',
    '+ backup               fresh Borg archive',
    '+ send:files           2.0 MiB at 2.0 MiB/s, path ssh',
    '> send:volume:uploads  4.0 MiB of 8.0 MiB (50%)  1.0 MiB/s  ETA 4.0 s',
    '. target               b verifies',
    'bundle 6.0 MiB of 10.0 MiB (60%), 1 of 2 parts  |  path ssh',
    'b: [receive] take the parts',
  ]);
  assert.equal(
    describeTransfer(view, start + 10_000),
    'part 2 of 2 volume:uploads: 4.0 MiB of 8.0 MiB (50%), 1.0 MiB/s, ETA 4.0 s; bundle 6.0 MiB of 10.0 MiB (60%); path ssh',
  );
});

test('a part that moves no byte shows a stall counting up; a new byte ends it; a done part ends the progress line', () => {
  const { view, start } = midTransfer();
  // The last byte moved at start + 8 s (the 8th event).
  assert.doesNotMatch(describeTransfer(view, start + 12_000)!, /no byte/);
  assert.match(describeTransfer(view, start + 13_000)!, /; no byte for 5 s$/);
  assert.match(renderFrame(view, start + 20_000).join('\n'), /path ssh {2}\| {2}no byte for 12 s/);
  view.apply(
    bus.emit('stream.progress', {
      stream: 'volume:uploads',
      data: { bytes: 5 * MiB, expected: 8 * MiB, rate: MiB, side: 'producer' },
    }),
    start + 21_000,
  );
  assert.doesNotMatch(describeTransfer(view, start + 22_000)!, /no byte/);
  view.apply(
    bus.emit('migrate.part', {
      stream: 'volume:uploads',
      data: {
        id: 'volume:uploads',
        status: 'sent',
        bytes: 8 * MiB,
        elapsedMs: 8000,
        rate: MiB,
        path: 'ssh',
        attempts: 1,
      },
    }),
    start + 23_000,
  );
  assert.equal(describeTransfer(view, start + 24_000), undefined);
  assert.match(renderFrame(view, start + 24_000).join('\n'), /bundle 10\.0 MiB of 10\.0 MiB \(100%\), 2 of 2 parts/);
});

test('a failed step is marked; lines are cut to the terminal width, never wrapped', () => {
  const { view, start } = midTransfer();
  view.apply(bus.emit('migrate.failed', { level: 'error', data: { step: 'send:volume:uploads', code: 'X' } }));
  const frame = renderFrame(view, start + 10_000, undefined, 40);
  assert.match(frame[4]!, /^! send:volume:uploads/);
  for (const line of frame) assert.ok(line.length <= 39, `${line} (${line.length})`);
  assert.match(frame[0]!, /~ {2}10\.0 s$/);
});
