// Unit tests of the mysqldump renamer and the batch-output parser; the move itself is tested against a
// real MariaDB in test/src/mariadb-staging.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { quoteMysqlIdentifier } from './identifiers.js';
import { createMysqldumpRenamer, parseMysqlBatchRows, type MysqldumpRewrites } from './mariadb-staging.js';

async function rename(chunks: readonly Buffer[], from = 'dk_app', to = 'dk_app_stage'): Promise<{ output: Buffer; rewrites: MysqldumpRewrites }> {
  const renamer = createMysqldumpRenamer(from, to);
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    renamer,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk);
        callback();
      },
    }),
  );
  return { output: Buffer.concat(out), rewrites: { ...renamer.rewrites } };
}

const DUMP = [
  '/*M!999999\\- enable the sandbox mode */ ',
  '-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB',
  '-- Current Database: `dk_app`',
  '',
  'CREATE DATABASE /*!32312 IF NOT EXISTS*/ `dk_app` /*!40100 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_swedish_ci */;',
  '',
  'USE `dk_app`;',
  "INSERT INTO `t` VALUES (1,'USE `dk_app`;\\nCREATE DATABASE `dk_app`;','Zoë ✓\t'),",
  "(2,'x');",
  ' USE `dk_app`;',
  'USE `dk_app`; -- not exactly the statement',
  'USE `dk_other`;',
  'USE `dk_app_2`;',
  'CREATE DATABASE /*!32312 IF NOT EXISTS*/ `dk_app_2` /*!40100 DEFAULT CHARACTER SET latin1 */;',
  'CREATE DATABASE `dk_app`;',
  'CREATE DATABASEX `dk_app`;',
  'USE',
  'USE `dk_app`;',
  '/*!50001 VIEW `v1` AS select `p`.`id` AS `id` from `parent` `p` */;',
].join('\n');

const EXPECTED = DUMP.replace('CREATE DATABASE /*!32312 IF NOT EXISTS*/ `dk_app` /*!40100', 'CREATE DATABASE /*!32312 IF NOT EXISTS*/ `dk_app_stage` /*!40100')
  .replace('\nUSE `dk_app`;\nINSERT', '\nUSE `dk_app_stage`;\nINSERT')
  .replace('\nCREATE DATABASE `dk_app`;\n', '\nCREATE DATABASE `dk_app_stage`;\n')
  .replace(/\nUSE `dk_app`;\n\/\*!50001/, '\nUSE `dk_app_stage`;\n/*!50001');

test('rewrites only CREATE DATABASE and exact USE lines naming the database', async () => {
  const { output, rewrites } = await rename([Buffer.from(`${DUMP}\n`)]);
  assert.equal(output.toString('utf8'), `${EXPECTED}\n`);
  assert.deepEqual(rewrites, { createDatabase: 2, use: 2 });
});

test('gives the same bytes whatever the chunk boundaries: split at every byte, and one byte per chunk', async () => {
  const input = Buffer.from(DUMP); // no final newline: the last line comes out of _flush
  const expected = Buffer.from(EXPECTED);
  for (let at = 0; at <= input.length; at += 1) {
    const { output } = await rename([input.subarray(0, at), input.subarray(at)]);
    assert.ok(output.equals(expected), `split at byte ${at}`);
  }
  const bytes = [...input].map((byte) => Buffer.from([byte]));
  const { output, rewrites } = await rename(bytes);
  assert.ok(output.equals(expected));
  assert.deepEqual(rewrites, { createDatabase: 2, use: 2 });
});

test('a 5 MB INSERT line passes through byte-identical and is passed on before its end arrives', async () => {
  const row = "(1,'USE `dk_app`; CREATE DATABASE `dk_app`; ✓ tab\\there'),";
  const line = Buffer.from(`INSERT INTO \`t\` VALUES ${row.repeat(Math.ceil((5 * 1024 * 1024) / row.length))}(0,'');\n`);
  assert.ok(line.length > 5 * 1024 * 1024);
  const input = Buffer.concat([Buffer.from('USE `dk_app`;\n'), line, Buffer.from('USE `dk_app`;\n')]);
  const chunks: Buffer[] = [];
  for (let at = 0; at < input.length; at += 65_536) chunks.push(input.subarray(at, at + 65_536));
  const { output, rewrites } = await rename(chunks);
  assert.ok(output.equals(Buffer.concat([Buffer.from('USE `dk_app_stage`;\n'), line, Buffer.from('USE `dk_app_stage`;\n')])));
  assert.deepEqual(rewrites, { createDatabase: 0, use: 2 });

  // Bounded memory: the first 64 KiB of the line come out at once, nothing waits for the newline.
  const renamer = createMysqldumpRenamer('dk_app', 'dk_app_stage');
  const seen: Buffer[] = [];
  renamer.on('data', (chunk: Buffer) => seen.push(chunk));
  await new Promise<void>((resolve) => renamer.write(line.subarray(0, 65_536), () => resolve()));
  assert.equal(Buffer.concat(seen).length, 65_536);
  renamer.destroy();
});

test('a line that starts like CREATE DATABASE but never ends is passed on after 64 KiB', async () => {
  const long = Buffer.from(`CREATE DATABASE \`dk_app\` ${'x'.repeat(200_000)}`);
  const renamer = createMysqldumpRenamer('dk_app', 'dk_app_stage');
  const seen: Buffer[] = [];
  renamer.on('data', (chunk: Buffer) => seen.push(chunk));
  for (let at = 0; at < long.length; at += 10_000) {
    await new Promise<void>((resolve) => renamer.write(long.subarray(at, at + 10_000), () => resolve()));
  }
  const passed = Buffer.concat(seen);
  assert.ok(passed.length > 100_000, `only ${passed.length} bytes passed before the end`);
  assert.ok(long.subarray(0, passed.length).equals(passed), 'passed unchanged');
  renamer.destroy();
});

test('names with backquotes and non-ASCII characters, CRLF line ends', async () => {
  const from = 'we`ird ü';
  const to = 'we`ird ü_stage';
  assert.equal(quoteMysqlIdentifier(from), '`we``ird ü`');
  const input = 'CREATE DATABASE /*!32312 IF NOT EXISTS*/ `we``ird ü` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\r\nUSE `we``ird ü`;\r\nUSE `we`;\r\n';
  const { output, rewrites } = await rename([Buffer.from(input)], from, to);
  assert.equal(
    output.toString('utf8'),
    'CREATE DATABASE /*!32312 IF NOT EXISTS*/ `we``ird ü_stage` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\r\nUSE `we``ird ü_stage`;\r\nUSE `we`;\r\n',
  );
  assert.deepEqual(rewrites, { createDatabase: 1, use: 1 });
});

test('parseMysqlBatchRows undoes the escapes of mysql --batch', () => {
  assert.deepEqual(parseMysqlBatchRows('a\\tb\\\\c\\nd\tx\\0y\tNULL\t\n2\t\t\t\n'), [
    ['a\tb\\c\nd', 'x\0y', 'NULL', ''],
    ['2', '', '', ''],
  ]);
  assert.deepEqual(parseMysqlBatchRows(''), []);
  assert.deepEqual(parseMysqlBatchRows('\n'), [['']]);
});
