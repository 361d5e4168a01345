import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Loads `KEY=VALUE` lines of `.env` in `directory` into `env`, keeping keys already set (`bases/Kernel.py` `loadEnvFile`). */
export function loadDotEnv(directory: string, env: NodeJS.ProcessEnv): void {
  const path = join(directory, '.env');
  if (!existsSync(path)) return;
  for (const rawLine of readFileSync(path, 'utf8').split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#') || !line.includes('=')) continue;
    const key = line
      .slice(0, line.indexOf('='))
      .replace(/^export\s+/, '')
      .trim();
    let value = line.slice(line.indexOf('=') + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0]))
      value = value.slice(1, -1);
    if (key !== '' && env[key] === undefined) env[key] = value;
  }
}

/** Storage dir: `FFL_STORAGE_LOCATION` if it exists, else `~/.fastfilelink` (created). */
export function resolveStorageDirectory(env: NodeJS.ProcessEnv): string {
  const configured = env['FFL_STORAGE_LOCATION'];
  if (configured !== undefined && configured !== '' && existsSync(configured) && statSync(configured).isDirectory())
    return configured;
  const fallback = join(homedir(), '.fastfilelink');
  mkdirSync(fallback, { recursive: true });
  return fallback;
}

/** Writes the default `tunnels.json` on first run and persists `--preferred-tunnel` like `_setPreferredTunnel`. */
export function ensureTunnelsFile(directory: string, preferredTunnel: string | undefined): void {
  const path = join(directory, 'tunnels.json');
  let content: { tunnels: Record<string, unknown>; settings: { preferred_tunnel: string } } = {
    tunnels: {},
    settings: { preferred_tunnel: 'default' },
  };
  if (existsSync(path)) {
    try {
      content = JSON.parse(readFileSync(path, 'utf8')) as typeof content;
    } catch {
      // A broken file is rewritten with defaults, as the real tool does on first run.
    }
    if (preferredTunnel === undefined) return;
  }
  if (preferredTunnel !== undefined) content.settings = { ...content.settings, preferred_tunnel: preferredTunnel };
  writeFileSync(path, `${JSON.stringify(content, null, 2)}\n`);
}

const SQLITE_PAGE_SIZE = 4096;
/** The share-history table of the stand-in's `ffl.db` (its own schema: the real one was not recorded). */
const SHARE_TABLE_SQL = 'CREATE TABLE shares (uid TEXT, name TEXT, link TEXT, created_at TEXT)';

/** SQLite's big-endian base-128 varint (values below 2^56 here). */
function encodeSqliteVarint(value: number): Buffer {
  const groups: number[] = [];
  let rest = value;
  do {
    groups.unshift(rest & 0x7f);
    rest = Math.floor(rest / 128);
  } while (rest > 0);
  return Buffer.from(groups.map((group, index) => (index < groups.length - 1 ? group | 0x80 : group)));
}

/**
 * A valid two-page SQLite 3 database in WAL mode holding one empty table: what ffl leaves in its
 * storage dir as `ffl.db` (reference §8). Built by hand so the stand-in needs no SQLite library.
 */
export function buildShareDatabase(): Buffer {
  const file = Buffer.alloc(2 * SQLITE_PAGE_SIZE);
  file.write('SQLite format 3\0', 0, 'latin1');
  file.writeUInt16BE(SQLITE_PAGE_SIZE, 16);
  file[18] = 2; // write version: WAL
  file[19] = 2; // read version: WAL
  file[21] = 64;
  file[22] = 32;
  file[23] = 32;
  file.writeUInt32BE(1, 24); // change counter
  file.writeUInt32BE(2, 28); // pages
  file.writeUInt32BE(1, 40); // schema cookie
  file.writeUInt32BE(4, 44); // schema format
  file.writeUInt32BE(1, 56); // UTF-8
  file.writeUInt32BE(1, 92); // version-valid-for
  file.writeUInt32BE(3_040_001, 96);
  // sqlite_master row: type, name, tbl_name, rootpage, sql.
  const texts = ['table', 'shares', 'shares'].map((text) => Buffer.from(text, 'utf8'));
  const sql = Buffer.from(SHARE_TABLE_SQL, 'utf8');
  const types = [
    ...texts.map((text) => encodeSqliteVarint(text.length * 2 + 13)),
    encodeSqliteVarint(1),
    encodeSqliteVarint(sql.length * 2 + 13),
  ];
  const typesLength = types.reduce((sum, type) => sum + type.length, 0);
  const headerLength = encodeSqliteVarint(typesLength + 1);
  const payload = Buffer.concat([headerLength, ...types, ...texts, Buffer.from([2]), sql]);
  const cell = Buffer.concat([encodeSqliteVarint(payload.length), encodeSqliteVarint(1), payload]);
  const cellOffset = SQLITE_PAGE_SIZE - cell.length;
  cell.copy(file, cellOffset);
  // Page 1 b-tree header (after the 100-byte file header): leaf table page, one cell.
  file[100] = 0x0d;
  file.writeUInt16BE(1, 103);
  file.writeUInt16BE(cellOffset, 105);
  file.writeUInt16BE(cellOffset, 108);
  // Page 2: the empty table.
  file[SQLITE_PAGE_SIZE] = 0x0d;
  file.writeUInt16BE(SQLITE_PAGE_SIZE, SQLITE_PAGE_SIZE + 5);
  return file;
}

/** The open share history: `ffl.db` plus the `-wal`/`-shm` files SQLite keeps while it is open. */
export interface ShareDatabase {
  readonly path: string;
  /** A clean close removes `-wal` and `-shm` (SQLite checkpoints on the last close); a killed process leaves them. */
  close(): void;
}

/** Opens `ffl.db` in `directory` like ffl does on both sides (created on first use). */
export function openShareDatabase(directory: string): ShareDatabase {
  const path = join(directory, 'ffl.db');
  if (!existsSync(path)) writeFileSync(path, buildShareDatabase());
  writeFileSync(`${path}-wal`, '');
  writeFileSync(`${path}-shm`, Buffer.alloc(32 * 1024));
  let open = true;
  return {
    path,
    close: () => {
      if (!open) return;
      open = false;
      rmSync(`${path}-wal`, { force: true });
      rmSync(`${path}-shm`, { force: true });
    },
  };
}
