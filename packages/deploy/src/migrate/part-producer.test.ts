import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalHost } from '@deploykit/host';
import { AHEAD_BUFFER_BYTES, oneAtATime, readsBorgRepository, startProducer } from './part-producer.js';
import type { SourcePart } from './source-plan.js';

const part = (producer: string[], producerInput?: string): SourcePart => ({
  part: { id: 'p', kind: 'db-roles', title: 'p', expectedBytes: 0, fromArchive: false },
  producer,
  producerEnv: {},
  ...(producerInput !== undefined ? { producerInput } : {}),
});

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

test('a producer started ahead keeps the output it wrote before its turn, also when it exited meanwhile', async () => {
  const host = new LocalHost();
  const ahead = startProducer(
    host,
    part(['bash', '-c', 'cat; printf " and more"; echo oops >&2'], 'the patterns'),
    true,
  );
  const result = await ahead.process.wait();
  assert.equal(result.exitCode, 0);
  // Read only now, after the exit: node would have dropped the child's unread stdout by then.
  assert.equal((await readAll(ahead.stdout)).toString(), 'the patterns and more');
  assert.equal(ahead.stderr.join(''), 'oops\n');
});

test('a producer started ahead blocks once its buffer is full, and hands every byte over when read', async () => {
  const host = new LocalHost();
  const bytes = AHEAD_BUFFER_BYTES * 4;
  const ahead = startProducer(host, part(['head', '-c', String(bytes), '/dev/zero']), true);
  const exited = ahead.process.wait().then(() => 'exited' as const);
  // It cannot write 4 MiB into a 1 MiB buffer plus a pipe: still running after a while.
  assert.equal(await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 1000, 'waiting'))]), 'waiting');
  assert.equal((await readAll(ahead.stdout)).length, bytes);
  assert.equal(await exited, 'exited');
});

test('oneAtATime runs work in call order, never two at once, and goes on after a failure', async () => {
  const inTurn = oneAtATime();
  const log: string[] = [];
  let running = 0;
  const job =
    (name: string, ms: number, fail = false) =>
    async (): Promise<string> => {
      running += 1;
      assert.equal(running, 1, `${name} ran beside another`);
      log.push(`start ${name}`);
      await new Promise((resolve) => setTimeout(resolve, ms));
      running -= 1;
      log.push(`end ${name}`);
      if (fail) throw new Error(name);
      return name;
    };
  const results = await Promise.allSettled([inTurn(job('a', 30)), inTurn(job('b', 5, true)), inTurn(job('c', 1))]);
  assert.deepEqual(
    results.map((result) => (result.status === 'fulfilled' ? result.value : (result.reason as Error).message)),
    ['a', 'b', 'c'],
  );
  assert.deepEqual(log, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  assert.equal(
    readsBorgRepository(
      part(['bash', '-c', 'exec "$@" --patterns-from <(cat)', 'borg-patterns', 'borg', 'export-tar', '::a', '-']),
    ),
    true,
  );
  assert.equal(readsBorgRepository(part(['pg_dump', '--format=custom', 'notes'])), false);
});
