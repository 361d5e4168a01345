// Against a real MariaDB (lab host a): a schema with tables, a foreign key, ordered triggers, views on
// views, routines and an event is dumped with the migration's mysqldump flags, restored through the
// renamer under a staging name, and moved to its final name; every definition, row and behaviour must
// survive. Then a move that fails right after RENAME TABLE is finished by a second call, and a move onto
// an existing schema is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pipeline } from 'node:stream/promises';
import { ConflictError, DependencyError, type CommandSpec, type Host, type HostProcess, type RunResult } from '@deploykit/core';
import { SshHost } from '@deploykit/host';
import { startLab } from '@deploykit/testlab';
import { createMysqldumpRenamer, moveMariadbSchema, schemaExists, MOVE_JOURNAL_TABLE } from '@deploykit/deploy';

const SOURCE = 'dk_notes';
const STAGE = 'dk_notes_stage';
const COPY = 'dk_notes_copy';

const SETUP_SQL = `
CREATE DATABASE ${SOURCE} DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_swedish_ci;
USE ${SOURCE};
CREATE TABLE authors (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, bio TEXT) ENGINE=InnoDB;
CREATE TABLE notes (
  id INT AUTO_INCREMENT PRIMARY KEY,
  author_id INT NOT NULL,
  body LONGTEXT,
  words INT NOT NULL DEFAULT 0,
  CONSTRAINT notes_author FOREIGN KEY (author_id) REFERENCES authors (id)
) ENGINE=InnoDB;
CREATE TRIGGER notes_count BEFORE INSERT ON notes FOR EACH ROW
  SET NEW.words = CHAR_LENGTH(NEW.body) - CHAR_LENGTH(REPLACE(NEW.body, ' ', '')) + 1;
-- runs after notes_count (FOLLOWS): the order must survive the move
CREATE TRIGGER notes_scale BEFORE INSERT ON notes FOR EACH ROW FOLLOWS notes_count
  SET NEW.words = NEW.words * 10;
DELIMITER ;;
CREATE PROCEDURE add_note(IN author INT, IN text LONGTEXT)
BEGIN
  -- a comment the client must keep: «ü» 😀
  INSERT INTO notes (author_id, body) VALUES (author, text); /* and this one */
END;;
CREATE FUNCTION note_count(author INT) RETURNS INT READS SQL DATA
  RETURN (SELECT COUNT(*) FROM notes WHERE author_id = author) -- ends in a comment
;;
DELIMITER ;
CREATE VIEW note_counts AS
  SELECT a.id, a.name, COUNT(n.id) AS notes FROM authors a LEFT JOIN notes n ON n.author_id = a.id GROUP BY a.id, a.name;
-- a view on a view, named so that listing by name puts it first
CREATE VIEW busy_authors AS SELECT name, notes FROM note_counts WHERE notes > 1;
-- a view calling a stored function
CREATE VIEW author_stats AS SELECT id, note_count(id) AS n, 'Zoë' AS label FROM authors;
CREATE EVENT purge_empty ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 03:00:00' DISABLE COMMENT 'nightly ✓' DO DELETE FROM notes WHERE body = '';
-- objects made in another creation context (client charset, sql_mode, time zone), which the move must set again
SET NAMES latin1;
SET SESSION sql_mode = 'ANSI_QUOTES,STRICT_ALL_TABLES';
SET SESSION time_zone = '+02:00';
CREATE PROCEDURE "ansi_words"(IN author INT) SELECT SUM("words") AS "total" FROM "notes" WHERE "author_id" = author;
CREATE EVENT "tz_event" ON SCHEDULE EVERY 1 HOUR STARTS '2030-06-01 12:00:00' DISABLE DO DELETE FROM "notes" WHERE "id" < 0;
SET NAMES utf8mb4;
SET SESSION sql_mode = DEFAULT;
SET SESSION time_zone = DEFAULT;
INSERT INTO authors VALUES (1, 'Zoë ✓', 'tab\\there\\nnewline'), (2, 'Ärger 😀', NULL), (3, 'nobody', '');
INSERT INTO notes (author_id, body) VALUES (1, 'one two three'), (1, 'tab\\tand\\nnewline and 😀'), (2, 'x'), (2, REPEAT('a long line ', 100000));
`;

/** Runs SQL through the admin client on the host; returns stdout or throws with stderr. */
async function sql(host: Host, statements: string): Promise<string> {
  const result = await host.run({ argv: ['mysql', '--default-character-set=utf8mb4', '--batch', '--skip-column-names', '--comments'], input: statements });
  if (result.exitCode !== 0) throw new Error(`mysql exit ${result.exitCode}: ${result.stderr.trim()}\n${statements.slice(0, 500)}`);
  return result.stdout;
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}

/** Every definition, row and context of a schema, with the schema's own name replaced by SCHEMA. */
async function fingerprint(host: Host, schema: string): Promise<Record<string, string>> {
  const literal = `'${schema}'`;
  const listing = lines(
    await sql(
      host,
      `SELECT 'table', TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${literal} AND TABLE_TYPE = 'BASE TABLE'
       UNION ALL SELECT 'view', TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ${literal}
       UNION ALL SELECT 'trigger', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ${literal}
       UNION ALL SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${literal}
       UNION ALL SELECT 'event', EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ${literal}
       ORDER BY 1, 2;\n`,
    ),
  );
  const queries: [key: string, query: string][] = [
    ['schema', `SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${literal}`],
    ['order of triggers', `SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ${literal} ORDER BY 1`],
    ['foreign keys', `SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME, UNIQUE_CONSTRAINT_SCHEMA = ${literal} FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ${literal}`],
  ];
  for (const line of listing) {
    const [kind, name] = line.split('\t') as [string, string];
    const object = `\`${schema}\`.\`${name}\``;
    if (kind === 'table') {
      queries.push([`table ${name}`, `SHOW CREATE TABLE ${object}`], [`rows ${name}`, `SELECT * FROM ${object} ORDER BY 1`], [`checksum ${name}`, `CHECKSUM TABLE ${object} EXTENDED`]);
    } else if (kind === 'view') {
      queries.push([`view ${name}`, `SHOW CREATE VIEW ${object}`], [`view rows ${name}`, `SELECT * FROM ${object} ORDER BY 1`]);
    } else {
      queries.push([`${kind.toLowerCase()} ${name}`, `SHOW CREATE ${kind} ${object}`]);
    }
  }
  const result: Record<string, string> = {};
  for (const [key, query] of queries) {
    let text = await sql(host, `${query};\n`);
    // SHOW CREATE TRIGGER ends with Created, the creation time: a re-created trigger has its own.
    if (key.startsWith('trigger ')) text = text.replace(/\t[^\t]*\n$/, '\n');
    result[key] = text.split(`\`${schema}\``).join('`SCHEMA`').split(`${schema}.`).join('SCHEMA.');
  }
  return result;
}

/** Streams `mysqldump` (the migration's flags) of `database` through the renamer into `mysql` on the same host. */
async function dumpInto(host: Host, database: string, target: string): Promise<{ createDatabase: number; use: number }> {
  const dump = host.spawn({ argv: ['mysqldump', '--single-transaction', '--routines', '--triggers', '--events', '--databases', database] });
  // --comments: without it the client strips comments out of routine bodies before sending them.
  const restore = host.spawn({ argv: ['mysql', '--batch', '--comments'], stdin: 'pipe' });
  const renamer = createMysqldumpRenamer(database, target);
  await pipeline(dump.stdout, renamer, restore.stdin as NonNullable<HostProcess['stdin']>);
  const [dumped, restored] = await Promise.all([dump.wait(), restore.wait()]);
  assert.equal(dumped.exitCode, 0, `mysqldump: ${dumped.stderr}`);
  assert.equal(restored.exitCode, 0, `mysql: ${restored.stderr}`);
  return renamer.rewrites;
}

/** A Host that fails the first command whose label starts with `label`, as if mysql had lost its connection. */
function failOnce(host: Host, label: string): Host {
  let failed = false;
  return {
    name: host.name,
    kind: host.kind,
    spawn: (spec: CommandSpec) => host.spawn(spec),
    close: () => host.close(),
    async run(spec: CommandSpec): Promise<RunResult> {
      if (!failed && spec.label?.startsWith(label)) {
        failed = true;
        return { argv: spec.argv, exitCode: 1, signal: null, stdout: '', stderr: 'ERROR 2013 (HY000): Lost connection to server during query (injected)', durationMs: 0, timedOut: false };
      }
      return host.run(spec);
    },
  };
}

test('MariaDB staging restore: dump through the renamer, move to the final name, resume after a failure, refuse an existing target', { timeout: 300_000 }, async (t) => {
  await using lab = await startLab({ hosts: 1, mariadb: true, postgres: false });
  const host = new SshHost('a', { destination: 'a', sshConfig: lab.sshConfigPath });
  t.after(() => host.close());

  await sql(host, SETUP_SQL);
  const original = await fingerprint(host, SOURCE);
  assert.equal(original.schema, 'utf8mb4\tutf8mb4_swedish_ci\n');
  assert.match(original['rows authors'] ?? '', /Zoë ✓\ttab\\there\\nnewline\n2\tÄrger 😀\tNULL/);
  assert.match(original['procedure add_note'] ?? '', /-- a comment the client must keep: «ü» 😀/);
  assert.match(original['function note_count'] ?? '', /author_id = author\) -- ends in a comment\t/);
  assert.match(original['procedure ansi_words'] ?? '', /^ansi_words\t[^\t]*ANSI_QUOTES[^\t]*\t.*\tlatin1\tlatin1_swedish_ci\t/);
  assert.match(original['event tz_event'] ?? '', /\t\+02:00\t.*STARTS '2030-06-01 12:00:00'/);

  await t.test('restore under the staging name: nothing appears under the final name', async () => {
    const rewrites = await dumpInto(host, SOURCE, STAGE);
    // mysqldump prints USE before the tables and again before the final views.
    assert.deepEqual(rewrites, { createDatabase: 1, use: 2 });
    assert.deepEqual(await fingerprint(host, STAGE), original);
    // The source stands for the database on the other host: the target has no database of that name yet.
    await sql(host, `DROP DATABASE ${SOURCE};\n`);
  });

  await t.test('move the staging schema to the final name', async () => {
    const report = await moveMariadbSchema(host, STAGE, SOURCE);
    assert.deepEqual(report, { tables: 2, views: 3, triggers: 2, routines: 3, events: 2 });
    assert.equal(await schemaExists(host, STAGE), false);
    assert.deepEqual(await fingerprint(host, SOURCE), original);
  });

  await t.test('the moved objects work: triggers in order, routines, views, foreign key', async () => {
    await sql(host, `USE ${SOURCE}; CALL add_note(3, 'a b c d');\n`);
    assert.equal(await sql(host, `SELECT words, ${SOURCE}.note_count(3) FROM ${SOURCE}.notes WHERE author_id = 3;\n`), '40\t1\n');
    assert.equal(await sql(host, `CALL ${SOURCE}.ansi_words(1);\n`), '60\n');
    assert.equal(await sql(host, `SELECT name, notes FROM ${SOURCE}.busy_authors ORDER BY name;\n`), 'Zoë ✓\t2\nÄrger 😀\t2\n');
    assert.equal(await sql(host, `SELECT id, n, label FROM ${SOURCE}.author_stats ORDER BY id;\n`), '1\t2\tZoë\n2\t2\tZoë\n3\t1\tZoë\n');
    const orphan = await host.run({ argv: ['mysql', '--batch'], input: `INSERT INTO ${SOURCE}.notes (author_id, body) VALUES (99, 'x');\n` });
    assert.notEqual(orphan.exitCode, 0);
    assert.match(orphan.stderr, /ERROR 1452 .*foreign key constraint fails/);
  });

  await t.test('a move that fails right after RENAME TABLE is finished by calling it again', async () => {
    const before = await fingerprint(host, SOURCE);
    assert.deepEqual(await dumpInto(host, SOURCE, STAGE), { createDatabase: 1, use: 2 });
    const error = await moveMariadbSchema(failOnce(host, 'creating the triggers'), STAGE, COPY).then(
      () => assert.fail('the move should have failed'),
      (thrown: unknown) => thrown,
    );
    assert.ok(error instanceof DependencyError, String(error));
    assert.equal(error.code, 'DB_SCHEMA_MOVE_INCOMPLETE');
    assert.match(error.message, /stopped while creating the triggers: .*injected/);
    assert.match(error.message, /Done: 2 triggers dropped from `dk_notes_stage`, 2 events dropped from `dk_notes_stage`, 2 tables renamed into `dk_notes_copy`\. Not done: creating the triggers, /);
    assert.match(error.hint ?? '', /Fix the cause, then run the same move again: it resumes from `dk_notes_stage`\.`__deploykit_schema_move`/);
    // Half-way: the tables are in the copy without their triggers, which only the journal still holds.
    assert.equal(await sql(host, `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${COPY}';\n`), '2\n');
    assert.equal(await sql(host, `SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN ('${COPY}', '${STAGE}');\n`), '0\n');
    assert.equal(await sql(host, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${STAGE}' AND TABLE_TYPE = 'BASE TABLE';\n`), `${MOVE_JOURNAL_TABLE}\n`);

    const report = await moveMariadbSchema(host, STAGE, COPY);
    assert.deepEqual(report, { tables: 2, views: 3, triggers: 2, routines: 3, events: 2 });
    assert.equal(await schemaExists(host, STAGE), false);
    assert.deepEqual(await fingerprint(host, COPY), before);
  });

  await t.test('refuses to move into an existing schema and changes nothing', async () => {
    const before = await fingerprint(host, SOURCE);
    await assert.rejects(moveMariadbSchema(host, SOURCE, COPY), (error: unknown) => error instanceof ConflictError && error.code === 'DB_SCHEMA_EXISTS');
    assert.deepEqual(await fingerprint(host, SOURCE), before);
    await assert.rejects(moveMariadbSchema(host, 'dk_nothing_here', 'dk_nothing_there'), (error: unknown) => error instanceof DependencyError && error.code === 'DB_SCHEMA_MOVE_NO_SOURCE');
    await sql(host, `DROP DATABASE ${SOURCE}; DROP DATABASE ${COPY};\n`);
  });
});
