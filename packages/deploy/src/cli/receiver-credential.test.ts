import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fflTransport } from '@deploykit/transport';
import { readReceiverCredential } from './receiver-credential.js';

const spec = fflTransport.receiverCredential!;

test('the pickup code comes from a 0600 file first, then the environment, then the prompt', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dk-credential-'));
  try {
    const file = join(dir, 'code');
    await writeFile(file, '123456\n', { mode: 0o600 });
    const asked: string[] = [];
    const prompt = async (question: string): Promise<string> => {
      asked.push(question);
      return ' 654321 ';
    };
    assert.equal(
      (await readReceiverCredential(spec, { environment: { DEPLOY_PICKUP_CODE: '111111' }, file, prompt })).reveal(),
      '123456',
    );
    assert.equal(
      (await readReceiverCredential(spec, { environment: { DEPLOY_PICKUP_CODE: '111111' }, prompt })).reveal(),
      '111111',
    );
    assert.equal((await readReceiverCredential(spec, { environment: {}, prompt })).reveal(), '654321');
    assert.deepEqual(asked, ["Pickup code (shown on the source's terminal): "]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a code file others may read is refused, naming the fix; a code of the wrong shape is refused without echoing it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dk-credential-'));
  try {
    const file = join(dir, 'code');
    await writeFile(file, '123456\n');
    await chmod(file, 0o644);
    await assert.rejects(
      readReceiverCredential(spec, { environment: {}, file }),
      (error: Error & { hint?: string }) => {
        assert.match(error.message, /may be read by others \(mode 0644\)/);
        assert.equal(error.hint, `chmod 600 ${file}, then run again.`);
        return true;
      },
    );
    await assert.rejects(
      readReceiverCredential(spec, { environment: {}, file: join(dir, 'missing') }),
      /cannot read the pickup code file .*ENOENT/,
    );
    await assert.rejects(
      readReceiverCredential(spec, { environment: { DEPLOY_PICKUP_CODE: '12a45x7' } }),
      (error: Error) => {
        assert.equal(error.message, 'the pickup code from DEPLOY_PICKUP_CODE is not 6 digits (7 characters)');
        return true;
      },
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('without a file, the environment or a terminal the message says each way to pass the code', async () => {
  await assert.rejects(readReceiverCredential(spec, { environment: {} }), (error: Error & { hint?: string }) => {
    assert.equal(error.message, 'this link needs its pickup code, and there is no terminal to ask for it');
    assert.equal(
      error.hint,
      'Set DEPLOY_PICKUP_CODE, pass --code-file FILE (mode 0600), or run it in a terminal to be asked.',
    );
    return true;
  });
});
