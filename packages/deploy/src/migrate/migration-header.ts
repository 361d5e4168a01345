import { TransportError, type AppManifest } from '@deploykit/core';
import { formatIssue, validateManifestText } from '@deploykit/manifest';
import type { DatabaseEngine, ExtensionOwner } from '../database/engine.js';
import type { SpecialFileEntry } from './archive-listing.js';
import type { FileDigest } from './checksums.js';
import type { FidelityMetadata } from './fidelity.js';

/** What a part of a migration carries; each kind has one consumer on the target. */
export type MigrationPartKind = 'app-folder' | 'volume' | 'db-roles' | 'database' | 'db-grants' | 'borg-repo';

/** One part of a migration bundle, as the header announces it. */
export interface MigrationPart {
  /** `files`, `volume:<name>`, `roles`, `database`, `grants`, `history`. */
  readonly id: string;
  readonly kind: MigrationPartKind;
  readonly title: string;
  /** The source's estimate (space preflight, ETA); the trailer has the exact count. */
  readonly expectedBytes: number;
  /** For `volume`: which one, and its path inside the app folder. */
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
}

/** Per volume: the archive's listing (path, size, SHA-256 of every regular file) and what export-tar drops. */
export interface VolumeContents {
  readonly listing: readonly FileDigest[];
  /** [path, target] of every symlink of the volume in the archive, sorted by path; absent from an older deploykit. */
  readonly symlinks?: readonly (readonly [string, string])[];
  /** The declared device nodes and FIFOs the archive holds (devices with major/minor), sorted by path; absent when none. */
  readonly special?: readonly SpecialFileEntry[];
  readonly fidelity: FidelityMetadata;
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
  if (!Array.isArray(value) || !value.every(isRecord)) fail("contents record's databaseExtensions is not a list of objects");
  return value.map((extension) => ({ name: string(extension.name, 'extension name'), schema: string(extension.schema, 'extension schema'), owner: string(extension.owner, 'extension owner') }));
}

function count(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) fail(`${what} is not a byte count`);
  return value;
}

const PART_KINDS: readonly MigrationPartKind[] = ['app-folder', 'volume', 'db-roles', 'database', 'db-grants', 'borg-repo'];

/** Parses and checks a header record; throws BUNDLE_HEADER_INVALID naming what is wrong. Unknown fields are ignored. */
export function parseMigrationHeader(value: Record<string, unknown>): MigrationHeader & { readonly manifest: AppManifest } {
  if (value.kind !== 'deploykit-migration') fail(`header is not a migration header (kind ${JSON.stringify(value.kind)})`);
  const app = string(value.app, 'app name');
  const runId = string(value.runId, 'run id');
  if (!/^[A-Za-z0-9T-]{1,64}$/.test(runId)) fail(`run id ${JSON.stringify(runId)} has characters a run id never has`);
  const source = isRecord(value.source) ? value.source : fail('source is missing');
  const manifestText = string(value.manifestText, 'app.yaml');
  const loaded = validateManifestText('app.yaml (bundle header)', manifestText);
  if (loaded.manifest === undefined) fail(`app.yaml is not valid here: ${loaded.errors.slice(0, 3).map((issue) => formatIssue(issue)).join('; ')}`);
  if (loaded.manifest.name !== app) fail(`app.yaml names ${loaded.manifest.name}, the header ${app}`);
  if (!Array.isArray(value.parts)) fail('part list is missing');
  const seen = new Set<string>();
  const parts = value.parts.map((raw, index): MigrationPart => {
    if (!isRecord(raw)) fail(`part ${index} is not an object`);
    const id = string(raw.id, `part ${index} id`);
    if (seen.has(id)) fail(`part ${id} is listed twice`);
    seen.add(id);
    const kind = raw.kind as MigrationPartKind;
    if (!PART_KINDS.includes(kind)) fail(`part ${id} has an unknown kind ${JSON.stringify(raw.kind)} (a newer deploy wrote it)`);
    const volume = raw.volume;
    if (kind === 'volume' && !(isRecord(volume) && typeof volume.name === 'string' && typeof volume.path === 'string')) fail(`volume part ${id} does not name its volume`);
    return {
      id,
      kind,
      title: typeof raw.title === 'string' ? raw.title : id,
      expectedBytes: count(raw.expectedBytes, `part ${id} size`),
      ...(kind === 'volume' ? { volume: { name: String((volume as Record<string, unknown>).name), path: String((volume as Record<string, unknown>).path) } } : {}),
      fromArchive: raw.fromArchive === true,
    };
  });
  const database = value.database;
  let parsedDatabase: MigrationDatabase | undefined;
  if (database !== undefined) {
    if (!isRecord(database) || (database.engine !== 'postgres' && database.engine !== 'mariadb')) fail('database entry is not valid');
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
    source: { host: string(source.host, 'source host'), address: typeof source.address === 'string' ? source.address : '', deployVersion: string(source.deployVersion, 'source deploy version') },
    manifestText,
    manifest: loaded.manifest,
    parts,
    ...(parsedDatabase === undefined ? {} : { database: parsedDatabase }),
    neededBytes: count(value.neededBytes, 'needed space'),
    tools: Array.isArray(value.tools) ? value.tools.filter((tool): tool is string => typeof tool === 'string') : [],
    options: { withHistory: options.withHistory === true, stallSeconds: typeof options.stallSeconds === 'number' && options.stallSeconds > 0 ? options.stallSeconds : 60, ...(options.pairing === true ? { pairing: true } : {}) },
    plan: Array.isArray(value.plan) ? value.plan.filter(isRecord).map((step) => ({ id: String(step.id), title: String(step.title ?? step.id) })) : [],
  };
}

function parseSpecialEntry(entry: unknown, volume: string): SpecialFileEntry {
  if (!isRecord(entry) || typeof entry.path !== 'string' || (entry.type !== 'fifo' && entry.type !== 'char' && entry.type !== 'block')) fail(`special files of volume ${volume} have a malformed entry`);
  const device = typeof entry.major === 'number' && typeof entry.minor === 'number' ? { major: count(entry.major, `major of ${entry.path}`), minor: count(entry.minor, `minor of ${entry.path}`) } : {};
  return { path: entry.path, type: entry.type, ...device };
}

/** Parses and checks a contents record against its header; throws BUNDLE_HEADER_INVALID. */
export function parseMigrationContents(value: Record<string, unknown>, header: MigrationHeader): MigrationContents {
  const archive = string(value.archive, 'archive name');
  const volumes: Record<string, VolumeContents> = {};
  const rawVolumes = isRecord(value.volumes) ? value.volumes : {};
  for (const part of header.parts) {
    if (part.kind !== 'volume' || part.volume === undefined) continue;
    const raw = rawVolumes[part.volume.name];
    if (!isRecord(raw) || !Array.isArray(raw.listing) || !isRecord(raw.fidelity)) fail(`contents lack the listing of volume ${part.volume.name}`);
    const listing = raw.listing.map((file): FileDigest => {
      if (!isRecord(file) || typeof file.path !== 'string' || typeof file.sha256 !== 'string') fail(`listing of volume ${part.volume!.name} has a malformed entry`);
      return { path: file.path, size: count(file.size, `size of ${file.path}`), sha256: file.sha256 };
    });
    const fidelity = raw.fidelity;
    volumes[part.volume.name] = {
      listing,
      fidelity: {
        xattrDump: typeof fidelity.xattrDump === 'string' ? fidelity.xattrDump : '',
        xattrFiles: typeof fidelity.xattrFiles === 'number' ? fidelity.xattrFiles : 0,
        aclFiles: typeof fidelity.aclFiles === 'number' ? fidelity.aclFiles : 0,
        lateMtimes: Array.isArray(fidelity.lateMtimes) ? fidelity.lateMtimes.filter((pair): pair is [string, string] => Array.isArray(pair) && pair.length === 2 && pair.every((x) => typeof x === 'string')) : [],
        sparseFiles: Array.isArray(fidelity.sparseFiles) ? fidelity.sparseFiles.filter((path): path is string => typeof path === 'string') : [],
        ...(Array.isArray(fidelity.subsecondMtimes) ? { subsecondMtimes: fidelity.subsecondMtimes.filter((pair): pair is [string, string] => Array.isArray(pair) && pair.length === 2 && typeof pair[0] === 'string' && typeof pair[1] === 'string' && /^\d+$/.test(pair[1])) } : {}),
        ...(isRecord(fidelity.root) && typeof fidelity.root.mode === 'number' && typeof fidelity.root.uid === 'number' && typeof fidelity.root.gid === 'number' && typeof fidelity.root.mtimeNs === 'string' && /^\d+$/.test(fidelity.root.mtimeNs)
          ? { root: { mode: fidelity.root.mode, uid: fidelity.root.uid, gid: fidelity.root.gid, mtimeNs: fidelity.root.mtimeNs } }
          : {}),
      },
      ...(Array.isArray(raw.special) ? { special: raw.special.map((entry) => parseSpecialEntry(entry, part.volume!.name)) } : {}),
      ...(Array.isArray(raw.symlinks) ? { symlinks: raw.symlinks.filter((pair): pair is [string, string] => Array.isArray(pair) && pair.length === 2 && typeof pair[0] === 'string' && typeof pair[1] === 'string') } : {}),
    };
  }
  const rowCounts = isRecord(value.rowCounts) ? Object.fromEntries(Object.entries(value.rowCounts).filter((entry): entry is [string, number] => typeof entry[1] === 'number')) : undefined;
  return {
    archive,
    ...(typeof value.reusedArchiveOf === 'string' ? { reusedArchiveOf: value.reusedArchiveOf } : {}),
    volumes,
    ...(rowCounts === undefined ? {} : { rowCounts }),
    ...(typeof value.databaseSettings === 'string' ? { databaseSettings: value.databaseSettings } : {}),
    ...(typeof value.databaseFixups === 'string' ? { databaseFixups: value.databaseFixups } : {}),
    ...(value.databaseExtensions === undefined ? {} : { databaseExtensions: parseExtensionOwners(value.databaseExtensions) }),
    ...(Array.isArray(value.historyArchives) ? { historyArchives: value.historyArchives.filter((name): name is string => typeof name === 'string') } : {}),
  };
}
