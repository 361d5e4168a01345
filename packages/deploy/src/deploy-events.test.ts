// DeployEvent on the wire: the bus writes the fields in the order the JSONL output always had, a
// foreign deploy's line of a type this version does not know is kept (not dropped, not typed), and a
// relayed event keeps its type and data under the relaying run's app and host.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus, isForeignEvent, parseDeployEvent, type BusEvent } from '@deploykit/core';
import { DEPLOY_EVENT_TYPES } from './deploy-events.js';

test('an emitted event is written type, time, level, runId, app, host, then its fields', () => {
  const bus = new EventBus({ runId: 'r1', app: 'notes', host: 'a' });
  const event = bus.emit('migrate.step', { message: '[lock] lock notes', data: { step: 'lock' } });
  assert.deepEqual(Object.keys(JSON.parse(JSON.stringify(event))), [
    'type',
    'time',
    'level',
    'runId',
    'app',
    'host',
    'message',
    'data',
  ]);
  assert.equal(event.data.step, 'lock');
});

test('a known type parses as a DeployEvent, narrowed by its type', () => {
  const line = JSON.stringify({
    type: 'receive.step',
    time: 't',
    level: 'info',
    app: 'notes',
    message: '[receive] take the parts',
    data: { step: 'receive' },
  });
  const event = parseDeployEvent(line, DEPLOY_EVENT_TYPES);
  assert.ok(event !== undefined && !isForeignEvent(event));
  assert.equal(event.type === 'receive.step' ? event.data.step : undefined, 'receive');
});

test('an unknown type from another deploy is kept as a foreign event, its line unchanged', () => {
  const line = JSON.stringify({
    type: 'receive.newer-thing',
    time: 't',
    level: 'warn',
    app: 'notes',
    message: 'from a newer deploy',
    data: { x: 1 },
  });
  const event = parseDeployEvent(line, DEPLOY_EVENT_TYPES);
  assert.ok(event !== undefined && isForeignEvent(event));
  assert.equal(JSON.stringify(event), line);
  assert.equal(parseDeployEvent('{"type":"x","time":"t","level":"loud"}', DEPLOY_EVENT_TYPES), undefined);
  assert.equal(parseDeployEvent('not json', DEPLOY_EVENT_TYPES), undefined);
});

test('relay republishes under this run, type, message and data unchanged, foreign or not', () => {
  const bus = new EventBus({ runId: 'r1', app: 'notes', host: 'a' }, { keep: true });
  const seen: BusEvent[] = [];
  bus.on((event) => seen.push(event));
  for (const type of ['receive.step', 'receive.newer-thing']) {
    const parsed = parseDeployEvent(
      JSON.stringify({
        type,
        time: 't0',
        level: 'info',
        runId: 'other',
        app: 'notes',
        host: 'b',
        stream: 's',
        message: 'm',
        data: { step: 'x' },
      }),
      DEPLOY_EVENT_TYPES,
    );
    assert.ok(parsed !== undefined);
    bus.relay(parsed, { level: 'debug', app: 'notes@b', host: 'b' });
  }
  assert.equal(seen.length, 2);
  for (const [index, event] of seen.entries()) {
    const wire = JSON.parse(JSON.stringify(event)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(wire), ['type', 'time', 'level', 'runId', 'app', 'host', 'stream', 'message', 'data']);
    assert.deepEqual(
      { ...wire, time: undefined },
      {
        type: ['receive.step', 'receive.newer-thing'][index],
        time: undefined,
        level: 'debug',
        runId: 'r1',
        app: 'notes@b',
        host: 'b',
        stream: 's',
        message: 'm',
        data: { step: 'x' },
      },
    );
  }
  assert.equal(isForeignEvent(seen[1]!), true, 'a relayed foreign event stays foreign');
  assert.equal(bus.events.length, 2);
});
