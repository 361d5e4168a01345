import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describeExit } from './format.js';

test('describeExit names the signal of a killed process, never "exit null"', async () => {
  const child = spawn('sleep', ['30']);
  await new Promise((resolve) => child.once('spawn', resolve));
  child.kill('SIGTERM');
  const [exitCode, signal] = (await new Promise((resolve) => child.once('exit', (...ended) => resolve(ended)))) as [
    number | null,
    string | null,
  ];
  assert.equal(exitCode, null);
  assert.equal(describeExit({ exitCode, signal }), 'killed by SIGTERM');
  assert.equal(describeExit({ exitCode: 3, signal: null }), 'exit 3');
  assert.equal(describeExit({ exitCode: null }), 'ended without an exit status');
});
