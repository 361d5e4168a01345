// Restoring a MariaDB dump under a staging schema name, then moving it to its final name.
//
// A migration must not make a database visible before its stream checked out, so the dump is restored
// as `<name>_stage`-like schema (createMysqldumpRenamer) and moved afterwards (moveMariadbSchema).
// MariaDB cannot rename a database: moving means RENAME TABLE for the tables and re-creating every
// other object from what SHOW CREATE returns, the way mysqldump does it.
import { Transform, type TransformCallback } from 'node:stream';
import type { Host } from '@deploykit/core';
import { ConfigError, ConflictError, DependencyError, DeployError } from '@deploykit/core';
import { quoteMysqlIdentifier } from './identifiers.js';

// ---------------------------------------------------------------------------------------------------
// The stream filter

const NEWLINE = 0x0a;
const CREATE_DATABASE_PREFIX = Buffer.from('CREATE DATABASE ', 'latin1');
const USE_PREFIX = Buffer.from('USE `', 'latin1');
const HEAD_BYTES = Math.max(CREATE_DATABASE_PREFIX.length, USE_PREFIX.length);
/** Longest line kept whole to be rewritten; mysqldump's CREATE DATABASE and USE lines are far shorter. */
const MAX_CANDIDATE_LINE = 64 * 1024;

/** How many statements naming the database a MysqldumpRenamer rewrote so far. */
export interface MysqldumpRewrites {
  createDatabase: number;
  use: number;
}

type LineState = 'start' | 'candidate' | 'pass';

/**
 * Line filter for mysqldump output that renames one database in `CREATE DATABASE` and `USE` lines and
 * passes every other byte through unchanged; see createMysqldumpRenamer.
 */
export class MysqldumpRenamer extends Transform {
  /** Rewrites done so far: callers check them after the stream ended (a dump of `from` has one CREATE DATABASE). */
  readonly rewrites: MysqldumpRewrites = { createDatabase: 0, use: 0 };
  // Line texts are handled as latin1 strings: one char per byte, so the bytes round-trip exactly.
  readonly #fromQuoted: string;
  readonly #toQuoted: string;
  #state: LineState = 'start';
  #kept: Buffer[] = [];
  #keptLength = 0;

  constructor(from: string, to: string) {
    super();
    this.#fromQuoted = Buffer.from(quoteMysqlIdentifier(from), 'utf8').toString('latin1');
    this.#toQuoted = Buffer.from(quoteMysqlIdentifier(to), 'utf8').toString('latin1');
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let position = 0;
    while (position < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, position);
      const end = newline === -1 ? chunk.length : newline + 1;
      const piece = chunk.subarray(position, end);
      position = end;
      if (this.#state === 'pass') {
        this.push(piece);
      } else {
        this.#kept.push(piece);
        this.#keptLength += piece.length;
        if (this.#state === 'start') this.#state = this.#classifyHead();
        if (newline !== -1) {
          this.#emitKept();
        } else if (this.#state === 'pass' || this.#keptLength > MAX_CANDIDATE_LINE) {
          // Not a line we rewrite (or an absurdly long one): pass what we have and the rest of the line as it comes.
          this.#state = 'pass';
          this.#emitKept();
          continue;
        }
      }
      if (newline !== -1) this.#state = 'start';
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.#keptLength > 0) this.#emitKept();
    callback();
  }

  /** Looks at the first bytes of the kept line: can it still start with one of the prefixes we rewrite? */
  #classifyHead(): LineState {
    const head = Buffer.concat(this.#kept, Math.min(this.#keptLength, HEAD_BYTES));
    const match = (prefix: Buffer): 'full' | 'partial' | 'no' => {
      const length = Math.min(head.length, prefix.length);
      if (!head.subarray(0, length).equals(prefix.subarray(0, length))) return 'no';
      return length === prefix.length ? 'full' : 'partial';
    };
    const create = match(CREATE_DATABASE_PREFIX);
    const use = match(USE_PREFIX);
    if (create === 'full' || use === 'full') return 'candidate';
    return create === 'no' && use === 'no' ? 'pass' : 'start';
  }

  #emitKept(): void {
    const kept = this.#kept;
    this.#kept = [];
    this.#keptLength = 0;
    if (this.#state === 'pass' || kept.length === 0) {
      for (const piece of kept) this.push(piece);
      return;
    }
    this.push(this.#rewriteLine(Buffer.concat(kept)));
  }

  #rewriteLine(line: Buffer): Buffer {
    const text = line.toString('latin1');
    const ending = /\r?\n$/.exec(text)?.[0] ?? '';
    const body = text.slice(0, text.length - ending.length);
    if (body === `USE ${this.#fromQuoted};`) {
      this.rewrites.use += 1;
      return Buffer.from(`USE ${this.#toQuoted};${ending}`, 'latin1');
    }
    // mysqldump prints `CREATE DATABASE /*!32312 IF NOT EXISTS*/ `name` /*!40100 DEFAULT CHARACTER SET ... */;`
    const head = /^CREATE DATABASE (?:\/\*!32312 IF NOT EXISTS\*\/ |IF NOT EXISTS )?/.exec(body)?.[0];
    if (head !== undefined && body.startsWith(this.#fromQuoted, head.length)) {
      const rest = body.slice(head.length + this.#fromQuoted.length);
      if (rest === '' || rest.startsWith(' ') || rest.startsWith(';')) {
        this.rewrites.createDatabase += 1;
        return Buffer.from(`${head}${this.#toQuoted}${rest}${ending}`, 'latin1');
      }
    }
    return line;
  }
}

/**
 * Streaming filter for `mysqldump --databases from` output that makes it restore into `to`: rewrites
 * only lines starting with `CREATE DATABASE` that name `from` and lines exactly `USE \`from\`;`; all
 * other bytes pass unchanged with bounded memory. Check `.rewrites` after the end.
 */
export function createMysqldumpRenamer(from: string, to: string): MysqldumpRenamer {
  return new MysqldumpRenamer(from, to);
}

// ---------------------------------------------------------------------------------------------------
// Talking to MariaDB

/**
 * The admin client (socket from ~/.my.cnf or MYSQL_UNIX_PORT), SQL always on stdin. Not --raw: without
 * it mysql escapes exactly \0, \t, \n and \\ in values, so multi-line CREATE statements stay one row.
 * --comments keeps comments inside routine bodies (the client strips them by default), --binary-mode
 * keeps \r\n inside them.
 */
export const MYSQL_ARGV = ['mysql', '--default-character-set=utf8mb4', '--batch', '--skip-column-names', '--comments', '--binary-mode'];
const DEFAULT_TIMEOUT_MS = 600_000;

async function runSql(host: Host, sql: string, what: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string> {
  const result = await host.run({ argv: MYSQL_ARGV, input: sql, timeoutMs, label: what });
  if (result.exitCode !== 0) {
    const how = result.timedOut ? `timed out after ${Math.round(timeoutMs / 1000)} s` : `mysql exit ${result.exitCode}`;
    throw new DependencyError('MARIADB_SQL_FAILED', `${what} failed on ${host.name} (${how}): ${result.stderr.trim().slice(-600)}`, {
      hint: 'Check that MariaDB runs on the host and that mysql reaches it as admin (socket in ~/.my.cnf or MYSQL_UNIX_PORT).',
    });
  }
  return result.stdout;
}

/** Splits mysql --batch output (not --raw) into rows of fields, undoing mysql's \0 \t \n \\ escapes. */
export function parseMysqlBatchRows(text: string): string[][] {
  const unescape = (field: string): string =>
    field.replace(/\\(.)/gs, (_match, char: string) => ({ '0': '\0', t: '\t', n: '\n', '\\': '\\' })[char] ?? char);
  return text
    .split('\n')
    .filter((line, index, lines) => !(index === lines.length - 1 && line === ''))
    .map((line) => line.split('\t').map(unescape));
}

/** A string literal independent of sql_mode and connection charset; compares as bytes (case-sensitively). */
function bytesLiteral(value: string): string {
  return `X'${Buffer.from(value, 'utf8').toString('hex')}'`;
}

/** True when schema `name` exists on the host's MariaDB (exact, case-sensitive name). */
export async function schemaExists(host: Host, name: string): Promise<boolean> {
  const sql = `SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${bytesLiteral(name)};\n`;
  return (await runSql(host, sql, `looking for schema ${quoteMysqlIdentifier(name)}`)).trim() === '1';
}

// ---------------------------------------------------------------------------------------------------
// What a schema holds

type ObjectKind = 'table' | 'trigger' | 'procedure' | 'function' | 'view' | 'event';

/** One object of the schema being moved, as the move journal keeps it. */
interface SchemaObject {
  readonly kind: ObjectKind;
  readonly name: string;
  /** CREATE statement run in the new schema (empty for tables: they move with RENAME TABLE). */
  readonly statement: string;
  /** Creation context SHOW CREATE reported, set before the statement as mysqldump does. */
  readonly sqlMode: string;
  readonly characterSetClient: string;
  readonly collationConnection: string;
  readonly timeZone: string;
}

/** Everything a move needs, kept in the journal table so that a second run can finish the first one. */
interface MovePlan {
  readonly from: string;
  readonly to: string;
  readonly createSchema: string;
  readonly objects: readonly SchemaObject[];
}

/** Names of what a schema holds now, as `kind name` keys (routines as procedure/function). */
async function listObjects(host: Host, schema: string): Promise<Set<string>> {
  const name = bytesLiteral(schema);
  const sql = `SELECT IF(TABLE_TYPE = 'VIEW', 'view', 'table'), TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${name}
UNION ALL SELECT 'trigger', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ${name}
UNION ALL SELECT LOWER(ROUTINE_TYPE), ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${name}
UNION ALL SELECT 'event', EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ${name};\n`;
  const rows = parseMysqlBatchRows(await runSql(host, sql, `listing the objects of ${quoteMysqlIdentifier(schema)}`));
  return new Set(rows.map(([kind, object]) => objectKey(kind ?? '', object ?? '')));
}

function objectKey(kind: string, name: string): string {
  return `${kind} ${name}`;
}

/** Name of the journal table a move keeps in the schema it empties (never moved, dropped with it). */
export const MOVE_JOURNAL_TABLE = '__deploykit_schema_move';

/** Replaces the backquoted `from`. qualifier SHOW CREATE leaves in definitions (functions called as db.f()). */
function requalify(statement: string, from: string, to: string): string {
  return statement.split(`${quoteMysqlIdentifier(from)}.`).join(`${quoteMysqlIdentifier(to)}.`);
}

/** Where SHOW CREATE puts what we keep, per kind (0-based columns; collation_connection follows character_set_client). */
interface ShowCreateLayout {
  readonly keyword: string;
  readonly columns: number;
  readonly statement: number;
  readonly sqlMode?: number;
  readonly timeZone?: number;
  readonly charset: number;
}

const SHOW_CREATE: Readonly<Record<Exclude<ObjectKind, 'table'>, ShowCreateLayout>> = {
  // SHOW CREATE VIEW: View, Create View, character_set_client, collation_connection
  view: { keyword: 'VIEW', columns: 4, statement: 1, charset: 2 },
  // SHOW CREATE TRIGGER: Trigger, sql_mode, SQL Original Statement, character_set_client, collation_connection, Database Collation, Created
  trigger: { keyword: 'TRIGGER', columns: 7, statement: 2, sqlMode: 1, charset: 3 },
  // SHOW CREATE PROCEDURE/FUNCTION: name, sql_mode, Create ..., character_set_client, collation_connection, Database Collation
  procedure: { keyword: 'PROCEDURE', columns: 6, statement: 2, sqlMode: 1, charset: 3 },
  function: { keyword: 'FUNCTION', columns: 6, statement: 2, sqlMode: 1, charset: 3 },
  // SHOW CREATE EVENT: Event, sql_mode, time_zone, Create Event, character_set_client, collation_connection, Database Collation
  event: { keyword: 'EVENT', columns: 7, statement: 3, sqlMode: 1, timeZone: 2, charset: 4 },
};

function layoutOf(object: { kind: ObjectKind }): ShowCreateLayout {
  if (object.kind === 'table') throw new Error('tables move with RENAME TABLE, they have no SHOW CREATE layout here');
  return SHOW_CREATE[object.kind];
}

/** Lists the objects of `from` (but the journal) by kind; triggers by table and action order, so re-creating keeps their order. */
async function listForCapture(host: Host, from: string): Promise<{ kind: ObjectKind; name: string }[]> {
  const name = bytesLiteral(from);
  const sql = `SELECT 1 AS grp, IF(TABLE_TYPE = 'VIEW', 'view', 'table') AS kind, TABLE_NAME AS name, '' AS parent, 0 AS position
  FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${name} AND TABLE_NAME <> ${bytesLiteral(MOVE_JOURNAL_TABLE)}
UNION ALL SELECT 2, 'trigger', TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_ORDER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ${name}
UNION ALL SELECT 3, LOWER(ROUTINE_TYPE), ROUTINE_NAME, '', 0 FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${name}
UNION ALL SELECT 4, 'event', EVENT_NAME, '', 0 FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ${name}
ORDER BY grp, parent, position, name;\n`;
  const rows = parseMysqlBatchRows(await runSql(host, sql, `listing the objects of ${quoteMysqlIdentifier(from)}`));
  return rows.map(([, kind = '', objectName = '']) => {
    if (kind === 'package' || kind === 'package body') {
      throw new DependencyError('DB_SCHEMA_MOVE_UNSUPPORTED', `schema ${quoteMysqlIdentifier(from)} holds ${kind} ${objectName}: moving packages is not supported`, {
        hint: 'Move the package by hand (SHOW CREATE PACKAGE), or drop it from the source database before migrating.',
      });
    }
    return { kind: kind as ObjectKind, name: objectName };
  });
}

/** Reads SHOW CREATE of every object of `from` (results as binary: the stored bytes, as mysqldump reads them). */
async function captureObjects(host: Host, from: string, to: string): Promise<SchemaObject[]> {
  const listed = await listForCapture(host, from);
  const shown = listed.filter((object) => object.kind !== 'table');
  const fromQuoted = quoteMysqlIdentifier(from);
  const statements = shown.map((object) => `SHOW CREATE ${layoutOf(object).keyword} ${fromQuoted}.${quoteMysqlIdentifier(object.name)};`);
  // With `from` as current database, SHOW CREATE VIEW leaves table names unqualified.
  const sql = `USE ${fromQuoted};\nSET SESSION character_set_results = binary;\n${statements.join('\n')}\n`;
  const rows = statements.length === 0 ? [] : parseMysqlBatchRows(await runSql(host, sql, `reading the definitions in ${fromQuoted}`));
  if (rows.length !== shown.length) {
    throw new DependencyError('DB_SCHEMA_MOVE_CAPTURE', `reading the definitions in ${fromQuoted} on ${host.name} returned ${rows.length} rows for ${shown.length} objects`, {
      hint: 'Something changed the schema while it was read; run the move again.',
    });
  }
  const captured = listed
    .filter((object) => object.kind === 'table')
    .map((object): SchemaObject => ({ ...object, statement: '', sqlMode: '', characterSetClient: '', collationConnection: '', timeZone: '' }));
  shown.forEach((object, index) => {
    const layout = layoutOf(object);
    const row = rows[index] ?? [];
    const statement = row[layout.statement] ?? '';
    if (row.length !== layout.columns || statement === 'NULL') {
      throw new DependencyError('DB_SCHEMA_MOVE_CAPTURE', `SHOW CREATE ${layout.keyword} ${quoteMysqlIdentifier(object.name)} in ${fromQuoted} on ${host.name} gave no definition`, {
        hint: 'The admin account needs to see the definitions (SHOW CREATE ROUTINE / SELECT on mysql.proc); check its grants.',
      });
    }
    // Host output is text: a definition whose stored bytes are not UTF-8 cannot be replayed byte for byte.
    if (statement.includes('\uFFFD')) {
      throw new DependencyError('DB_SCHEMA_MOVE_ENCODING', `the definition of ${object.kind} ${quoteMysqlIdentifier(object.name)} in ${fromQuoted} on ${host.name} is not valid UTF-8`, {
        hint: 'Re-create that object from a UTF-8 client (mysql --default-character-set=utf8mb4) in the source database, then migrate again.',
      });
    }
    captured.push({
      kind: object.kind,
      name: object.name,
      statement: requalify(statement, from, to),
      sqlMode: layout.sqlMode === undefined ? 'NO_AUTO_VALUE_ON_ZERO' : (row[layout.sqlMode] ?? ''),
      characterSetClient: row[layout.charset] ?? '',
      collationConnection: row[layout.charset + 1] ?? '',
      timeZone: layout.timeZone === undefined ? '' : (row[layout.timeZone] ?? ''),
    });
  });
  return orderViews(captured);
}

/** Puts each view after the views its definition names (by backquoted name); a cycle keeps the listed order. */
function orderViews(objects: SchemaObject[]): SchemaObject[] {
  const views = objects.filter((object) => object.kind === 'view');
  const ordered: SchemaObject[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (view: SchemaObject): void => {
    if (state.has(view.name)) return;
    state.set(view.name, 'visiting');
    const header = `VIEW ${quoteMysqlIdentifier(view.name)} AS `;
    const body = view.statement.includes(header) ? view.statement.slice(view.statement.indexOf(header) + header.length) : view.statement;
    for (const other of views) {
      if (other !== view && body.includes(quoteMysqlIdentifier(other.name))) visit(other);
    }
    state.set(view.name, 'done');
    ordered.push(view);
  };
  views.forEach(visit);
  return [...objects.filter((object) => object.kind !== 'view'), ...ordered];
}

async function readSchemaDefaults(host: Host, schema: string): Promise<{ charset: string; collation: string; comment: string }> {
  const sql = `SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME, SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${bytesLiteral(schema)};\n`;
  const [row] = parseMysqlBatchRows(await runSql(host, sql, `reading the defaults of ${quoteMysqlIdentifier(schema)}`));
  return { charset: row?.[0] ?? '', collation: row?.[1] ?? '', comment: row?.[2] ?? '' };
}

// ---------------------------------------------------------------------------------------------------
// The journal: the plan, stored in the schema being emptied before anything changes

const JOURNAL_COLUMNS = ['kind', 'name', 'statement', 'sql_mode', 'character_set_client', 'collation_connection', 'time_zone'] as const;

function buildJournalSql(plan: MovePlan): string {
  const table = `${quoteMysqlIdentifier(plan.from)}.${quoteMysqlIdentifier(MOVE_JOURNAL_TABLE)}`;
  const rows: string[][] = [
    ['schema', plan.to, plan.createSchema, '', '', '', ''],
    ...plan.objects.map((object) => [object.kind, object.name, object.statement, object.sqlMode, object.characterSetClient, object.collationConnection, object.timeZone]),
  ];
  const inserts = rows.map((row, index) => `INSERT INTO ${table} VALUES (${index}, ${row.map(bytesLiteral).join(', ')});`);
  return `CREATE TABLE ${table} (seq INT NOT NULL PRIMARY KEY, ${JOURNAL_COLUMNS.map((column) => `${column} LONGBLOB NOT NULL`).join(', ')});\n${inserts.join('\n')}\n`;
}

async function readJournal(host: Host, from: string): Promise<MovePlan> {
  const table = `${quoteMysqlIdentifier(from)}.${quoteMysqlIdentifier(MOVE_JOURNAL_TABLE)}`;
  const sql = `SELECT ${JOURNAL_COLUMNS.map((column) => `HEX(${column})`).join(', ')} FROM ${table} ORDER BY seq;\n`;
  const rows = parseMysqlBatchRows(await runSql(host, sql, `reading the move journal ${table}`)).map((row) => row.map((hex) => Buffer.from(hex, 'hex').toString('utf8')));
  const [header, ...objects] = rows;
  if (header?.[0] !== 'schema') {
    throw new DependencyError('DB_SCHEMA_MOVE_JOURNAL', `${table} on ${host.name} is not a move journal deploykit can read`, {
      hint: `Inspect it; if no move of ${quoteMysqlIdentifier(from)} is under way, drop that table and run again.`,
    });
  }
  return {
    from,
    to: header[1] ?? '',
    createSchema: header[2] ?? '',
    objects: objects.map(([kind = '', name = '', statement = '', sqlMode = '', characterSetClient = '', collationConnection = '', timeZone = '']) => ({
      kind: kind as ObjectKind,
      name,
      statement,
      sqlMode,
      characterSetClient,
      collationConnection,
      timeZone,
    })),
  };
}

// ---------------------------------------------------------------------------------------------------
// Replaying definitions, as mysqldump writes them

const CONTEXT_VALUE = /^[A-Za-z0-9_,+\-:/]*$/;

/** Creation context values go into SQL as plain literals: refuse anything that is not a name list. */
function contextLiteral(value: string, what: string): string {
  if (!CONTEXT_VALUE.test(value)) {
    throw new DependencyError('DB_SCHEMA_MOVE_CONTEXT', `unexpected ${what} ${JSON.stringify(value)} in a definition to move`, {
      hint: 'This is likely a bug in deploykit; report it with the output of SHOW CREATE for that object.',
    });
  }
  return `'${value}'`;
}

function chooseDelimiter(statement: string): string {
  for (let index = 0; ; index += 1) {
    const delimiter = index === 0 ? ';;' : `$$deploykit${index}$$`;
    if (!statement.includes(delimiter)) return delimiter;
  }
}

/** SQL re-creating one object in the current database with its own sql_mode, charsets and time zone. */
function buildReplaySql(object: SchemaObject): string {
  const delimiter = chooseDelimiter(object.statement);
  const lines = [
    `SET SESSION sql_mode = ${contextLiteral(object.sqlMode, 'sql_mode')};`,
    `SET SESSION character_set_client = ${contextLiteral(object.characterSetClient, 'character set')};`,
    `SET SESSION character_set_results = ${contextLiteral(object.characterSetClient, 'character set')};`,
    `SET SESSION collation_connection = ${contextLiteral(object.collationConnection, 'collation')};`,
  ];
  if (object.timeZone !== '') lines.push(`SET SESSION time_zone = ${contextLiteral(object.timeZone, 'time zone')};`);
  // The delimiter on a line of its own, as mysqldump writes it: a body may end in a -- comment.
  lines.push(`DELIMITER ${delimiter}`, object.statement, delimiter, 'DELIMITER ;', 'SET NAMES utf8mb4;');
  return `${lines.join('\n')}\n`;
}


// ---------------------------------------------------------------------------------------------------
// The move

/** What moveMariadbSchema moved (counts of the whole schema, also when a second run finished the job). */
export interface MoveReport {
  tables: number;
  views: number;
  triggers: number;
  /** Stored procedures and functions. */
  routines: number;
  events: number;
}

/** Options of moveMariadbSchema. */
export interface MoveMariadbSchemaOptions {
  /** Longest one mysql call may take, in milliseconds (default 10 minutes). */
  timeoutMs?: number;
  /** Seconds RENAME TABLE waits for metadata locks before it fails (default 60; MariaDB's own is a day). */
  lockWaitSeconds?: number;
}

interface MoveStep {
  readonly done: string;
  readonly pending: string;
  run(): Promise<void>;
}

function countObjects(plan: MovePlan): MoveReport {
  const count = (...kinds: ObjectKind[]): number => plan.objects.filter((object) => kinds.includes(object.kind)).length;
  return { tables: count('table'), views: count('view'), triggers: count('trigger'), routines: count('procedure', 'function'), events: count('event') };
}

/** Whether `from` and `to` exist and whether `from` holds a move journal, in one round trip. */
async function readMoveState(host: Host, from: string, to: string): Promise<{ fromExists: boolean; toExists: boolean; journal: boolean }> {
  const schema = (name: string): string => `(SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${bytesLiteral(name)})`;
  const journal = `(SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${bytesLiteral(from)} AND TABLE_NAME = ${bytesLiteral(MOVE_JOURNAL_TABLE)})`;
  const [row] = parseMysqlBatchRows(await runSql(host, `SELECT ${schema(from)}, ${schema(to)}, ${journal};\n`, `looking at schemas ${quoteMysqlIdentifier(from)} and ${quoteMysqlIdentifier(to)}`));
  return { fromExists: row?.[0] === '1', toExists: row?.[1] === '1', journal: row?.[2] === '1' };
}

/** Loads the journal of an unfinished move, or captures `from`, creates `to` and writes the journal. */
async function startOrResume(host: Host, from: string, to: string): Promise<MovePlan> {
  const fromQuoted = quoteMysqlIdentifier(from);
  const toQuoted = quoteMysqlIdentifier(to);
  const state = await readMoveState(host, from, to);
  if (!state.fromExists) {
    throw new DependencyError(
      'DB_SCHEMA_MOVE_NO_SOURCE',
      `schema ${fromQuoted} does not exist on ${host.name}${state.toExists ? ` (${toQuoted} does: an earlier move may have finished)` : ''}`,
      { hint: state.toExists ? `Check ${toQuoted}; nothing is left to move.` : `Restore the database as ${fromQuoted} first.` },
    );
  }
  if (state.journal) {
    const journal = await readJournal(host, from);
    if (journal.to !== to) {
      throw new ConflictError('DB_SCHEMA_MOVE_OTHER_TARGET', `${fromQuoted} on ${host.name} holds an unfinished move to ${quoteMysqlIdentifier(journal.to)}, not to ${toQuoted}`, {
        hint: `Finish that move (same target name), or drop ${fromQuoted}.${quoteMysqlIdentifier(MOVE_JOURNAL_TABLE)} if it is stale.`,
      });
    }
    // `to` missing after the journal was written means someone dropped it: create it again.
    if (!state.toExists) await runSql(host, `${journal.createSchema}\n`, `creating ${toQuoted}`);
    return journal;
  }
  if (state.toExists) {
    throw new ConflictError('DB_SCHEMA_EXISTS', `schema ${toQuoted} already exists on ${host.name}: refusing to move ${fromQuoted} into it`, {
      hint: `Drop ${toQuoted} if it is left over from an earlier attempt (and holds nothing you need), or choose another name.`,
    });
  }
  const defaults = await readSchemaDefaults(host, from);
  const comment = defaults.comment === '' ? '' : ` COMMENT = ${bytesLiteral(defaults.comment)}`;
  const charset = contextLiteral(defaults.charset, 'character set');
  const createSchema = `CREATE DATABASE ${toQuoted} CHARACTER SET = ${charset} COLLATE = ${contextLiteral(defaults.collation, 'collation')}${comment};`;
  const plan: MovePlan = { from, to, createSchema, objects: await captureObjects(host, from, to) };
  // One call: when CREATE DATABASE fails (someone made `to` meanwhile), no journal claims it for us.
  await runSql(host, `${createSchema}\n${buildJournalSql(plan)}`, `creating ${toQuoted} and the move journal in ${fromQuoted}`);
  return plan;
}

function buildSteps(host: Host, plan: MovePlan, options: MoveMariadbSchemaOptions): MoveStep[] {
  const fromQuoted = quoteMysqlIdentifier(plan.from);
  const toQuoted = quoteMysqlIdentifier(plan.to);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const of = (...kinds: ObjectKind[]): SchemaObject[] => plan.objects.filter((object) => kinds.includes(object.kind));
  const run = (sql: string, what: string): Promise<string> => runSql(host, sql, what, timeoutMs);
  const drop = async (kinds: ObjectKind[], what: string): Promise<void> => {
    const objects = of(...kinds);
    if (objects.length === 0) return;
    const sql = objects.map((object) => `DROP ${layoutOf(object).keyword} IF EXISTS ${fromQuoted}.${quoteMysqlIdentifier(object.name)};`);
    await run(`${sql.join('\n')}\n`, what);
  };
  // Objects already in `to` were created by an earlier run of this move: only the missing ones are created.
  // One look is enough: each kind is created by one step, after the look.
  let existingInTarget: Promise<Set<string>> | undefined;
  const create = async (kinds: ObjectKind[], what: string): Promise<void> => {
    const objects = of(...kinds);
    if (objects.length === 0) return;
    existingInTarget ??= listObjects(host, plan.to);
    const existing = await existingInTarget;
    const missing = objects.filter((object) => !existing.has(objectKey(object.kind, object.name)));
    if (missing.length === 0) return;
    await run(`USE ${toQuoted};\n${missing.map(buildReplaySql).join('')}`, what);
  };
  const count = (kinds: ObjectKind[], noun: string): string => `${of(...kinds).length} ${noun}${of(...kinds).length === 1 ? '' : 's'}`;
  return [
    // Triggers block RENAME TABLE into another schema ("Trigger in wrong schema"); their definitions are in the journal.
    { done: `${count(['trigger'], 'trigger')} dropped from ${fromQuoted}`, pending: 'dropping the triggers', run: () => drop(['trigger'], `dropping the triggers of ${fromQuoted}`) },
    // Events go first so that none fires in both schemas.
    { done: `${count(['event'], 'event')} dropped from ${fromQuoted}`, pending: 'dropping the events', run: () => drop(['event'], `dropping the events of ${fromQuoted}`) },
    { done: `${count(['table'], 'table')} renamed into ${toQuoted}`, pending: 'renaming the tables', run: () => renameTables(host, plan, options, timeoutMs) },
    { done: `${count(['trigger'], 'trigger')} created in ${toQuoted}`, pending: 'creating the triggers', run: () => create(['trigger'], `creating the triggers in ${toQuoted}`) },
    // Before the views: a view calling a stored function needs it to exist.
    { done: `${count(['procedure', 'function'], 'routine')} created in ${toQuoted}`, pending: 'creating the routines', run: () => create(['procedure', 'function'], `creating the routines in ${toQuoted}`) },
    { done: `${count(['procedure', 'function'], 'routine')} dropped from ${fromQuoted}`, pending: 'dropping the routines', run: () => drop(['procedure', 'function'], `dropping the routines of ${fromQuoted}`) },
    { done: `${count(['view'], 'view')} created in ${toQuoted}`, pending: 'creating the views', run: () => create(['view'], `creating the views in ${toQuoted}`) },
    { done: `${count(['view'], 'view')} dropped from ${fromQuoted}`, pending: 'dropping the views', run: () => drop(['view'], `dropping the views of ${fromQuoted}`) },
    { done: `${count(['event'], 'event')} created in ${toQuoted}`, pending: 'creating the events', run: () => create(['event'], `creating the events in ${toQuoted}`) },
    { done: `${fromQuoted} dropped`, pending: `dropping ${fromQuoted}`, run: () => dropEmptiedSchema(host, plan, timeoutMs) },
  ];
}

/** Moves the journal's tables still in `from` with one atomic RENAME TABLE (tables already in `to` stay). */
async function renameTables(host: Host, plan: MovePlan, options: MoveMariadbSchemaOptions, timeoutMs: number): Promise<void> {
  const present = await listObjects(host, plan.from);
  const tables = plan.objects.filter((object) => object.kind === 'table' && present.has(objectKey('table', object.name)));
  if (tables.length === 0) return;
  const from = quoteMysqlIdentifier(plan.from);
  const to = quoteMysqlIdentifier(plan.to);
  const pairs = tables.map((table) => `${from}.${quoteMysqlIdentifier(table.name)} TO ${to}.${quoteMysqlIdentifier(table.name)}`);
  const lockWait = Math.max(1, Math.floor(options.lockWaitSeconds ?? 60));
  await runSql(host, `SET SESSION lock_wait_timeout = ${lockWait};\nRENAME TABLE ${pairs.join(',\n  ')};\n`, `renaming ${tables.length} tables into ${to}`, timeoutMs);
}

/** Drops `from` once it holds nothing but the journal; anything else left there stops the move. */
async function dropEmptiedSchema(host: Host, plan: MovePlan, timeoutMs: number): Promise<void> {
  const from = quoteMysqlIdentifier(plan.from);
  const left = [...(await listObjects(host, plan.from))].filter((key) => key !== objectKey('table', MOVE_JOURNAL_TABLE));
  if (left.length > 0) {
    throw new DependencyError('DB_SCHEMA_MOVE_LEFTOVERS', `${from} on ${host.name} still holds ${left.join(', ')}, which the move did not plan for`, {
      hint: 'Something created them during the move: move or drop them by hand',
    });
  }
  await runSql(host, `DROP DATABASE ${from};\n`, `dropping ${from}`, timeoutMs);
}

/** The error of a move that stopped at `steps[index]`: what is done, what is not, and how to finish. */
function buildIncompleteError(host: Host, plan: MovePlan, steps: readonly MoveStep[], index: number, error: unknown): DependencyError {
  const from = quoteMysqlIdentifier(plan.from);
  const to = quoteMysqlIdentifier(plan.to);
  const done = steps.slice(0, index).map((step) => step.done);
  const pending = steps.slice(index).map((step) => step.pending);
  const reason = error instanceof Error ? error.message : String(error);
  const first = error instanceof DeployError && error.code === 'DB_SCHEMA_MOVE_LEFTOVERS' ? error.hint : 'Fix the cause';
  return new DependencyError(
    'DB_SCHEMA_MOVE_INCOMPLETE',
    `moving ${from} to ${to} on ${host.name} stopped while ${steps[index]?.pending ?? 'moving'}: ${reason}. ` +
      `Done: ${done.length === 0 ? 'nothing' : done.join(', ')}. Not done: ${pending.join(', ')}.`,
    {
      cause: error,
      hint: `${first}, then run the same move again: it resumes from ${from}.${quoteMysqlIdentifier(MOVE_JOURNAL_TABLE)}. Until then ${to} is incomplete.`,
      details: { from: plan.from, to: plan.to, done, pending },
    },
  );
}

/**
 * Moves every object of schema `from` into a new schema `to` (same default charset and collation) and
 * drops `from`: tables by one atomic RENAME TABLE, triggers, routines, views and events re-created from
 * SHOW CREATE. Refuses (ConflictError) when `to` exists; a failure midway throws a DependencyError saying
 * what moved, and calling it again resumes from the journal kept in `from`.
 */
export async function moveMariadbSchema(host: Host, from: string, to: string, options: MoveMariadbSchemaOptions = {}): Promise<MoveReport> {
  if (from === to || from === '' || to === '') {
    throw new ConfigError('DB_SCHEMA_MOVE_NAMES', `cannot move schema ${quoteMysqlIdentifier(from)} to ${quoteMysqlIdentifier(to)}`, {
      hint: 'Give two different, non-empty schema names.',
    });
  }
  const plan = await startOrResume(host, from, to);
  const steps = buildSteps(host, plan, options);
  for (const [index, step] of steps.entries()) {
    try {
      await step.run();
    } catch (error) {
      throw buildIncompleteError(host, plan, steps, index, error);
    }
  }
  return countObjects(plan);
}
