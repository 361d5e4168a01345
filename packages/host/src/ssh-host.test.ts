import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PidMarkerFilter } from './ssh-host.js';

async function filter(chunks: string[]): Promise<{ out: string; pids: number[] }> {
  const pids: number[] = [];
  const f = new PidMarkerFilter((pid) => pids.push(pid));
  const out: Buffer[] = [];
  f.on('data', (chunk: Buffer) => out.push(chunk));
  const ended = new Promise((resolve) => f.on('end', resolve));
  for (const chunk of chunks) f.write(chunk);
  f.end();
  await ended;
  return { out: Buffer.concat(out).toString('utf8'), pids };
}

test('the remote pid marker is found after ssh warnings, in pieces, and kept out of stderr', async () => {
  assert.deepEqual(await filter(['@@deploykit-pid 4242\nboom\n']), { out: 'boom\n', pids: [4242] });
  const warning = "Warning: Permanently added '[127.0.0.3]:22' (ED25519) to the list of known hosts.\r\n";
  assert.deepEqual(await filter([warning, '@@deploy', 'kit-pid 77\r\nremote words\n', '@@deploykit-pid 5\n']), {
    out: `${warning}remote words\n@@deploykit-pid 5\n`,
    pids: [77],
  });
  assert.deepEqual(await filter(['ssh: connect to host b port 22: Connection refused\r\n']), {
    out: 'ssh: connect to host b port 22: Connection refused\r\n',
    pids: [],
  });
  assert.deepEqual(await filter(['no newline at the end']), { out: 'no newline at the end', pids: [] });
});
