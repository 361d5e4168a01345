import { TransportError, type AppManifest } from '@deploykit/core';
import { formatIssue, validateManifestText } from '@deploykit/manifest';
import type { DatabaseEngine, ExtensionOwner } from '../database/engine.js';
import type { SpecialFileEntry } from './archive-listing.js';
import type { FileDigest } from './checksums.js';
import type { FidelityMetadata } from './fidelity.js';
import type { VolumeEntryType } from './volume-delta.js';

/** What a part of a migration carries; each kind has one consumer on the target. */
export type MigrationPartKind =
  | 'app-folder'
  | 'volume'
  | 'volume-delta'
  | 'db-roles'
  | 'database'
  | 'db-grants'
  | 'borg-repo';

/** One part of a migration bundle, as the header announces it. */
export interface MigrationPart {
  /** `files`, `volume:<name>`, `delta:<name>` (a cutover), `roles`, `database`, `grants`, `history`. */
  readonly id: string;
  readonly kind: MigrationPartKind;
  readonly title: string;
  /** The source's estimate (space preflight, ETA); the trailer has the exact count. */
  readonly expectedBytes: number;
  /** For `volume` and `volume-delta`: which one, and its path inside the app folder. */
  readonly volume?: { readonly name: string; readonly path: string };
  /** True when the bytes come from the archive alone (the same archive gives the same bytes): a resume may reuse it. */
  readonly fromArchive: boolean;
}

/** The database of the app being moved, as the target needs it before any part arrives. */
export interface MigrationDatabase {
  readonly engine: DatabaseEngine['kind'];
  readonly name: string;
  readonly roles: readonly string[];
  readonly bytes: number;
}

/**
 * The bundle's header record (H) of a migration: enough for the target to check it can take the
 * app - and refuse within seconds - before the first part is consumed. Schema: docs/migrate.md.
 */
export interface MigrationHeader {
  readonly kind: 'deploykit-migration';
  readonly app: string;
  readonly runId: string;
  readonly createdAt: string;
  readonly source: { readonly host: string; readonly address: string; readonly deployVersion: string };
  /** The app's app.yaml as text: the target validates it with its own schema. */
  readonly manifestText: string;
  readonly parts: readonly MigrationPart[];
  readonly database?: MigrationDatabase;
  /** Space the target needs, in bytes (the app folder, volumes and database, without margin). */
  readonly neededBytes: number;
  /** Programs the target needs for these parts. */
  readonly tools: readonly string[];
  /** `pairing`: no source can resume this run (one share, pulled once): the target keeps no parts when its input is lost. */
  readonly options: { readonly withHistory: boolean; readonly stallSeconds: number; readonly pairing?: boolean };
  /** The target's steps as the source planned them (ids and titles): what the target will show. */
  readonly plan: readonly { readonly id: string; readonly title: string }[];
  /** A cutover bundle (docs/decisions/0008): only what changed since the migration's archive, applied to the copy there. */
  readonly cutover?: CutoverHeader;
}

/** An entry of a volume as the base archive holds it: [path, type, size (regular files), symlink target]. */
/**
 * One entry of the base archive: path, type, a file's size, a link's target, and a file's mtime in
 * epoch microseconds (borg lists microseconds; absent from a deploy that did not send it).
 */
export type BaseEntry =
  | readonly [string, VolumeEntryType, number, string | null]
  | readonly [string, VolumeEntryType, number, string | null, string];

/** What a cutover bundle's header adds: the migration it builds on, and each volume as that migration left it. */
export interface CutoverHeader {
  /** The archive of the finished migration whose copy the target holds. */
  readonly baseArchive: string;
  /** The source's run id of that migration. */
  readonly baseRunId: string;
  /** Per volume, every entry of the base archive: the target checks its copy still equals it before anything changes. */
  readonly volumes: Readonly<Record<string, { readonly base: readonly BaseEntry[] }>>;
  /**
   * Pairing mode (decision 0011): the source cannot hear the verdict, so the target shows its operator
   * what to run there - the confirmation with this code on success, resuming writes (as they stopped) on a rollback.
   */
  readonly pairing?: { readonly confirmCode: string; readonly stoppedWith: 'maintenance' | 'stop' };
}

/** Per volume of a cutover: how the target turns the base into the final archive's volume. */
export interface DeltaRecord {
  /** [path, type] of every entry to take away (only in the base, or its type changed), deepest first. */
  readonly removed: readonly (readonly [string, VolumeEntryType])[];
  /** Paths the delta part's tar carries (added, changed, re-pointed symlinks), sorted: parents first. */
  readonly sent: readonly string[];
  /** Same content, other mode or owner: [path, type, mode (st_mode & 0o7777), uid, gid] as the final archive holds them. */
  readonly chmod: readonly (readonly [string, VolumeEntryType, number, number, number])[];
  /**
   * [path, mtime in ns] set after the entries moved: the directories whose entries change (moving an
   * entry in or out changes a directory's mtime) and the entries whose mtime alone changed.
   */
  readonly mtimes: readonly (readonly [string, string])[];
  /** Content bytes of the regular files sent. */
  readonly bytes: number;
  /**
   * The volume travels whole (app.yaml `target_writes: discard`): the part is the final archive's
   * whole volume, which replaces the copy there (its own writes since the migration are set aside).
   */
  readonly whole?: boolean;
  /** Entries by class, for the report. */
  readonly counts: {
    readonly added: number;
    readonly changed: number;
    readonly removed: number;
    readonly metadata: number;
  };
}

/** Per volume: the archive's listing (path, size, SHA-256 of every regular file) and what export-tar drops. */
export interface VolumeContents {
  readonly listing: readonly FileDigest[];
  /** [path, target] of every symlink of the volume in the archive, sorted by path; absent from an older deploykit. */
  readonly symlinks?: readonly (readonly [string, string])[];
  /** The declared device nodes and FIFOs the archive holds (devices with major/minor), sorted by path; absent when none. */
  readonly special?: readonly SpecialFileEntry[];
  readonly fidelity: FidelityMetadata;
  /** A cutover: the delta from the base archive (the listing, symlinks and fidelity are the final archive's, whole). */
  readonly delta?: DeltaRecord;
}

/** The bundle's contents record (C): what the target verifies against, known once the archive exists. */
export interface MigrationContents {
  readonly archive: string;
  /** When a resume reuses an earlier run's archive: that run's id. */
  readonly reusedArchiveOf?: string;
  readonly volumes: Readonly<Record<string, VolumeContents>>;
  /** Row count of every table right after the backup (what the archive holds). */
  readonly rowCounts?: Readonly<Record<string, number>>;
  /** PostgreSQL: the dump's database-level settings SQL (CREATE DATABASE options, owner, comment, SET, grants). */
  readonly databaseSettings?: string;
  /** PostgreSQL: SQL for what the dump cannot express (explicit owner-default ACLs), run in the restored database. */
  readonly databaseFixups?: string;
  /** PostgreSQL: extensions an app role owns, which that role creates in the staging database before the restore. */
  readonly databaseExtensions?: readonly ExtensionOwner[];
  /** With history: the archive names the repository holds, for the target's check. */
  readonly historyArchives?: readonly string[];
}

function fail(what: string): never {
  throw new TransportError('BUNDLE_HEADER_INVALID', `the migration bundle's ${what}`, {
    hint: 'The bundle was not written by a compatible deploy; run the same deploykit version on both hosts.',
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function string(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '') fail(`${what} is missing or not a string`);
  return value;
}

function parseExtensionOwners(value: unknown): ExtensionOwner[] {
  if (!Array.isArray(value) || !value.every(isRecord))
    fail("contents record's databaseExtensions is not a list of objects");
  return value.map((extension) => ({
    name: string(extension.name, 'extension name'),
    schema: string(extension.schema, 'extension schema'),
    owner: string(extension.owner, 'extension owner'),
  }));
}

function count(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) fail(`${what} is not a byte count`);
  return value;
}

const PART_KINDS: readonly MigrationPartKind[] = [
  'app-folder',
  'volume',
  'volume-delta',
  'db-roles',
  'database',
  'db-grants',
  'borg-repo',
];
const ENTRY_TYPES: readonly VolumeEntryType[] = ['file', 'dir', 'symlink', 'fifo', 'char', 'block'];

function entryType(value: unknown, what: string): VolumeEntryType {
  if (!ENTRY_TYPES.includes(value as VolumeEntryType))
    fail(`${what} has an unknown entry type ${JSON.stringify(value)}`);
  return value as VolumeEntryType;
}

function parseCutoverHeader(value: unknown): CutoverHeader {
  if (!isRecord(value)) fail('cutover entry is not an object');
  const volumes: Record<string, { base: BaseEntry[] }> = {};
  for (const [name, raw] of Object.entries(isRecord(value.volumes) ? value.volumes : {})) {
    if (!isRecord(raw) || !Array.isArray(raw.base)) fail(`cutover base of volume ${name} is missing`);
    volumes[name] = {
      base: raw.base.map((entry): BaseEntry => {
        if (!Array.isArray(entry) || typeof entry[0] !== 'string')
          fail(`cutover base of volume ${name} has a malformed entry`);
        const parsed = [
          entry[0],
          entryType(entry[1], `cutover base entry ${entry[0]}`),
          count(entry[2], `size of ${entry[0]}`),
          typeof entry[3] === 'string' ? entry[3] : null,
        ] as const;
        return typeof entry[4] === 'string' && /^\d+$/.test(entry[4]) ? [...parsed, entry[4]] : parsed;
      }),
    };
  }
  const pairing = isRecord(value.pairing)
    ? {
        confirmCode: string(value.pairing.confirmCode, 'cutover confirmation code'),
        stoppedWith: value.pairing.stoppedWith === 'stop' ? ('stop' as const) : ('maintenance' as const),
      }
    : undefined;
  return {
    baseArchive: string(value.baseArchive, 'cutover base archive'),
    baseRunId: string(value.baseRunId, 'cutover base run id'),
    volumes,
    ...(pairing ? { pairing } : {}),
  };
}

function parseDeltaRecord(value: unknown, volume: string): DeltaRecord {
  if (!isRecord(value) || !Array.isArray(value.removed) || !Array.isArray(value.sent) || !Array.isArray(value.chmod))
    fail(`delta of volume ${volume} is malformed`);
  const path = (entry: unknown, what: string): string =>
    typeof entry === 'string' &&
    entry !== '' &&
    entry !== '.' &&
    !entry.startsWith('/') &&
    !entry.split('/').includes('..')
      ? entry
      : fail(`delta of volume ${volume} has an unsafe ${what} path ${JSON.stringify(entry)}`);
  const counts = isRecord(value.counts) ? value.counts : {};
  return {
    removed: value.removed.map((entry): [string, VolumeEntryType] =>
      Array.isArray(entry)
        ? [path(entry[0], 'removed'), entryType(entry[1], `removed ${String(entry[0])}`)]
        : fail(`delta of volume ${volume} has a malformed removal`),
    ),
    sent: value.sent.map((entry) => path(entry, 'sent')),
    chmod: value.chmod.map((entry): [string, VolumeEntryType, number, number, number] =>
      Array.isArray(entry)
        ? [
            path(entry[0], 'chmod'),
            entryType(entry[1], `chmod ${String(entry[0])}`),
            count(entry[2], 'mode'),
            count(entry[3], 'uid'),
            count(entry[4], 'gid'),
          ]
        : fail(`delta of volume ${volume} has a malformed mode change`),
    ),
    mtimes: Array.isArray(value.mtimes)
      ? value.mtimes.filter(
          (pair): pair is [string, string] =>
            Array.isArray(pair) && typeof pair[0] === 'string' && typeof pair[1] === 'string' && /^\d+$/.test(pair[1]),
        )
      : [],
    bytes: count(value.bytes ?? 0, `delta bytes of ${volume}`),
    ...(value.whole === true ? { whole: true } : {}),
    counts: {
      added: Number(counts.added ?? 0),
      changed: Number(counts.changed ?? 0),
      removed: Number(counts.removed ?? 0),
      metadata: Number(counts.metadata ?? 0),
    },
  };
}

/** Parses and checks a header record; throws BUNDLE_HEADER_INVALID naming what is wrong. Unknown fields are ignored. */
export function parseMigrationHeader(
  value: Record<string, unknown>,
): MigrationHeader & { readonly manifest: AppManifest } {
  if (value.kind !== 'deploykit-migration')
    fail(`header is not a migration header (kind ${JSON.stringify(value.kind)})`);
  const app = string(value.app, 'app name');
  const runId = string(value.runId, 'run id');
  if (!/^[A-Za-z0-9T-]{1,64}$/.test(runId)) fail(`run id ${JSON.stringify(runId)} has characters a run id never has`);
  const source = isRecord(value.source) ? value.source : fail('source is missing');
  const manifestText = string(value.manifestText, 'app.yaml');
  const loaded = validateManifestText('app.yaml (bundle header)', manifestText);
  if (loaded.manifest === undefined)
    fail(
      `app.yaml is not valid here: ${loaded.errors
        .slice(0, 3)
        .map((issue) => formatIssue(issue))
        .join('; ')}`,
    );
  if (loaded.manifest.name !== app) fail(`app.yaml names ${loaded.manifest.name}, the header ${app}`);
  if (!Array.isArray(value.parts)) fail('part list is missing');
  const seen = new Set<string>();
  const parts = value.parts.map((raw, index): MigrationPart => {
    if (!isRecord(raw)) fail(`part ${index} is not an object`);
    const id = string(raw.id, `part ${index} id`);
    if (seen.has(id)) fail(`part ${id} is listed twice`);
    seen.add(id);
    const kind = raw.kind as MigrationPartKind;
    if (!PART_KINDS.includes(kind))
      fail(`part ${id} has an unknown kind ${JSON.stringify(raw.kind)} (a newer deploy wrote it)`);
    const volume = raw.volume;
    if (
      (kind === 'volume' || kind === 'volume-delta') &&
      !(isRecord(volume) && typeof volume.name === 'string' && typeof volume.path === 'string')
    )
      fail(`volume part ${id} does not name its volume`);
    return {
      id,
      kind,
      title: typeof raw.title === 'string' ? raw.title : id,
      expectedBytes: count(raw.expectedBytes, `part ${id} size`),
      ...(kind === 'volume' || kind === 'volume-delta'
        ? {
            volume: {
              name: String((volume as Record<string, unknown>).name),
              path: String((volume as Record<string, unknown>).path),
            },
          }
        : {}),
      fromArchive: raw.fromArchive === true,
    };
  });
  const database = value.database;
  let parsedDatabase: MigrationDatabase | undefined;
  if (database !== undefined) {
    if (!isRecord(database) || (database.engine !== 'postgres' && database.engine !== 'mariadb'))
      fail('database entry is not valid');
    parsedDatabase = {
      engine: database.engine,
      name: string(database.name, 'database name'),
      roles: Array.isArray(database.roles) ? database.roles.map((role) => string(role, 'role name')) : [],
      bytes: count(database.bytes, 'database size'),
    };
  }
  const options = isRecord(value.options) ? value.options : {};
  return {
    kind: 'deploykit-migration',
    app,
    runId,
    createdAt: typeof value.createdAt === 'string' ? value.createdAt : '',
    source: {
      host: string(source.host, 'source host'),
      address: typeof source.address === 'string' ? source.address : '',
      deployVersion: string(source.deployVersion, 'source deploy version'),
    },
    manifestText,
    manifest: loaded.manifest,
    parts,
    ...(parsedDatabase === undefined ? {} : { database: parsedDatabase }),
    neededBytes: count(value.neededBytes, 'needed space'),
    tools: Array.isArray(value.tools) ? value.tools.filter((tool): tool is string => typeof tool === 'string') : [],
    options: {
      withHistory: options.withHistory === true,
      stallSeconds: typeof options.stallSeconds === 'number' && options.stallSeconds > 0 ? options.stallSeconds : 60,
      ...(options.pairing === true ? { pairing: true } : {}),
    },
    plan: Array.isArray(value.plan)
      ? value.plan.filter(isRecord).map((step) => ({ id: String(step.id), title: String(step.title ?? step.id) }))
      : [],
    ...(value.cutover === undefined ? {} : { cutover: parseCutoverHeader(value.cutover) }),
  };
}

function parseSpecialEntry(entry: unknown, volume: string): SpecialFileEntry {
  if (
    !isRecord(entry) ||
    typeof entry.path !== 'string' ||
    (entry.type !== 'fifo' && entry.type !== 'char' && entry.type !== 'block')
  )
    fail(`special files of volume ${volume} have a malformed entry`);
  const device =
    typeof entry.major === 'number' && typeof entry.minor === 'number'
      ? { major: count(entry.major, `major of ${entry.path}`), minor: count(entry.minor, `minor of ${entry.path}`) }
      : {};
  return { path: entry.path, type: entry.type, ...device };
}

/** Parses and checks a contents record against its header; throws BUNDLE_HEADER_INVALID. */
export function parseMigrationContents(value: Record<string, unknown>, header: MigrationHeader): MigrationContents {
  const archive = string(value.archive, 'archive name');
  const volumes: Record<string, VolumeContents> = {};
  const rawVolumes = isRecord(value.volumes) ? value.volumes : {};
  for (const part of header.parts) {
    if ((part.kind !== 'volume' && part.kind !== 'volume-delta') || part.volume === undefined) continue;
    const raw = rawVolumes[part.volume.name];
    if (!isRecord(raw) || !Array.isArray(raw.listing) || !isRecord(raw.fidelity))
      fail(`contents lack the listing of volume ${part.volume.name}`);
    if (part.kind === 'volume-delta' && !isRecord(raw.delta))
      fail(`contents lack the delta of volume ${part.volume.name}`);
    const listing = raw.listing.map((file): FileDigest => {
      if (!isRecord(file) || typeof file.path !== 'string' || typeof file.sha256 !== 'string')
        fail(`listing of volume ${part.volume!.name} has a malformed entry`);
      return { path: file.path, size: count(file.size, `size of ${file.path}`), sha256: file.sha256 };
    });
    const fidelity = raw.fidelity;
    volumes[part.volume.name] = {
      listing,
      fidelity: {
        xattrDump: typeof fidelity.xattrDump === 'string' ? fidelity.xattrDump : '',
        xattrFiles: typeof fidelity.xattrFiles === 'number' ? fidelity.xattrFiles : 0,
        aclFiles: typeof fidelity.aclFiles === 'number' ? fidelity.aclFiles : 0,
        lateMtimes: Array.isArray(fidelity.lateMtimes)
          ? fidelity.lateMtimes.filter(
              (pair): pair is [string, string] =>
                Array.isArray(pair) && pair.length === 2 && pair.every((x) => typeof x === 'string'),
            )
          : [],
        sparseFiles: Array.isArray(fidelity.sparseFiles)
          ? fidelity.sparseFiles.filter((path): path is string => typeof path === 'string')
          : [],
        ...(Array.isArray(fidelity.subsecondMtimes)
          ? {
              subsecondMtimes: fidelity.subsecondMtimes.filter(
                (pair): pair is [string, string] =>
                  Array.isArray(pair) &&
                  pair.length === 2 &&
                  typeof pair[0] === 'string' &&
                  typeof pair[1] === 'string' &&
                  /^\d+$/.test(pair[1]),
              ),
            }
          : {}),
        ...(isRecord(fidelity.root) &&
        typeof fidelity.root.mode === 'number' &&
        typeof fidelity.root.uid === 'number' &&
        typeof fidelity.root.gid === 'number' &&
        typeof fidelity.root.mtimeNs === 'string' &&
        /^\d+$/.test(fidelity.root.mtimeNs)
          ? {
              root: {
                mode: fidelity.root.mode,
                uid: fidelity.root.uid,
                gid: fidelity.root.gid,
                mtimeNs: fidelity.root.mtimeNs,
              },
            }
          : {}),
      },
      ...(Array.isArray(raw.special)
        ? { special: raw.special.map((entry) => parseSpecialEntry(entry, part.volume!.name)) }
        : {}),
      ...(part.kind === 'volume-delta' ? { delta: parseDeltaRecord(raw.delta, part.volume.name) } : {}),
      ...(Array.isArray(raw.symlinks)
        ? {
            symlinks: raw.symlinks.filter(
              (pair): pair is [string, string] =>
                Array.isArray(pair) && pair.length === 2 && typeof pair[0] === 'string' && typeof pair[1] === 'string',
            ),
          }
        : {}),
    };
  }
  const rowCounts = isRecord(value.rowCounts)
    ? Object.fromEntries(
        Object.entries(value.rowCounts).filter((entry): entry is [string, number] => typeof entry[1] === 'number'),
      )
    : undefined;
  return {
    archive,
    ...(typeof value.reusedArchiveOf === 'string' ? { reusedArchiveOf: value.reusedArchiveOf } : {}),
    volumes,
    ...(rowCounts === undefined ? {} : { rowCounts }),
    ...(typeof value.databaseSettings === 'string' ? { databaseSettings: value.databaseSettings } : {}),
    ...(typeof value.databaseFixups === 'string' ? { databaseFixups: value.databaseFixups } : {}),
    ...(value.databaseExtensions === undefined
      ? {}
      : { databaseExtensions: parseExtensionOwners(value.databaseExtensions) }),
    ...(Array.isArray(value.historyArchives)
      ? { historyArchives: value.historyArchives.filter((name): name is string => typeof name === 'string') }
      : {}),
  };
}
