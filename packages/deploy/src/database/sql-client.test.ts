import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalHost } from '@deploykit/host';
import { createSqlClient } from './sql-client.js';

test('a database client killed by a signal is reported as killed by it, not "exit null"', async () => {
  // A real client process that dies of SIGTERM (as one does when the server host stops it).
  const sql = createSqlClient(new LocalHost('here'), () => ['sh', '-c', 'cat >/dev/null; kill -TERM $$']);
  await assert.rejects(sql.query('select 1'), (error: Error) => {
    assert.match(error.message, /^sh on here failed \(killed by SIGTERM\)/);
    assert.doesNotMatch(error.message, /null/);
    return true;
  });
});
