import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Writable } from 'node:stream';
import {
  DependencyError,
  DeployError,
  displayArgv,
  formatBytes,
  ScriptError,
  TransportError,
  type AppFolder,
  isForeignEvent,
  parseDeployEvent,
  type BusEvent,
  type EventBus,
  type Host,
  type HostProcess,
  type Secret,
} from '@deploykit/core';
import {
  controlDirParents,
  findProcessesByEnvironment,
  findSshMasters,
  stopProcesses,
  type DeployClient,
} from '@deploykit/host';
import {
  BundleWriter,
  buildFflShareArgv,
  describeExit,
  readLines,
  startFflShare,
  type FflShare,
  type SenderChannel,
  type StreamPath,
  type Transport,
  type TransportOptions,
} from '@deploykit/transport';
import { createSqlClient } from '../database/sql-client.js';
import { DEPLOY_EVENT_TYPES } from '../deploy-events.js';
import { readDumpSettings } from '../database/dump-settings.js';
import type { HostContext } from '../host-context.js';
import type { RecoverReport, TargetReport } from '../receive/target-run.js';
import { runPhase } from '../script-runner.js';
import { acquireAppLock, type AppLock } from './app-lock.js';
import { pruneMigrationArchives, type PruneReport } from './archive-retention.js';
import { listArchivedVolumeEntries } from './archive-listing.js';
import { describeBorgFailure, runBorgList } from './borg-list.js';
import { Journal, journalDir } from './journal.js';
import type { DeltaRecord, MigrationContents, MigrationDatabase, MigrationHeader } from './migration-header.js';
import type { SourcePreflight } from './source-preflight.js';
import {
  buildMigrationHeader,
  buildSourcePlan,
  buildSourceParts,
  describePlanSteps,
  targetTools,
  type SourcePart,
  type SourcePlan,
  type SourceStep,
} from './source-plan.js';
import { buildDeltaRecord, contentsFromListing, toBaseEntries, type BaseMigration } from './cutover.js';
import { scanVolumeMetadata } from './fidelity.js';
import { writeMovedMarker } from './moved-marker.js';
import { confirmCommand, resumeWritesCommand, writePendingCutover } from './paired-cutover.js';
import { oneAtATime, readsBorgRepository, startProducer, type StartedProducer } from './part-producer.js';
import { computeVolumeDelta, type VolumeDeltaStats, type VolumeEntry } from './volume-delta.js';

/** Per part: what moved, how, and how long it took. */
export interface PartReport {
  readonly id: string;
  readonly status: 'sent' | 'reused';
  readonly bytes: number;
  /** Bundle bytes the part took (runs of zeros, e.g. a sparse file's holes, travel as counts); absent for a reused part. */
  readonly wireBytes?: number;
  readonly elapsedMs: number;
  readonly rate: number;
  readonly path: string;
  readonly attempts: number;
  readonly sha256?: string;
}

/** The result of a migration run, as `deploy migrate --json` prints it. */
export interface MigrateReport {
  readonly ok: boolean;
  /** The version of the deploy that ran the migration on the source (`targetReport.deployVersion`: the target's). */
  readonly deployVersion?: string;
  readonly app: string;
  readonly runId: string;
  readonly target: string;
  readonly transport: string;
  readonly archive: string;
  readonly journal: string;
  /** Sessions with the target (1, or more after a transport failure resumed). */
  readonly attempts: number;
  readonly parts: readonly PartReport[];
  /** Bytes written to disk on the source for the transfer (the scp file); 0 when streaming. */
  readonly stagedBytes: number;
  readonly reused?: { readonly fromRun: string; readonly parts: readonly string[] };
  /** The target-side run's own report (verification, rollback, what it kept). */
  readonly targetReport?: TargetReport;
  /** When the target-side run ended without a report (killed, connection lost): the clean-up run there after it. */
  readonly targetRecovery?: RecoverReport;
  /** After a successful migration: the migration archives pruned on this host by the retention (docs/migrate.md). */
  readonly archives?: PruneReport;
  /** A cutover: the write-stop window, the bytes of the delta, what happened to this host's copy. */
  readonly cutover?: CutoverReport;
  /** Pairing mode: the link, the command the new host runs, and whether ffl reported the bundle delivered. */
  readonly pairing?: {
    readonly link?: string;
    readonly command?: string;
    readonly delivered: boolean;
    readonly path?: string;
    readonly pullMs?: number;
  };
  readonly failure?: {
    readonly step: string;
    readonly kind: string;
    readonly code: string;
    readonly message: string;
    readonly hint?: string;
    readonly stage?: string;
  };
  readonly durationMs: number;
}

/** Everything a migration run needs; built by `deploy migrate`. */
export interface SourceRunOptions {
  readonly app: AppFolder;
  readonly manifestText: string;
  readonly source: HostContext;
  readonly localHost: Host;
  /** The target host, reached by the transport (absent in pairing mode: no session with the new host). */
  readonly targetHost?: Host;
  readonly targetName: string;
  /** Runs `deploy` on the target (the check; the target command's argv); absent in pairing mode. */
  readonly targetDeploy?: DeployClient;
  /** Pairing mode: the bundle is shared with ffl and the new host's operator pulls it (no SSH to it). */
  readonly pairing?: PairingOptions;
  readonly transport: Transport;
  readonly transportOptions: TransportOptions;
  readonly runId: string;
  readonly newArchive: string;
  readonly withHistory: boolean;
  readonly replace: boolean;
  readonly resume: boolean;
  readonly stallSeconds: number;
  /** How long a transfer may take before its first byte is taken (default DEFAULT_READINESS_SECONDS; pairing: its wait). */
  readonly readinessSeconds?: number;
  readonly retries: number;
  /** Migration archives to keep on this host after a successful run (the app's migrate.keep_archives, else the config's). */
  readonly keepArchives: number;
  readonly preflight: SourcePreflight;
  readonly deployVersion: string;
  /** The `deploy` command on this host (building blocks) and the config path. */
  readonly deployCommand: readonly string[];
  readonly configPath?: string;
  readonly bus: EventBus;
  readonly journal: Journal;
  readonly signal?: AbortSignal;
  /** A cutover (`deploy cutover`): only what changed since a finished migration, with writes stopped here. */
  readonly cutover?: CutoverOptions;
}

/** What a cutover run needs beyond a migration's options. */
export interface CutoverOptions {
  /** The finished migration whose copy the target holds. */
  readonly base: BaseMigration;
  /** Each volume of the base archive with SHA-256 (listed before writes stop: the base never changes). */
  readonly baseListings: Readonly<Record<string, readonly VolumeEntry[]>>;
  /** How writes stop here: the app's bin/maintenance on (and off on a failure), or bin/stop (and start). */
  readonly stopWrites: 'maintenance' | 'stop';
  /** Apply the delta even when the target's copy differs from the base. */
  readonly force: boolean;
  /** Pairing mode: the code the new host shows on success, typed here to mark the copy moved (decision 0011). */
  readonly confirmCode?: string;
}

/** What a cutover adds to the report. */
export interface CutoverReport {
  readonly baseArchive: string;
  readonly baseRunId: string;
  readonly stoppedWith: 'maintenance' | 'stop';
  /** From the start of stopping writes here to the target saying the app passed its health checks there (or to this host serving again). */
  readonly writeStopMs?: number;
  /** Bundle bytes of the volume deltas and of the database parts. */
  readonly deltaBytes: number;
  readonly databaseBytes: number;
  /** Per volume: entries added, changed, removed, metadata-only, and the content bytes sent. */
  readonly volumes: Readonly<Record<string, DeltaRecord['counts'] & { readonly bytes: number }>>;
  /** After a failure: whether this host serves again (maintenance off / started). */
  readonly sourceResumed?: boolean;
  /** After success: the copy here is marked as moved. */
  readonly moved?: boolean;
  /**
   * Pairing mode, once the bundle may have reached the new host: this host stays stopped, the cutover
   * pending, until its operator runs one of these (the new host's report says which).
   */
  readonly awaitingVerdict?: { readonly confirm: string; readonly resume: string };
}

/** How a pairing run hands out its link and code, and how long it waits for the new host. */
export interface PairingOptions {
  /** How long the share waits for the new host to start pulling; then it stops and cleans up. */
  readonly waitSeconds: number;
  /**
   * Hands the pickup code to the operator - on this terminal or in a 0600 file the operator named,
   * never through the event bus (its listeners write logs). Called once the link exists.
   */
  deliverCode(code: Secret, link: string, command: string): Promise<void>;
}

/** The target of a session-mode run: its host and how `deploy` runs there. */
function hostTarget(options: SourceRunOptions): { host: Host; deploy: DeployClient } {
  if (options.targetHost === undefined || options.targetDeploy === undefined)
    throw new DeployError('internal', 'INTERNAL', 'a session with the target needs its host (not in pairing mode)');
  return { host: options.targetHost, deploy: options.targetDeploy };
}

/** A target-side run's answer to the header: it can take the app (with a resume offer), or why not. */
interface Acceptance {
  readonly accepted: boolean;
  readonly resumable?: TargetReport['resumable'];
  readonly report?: TargetReport;
}

/** Reads the target command's JSON lines into events, re-publishes them here, and keeps what the run needs. */
class TargetSession {
  readonly channel: SenderChannel;
  readonly #bus: EventBus;
  readonly #app: string;
  readonly #target: string;
  #accepted!: (acceptance: Acceptance) => void;
  readonly accepted: Promise<Acceptance>;
  report: TargetReport | undefined;
  readonly finished: Promise<void>;
  path: StreamPath | undefined;
  #onReport: ((report: TargetReport) => void) | undefined;
  readonly #stderr: string[] = [];
  readonly openedAt = Date.now();
  /** When the receiving side first took bytes: at once for a pipe, when a receiver connected for ffl. */
  receivingSince: number | undefined;
  /** When the target's final report arrived. */
  reportAt: number | undefined;
  /** When the target said the app passed its health checks there (before its clean-up and report). */
  healthyAt: number | undefined;

  constructor(channel: SenderChannel, bus: EventBus, app: string, target: string) {
    this.channel = channel;
    if (channel.connected === undefined) this.receivingSince = this.openedAt;
    else void channel.connected.then(() => (this.receivingSince ??= Date.now()));
    this.#bus = bus;
    this.#app = app;
    this.#target = target;
    this.path = channel.path;
    this.accepted = new Promise((resolve) => (this.#accepted = resolve));
    channel.errors.on('data', (chunk: Buffer) => {
      this.#stderr.push(chunk.toString('utf8'));
      if (this.#stderr.length > 64) this.#stderr.splice(0, this.#stderr.length - 64);
    });
    const lines = readLines(channel.output, (line) => this.#onLine(line));
    this.finished = (async () => {
      await channel.exited;
      await within(lines, 1000);
      this.#accepted({ accepted: false, ...(this.report ? { report: this.report } : {}) });
    })();
  }

  /** The session as the part sender sees it. */
  outlet(): PartOutlet {
    return {
      sink: this.channel.sink,
      openedAt: this.openedAt,
      receivingSince: () => this.receivingSince,
      path: () => this.path,
      abort: () => this.channel.abort(),
    };
  }

  /** Called once with the target's final report (to stop sending when it failed). */
  onReport(listener: (report: TargetReport) => void): void {
    this.#onReport = listener;
  }

  /** The last lines the target command printed on stderr (when it died without a report). */
  stderrTail(): string {
    return this.#stderr.join('').trim().split('\n').slice(-6).join('\n');
  }

  #onLine(line: string): void {
    const event = parseDeployEvent(line, DEPLOY_EVENT_TYPES);
    if (event === undefined) return;
    if (!isForeignEvent(event)) {
      if (event.type === 'receive.healthy') this.healthyAt ??= Date.now();
      if (event.type === 'receive.accepted')
        this.#accepted({ accepted: true, ...(event.data.resumable ? { resumable: event.data.resumable } : {}) });
      if (event.type === 'receive.report' && event.data.report !== undefined) {
        this.report = event.data.report;
        this.reportAt = Date.now();
        this.#accepted({ accepted: false, report: this.report });
        this.#onReport?.(this.report);
      }
    }
    this.#republish(event);
  }

  /** The target's events appear here as `<app>@<target>`; the final report only as data. */
  #republish(event: BusEvent): void {
    this.#bus.relay(event, {
      level: event.type === 'receive.report' ? 'debug' : event.level,
      app: `${this.#app}@${this.#target}`,
      host: this.#target,
    });
  }
}

/** A failure of the source run: its kind and code, the step, and whether a new session may resume it. */
class SourceFailure extends DeployError {
  readonly step: string;
  readonly retryable: boolean;
  readonly stage: string | undefined;
  constructor(error: DeployError, step: string, retryable: boolean, stage?: string) {
    super(error.kind, error.code, error.message, {
      ...(error.hint ? { hint: error.hint } : {}),
      details: { ...error.details },
    });
    this.step = step;
    this.retryable = retryable;
    this.stage = stage;
  }
}

/** A temp path of a migration run on the source (`<tmp>/dk-<run id>-<what>`): a later run finds it by the run id. */
export function runTempPath(runId: string, what: string): string {
  return join(tmpdir(), `dk-${runId}-${what}`);
}

/**
 * Cleans up after a migration run of this app that was killed on this host (its lock was stale):
 * its processes (found by DEPLOY_RUN_ID and DEPLOY_ROLE=source, e.g. an ssh master) and its temp
 * dirs (named with its run id). Returns what it did, for the run record.
 */
export async function recoverSourceRun(runId: string): Promise<string[]> {
  const done: string[] = [];
  const stopped = await stopProcesses(findProcessesByEnvironment({ DEPLOY_RUN_ID: runId, DEPLOY_ROLE: 'source' }));
  if (stopped.length > 0) done.push(`stopped ${stopped.length} process(es)`);
  // Its temp dirs are in TMPDIR; its ssh control dir may be in /tmp or /run/user/<uid> (a long TMPDIR).
  for (const parent of new Set([tmpdir(), ...controlDirParents()])) {
    for (const name of await readdir(parent).catch(() => [] as string[])) {
      if (!name.startsWith(`dk-${runId}-`)) continue;
      // An ssh master's process title hides its environment: it is found by its control dir.
      const masters = await stopProcesses(findSshMasters(join(parent, name)));
      if (masters.length > 0) done.push(`stopped the ssh master of ${join(parent, name)}`);
      await rm(join(parent, name), { recursive: true, force: true });
      done.push(`removed ${join(parent, name)}`);
    }
  }
  return done;
}

/** The target command: `deploy receive <app> --from X --jsonl [--replace] [--delete-after]`. */
function targetArgv(options: SourceRunOptions, from: string, deleteAfter: boolean): string[] {
  // Pairing: what the new host's operator types (its own deploy, its own config).
  if (options.pairing) return ['deploy', 'receive', options.app.name, '--from', from];
  return hostTarget(options).deploy.argv([
    'receive',
    options.app.name,
    '--from',
    from,
    '--jsonl',
    ...(options.replace ? ['--replace'] : []),
    ...(options.cutover?.force ? ['--force'] : []),
    ...(deleteAfter ? ['--delete-after'] : []),
  ]);
}

/** The `--check` run asking the target whether it can take the app (the header on its stdin). */
export function buildCheckArgv(targetDeploy: DeployClient, app: string, replace: boolean): string[] {
  return targetDeploy.argv([
    'receive',
    app,
    '--from',
    '-',
    '--check',
    '--json',
    '--quiet',
    ...(replace ? ['--replace'] : []),
  ]);
}

/** The failure of a target report, as ours. */
function fromTargetReport(report: TargetReport, target: string, interrupted: boolean): SourceFailure {
  const failure = report.failure!;
  return new SourceFailure(
    new DeployError(
      failure.kind as DeployError['kind'],
      failure.code,
      `${target}: ${failure.message}`,
      failure.hint ? { hint: failure.hint } : {},
    ),
    `target:${failure.step}`,
    failure.retryable && !interrupted,
    failure.stage,
  );
}

/** Waits for a promise, but at most `ms` (the timer does not keep the process alive). */
async function within<T>(promise: Promise<T> | undefined, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, ms, undefined);
  });
  try {
    return await Promise.race([promise ?? Promise.resolve(undefined), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** An archive the run uses without a new backup, and why. */
interface ArchiveInUse {
  readonly name: string;
  readonly rowCounts: Record<string, number> | undefined;
  /** The run that made it (this one, or the one a resume continues). */
  readonly madeBy: string;
}

/**
 * Runs a migration from this host: lock, the target-side run started with the bundle's header (it
 * refuses in seconds when it cannot take the app), fresh backup, the contents the target verifies
 * against, every part through one transfer, the trailer - then the target commits, installs, starts
 * and checks the app and reports. A transport failure starts a new session that resumes after the
 * parts the target kept verified. Never throws for a failed migration; the report says it.
 */
export async function runSourceMigration(
  options: SourceRunOptions,
): Promise<{ report: MigrateReport; plan?: SourcePlan }> {
  return new SourceRun(options).run();
}

/**
 * What a migration would do, changing nothing: the source's steps with their commands, and the
 * target's answer to the header (its facts, its plan, what it keeps for a resume) from a `--check`.
 */
export async function planMigration(options: SourceRunOptions): Promise<{ plan: SourcePlan; target?: TargetReport }> {
  return new SourceRun(options).plan();
}

class SourceRun {
  readonly #options: SourceRunOptions;
  readonly #started = Date.now();
  readonly #parts: PartReport[] = [];
  readonly #sourceParts: SourcePart[];
  #archive: ArchiveInUse | undefined;
  #plan: SourcePlan | undefined;
  #reused: MigrateReport['reused'];
  #stagedBytes = 0;
  #targetReport: TargetReport | undefined;
  #targetRecovery: RecoverReport | undefined;
  #attempts = 0;
  #current = 'lock';
  #pairing: MigrateReport['pairing'];
  #pruned: PruneReport | undefined;
  /** A cutover: the borg patterns of each delta part (known once the final archive is listed), by part id. */
  readonly #deltaInputs = new Map<string, string>();
  readonly #deltaCounts: Record<string, DeltaRecord['counts'] & { bytes: number }> = {};
  /** A cutover: when this host stopped taking writes (undefined: not stopped), and whether it serves again. */
  #writesStoppedAt: number | undefined;
  #writeStopEndedAt: number | undefined;
  #sourceResumed: boolean | undefined;
  #moved = false;
  /** A paired cutover whose trailer went to ffl: the new host may apply it, so this host never resumes on its own. */
  #holdWrites = false;
  #awaitingVerdict = false;

  constructor(options: SourceRunOptions) {
    this.#options = options;
    if (options.pairing) this.#pairing = { delivered: false };
    this.#sourceParts = buildSourceParts({
      app: options.app,
      source: options.source,
      ...(options.preflight.engine ? { engine: options.preflight.engine } : {}),
      archive: options.newArchive,
      withHistory: options.withHistory,
      borgEnv: options.preflight.borgEnv,
      archiveHasDump: options.preflight.archiveHasDump,
      deployCommand: options.deployCommand,
      ...(options.configPath ? { configPath: options.configPath } : {}),
      estimates: options.preflight.estimates,
      ...(options.cutover ? { cutover: true } : {}),
    });
  }

  async plan(): Promise<{ plan: SourcePlan; target?: TargetReport }> {
    const options = this.#options;
    // Pairing: nobody to ask; the new host plans its side when it reads the header.
    if (options.pairing) return { plan: this.#planFor(options.runId, options.newArchive, undefined, undefined) };
    const checkArgv = buildCheckArgv(hostTarget(options).deploy, options.app.name, options.replace);
    const acceptance = await checkTarget(options, this.#header(options.runId), checkArgv);
    const offered = acceptance.accepted ? await this.#resumable(acceptance.resumable) : undefined;
    const resume =
      offered && acceptance.resumable
        ? { fromRun: acceptance.resumable.runId, parts: acceptance.resumable.parts }
        : undefined;
    return {
      plan: this.#planFor(options.runId, offered?.name ?? options.newArchive, offered?.madeBy, resume),
      target: acceptance.report!,
    };
  }

  /** The bundle header of a session of this run. */
  #header(runId: string): MigrationHeader {
    const options = this.#options;
    const { app } = options;
    const engine = options.preflight.engine;
    const database: MigrationDatabase | undefined =
      engine && app.manifest.database.name
        ? {
            engine: engine.kind,
            name: app.manifest.database.name,
            roles: app.manifest.database.roles ?? [],
            bytes: options.preflight.databaseBytes,
          }
        : undefined;
    return buildMigrationHeader({
      app,
      manifestText: options.manifestText,
      runId,
      source: options.source,
      deployVersion: options.deployVersion,
      parts: this.#sourceParts,
      ...(database ? { database } : {}),
      tools: targetTools(this.#sourceParts, engine, options.preflight.fidelity),
      withHistory: options.withHistory,
      stallSeconds: options.stallSeconds,
      ...(options.pairing ? { pairing: true } : {}),
      targetPlan: [],
      // A dump-file engine holds the dump as a file until the commit restores it: both for a while.
      ...(engine?.staging.kind === 'dump-file' ? { heldBytes: options.preflight.estimates.database ?? 0 } : {}),
      ...(options.cutover
        ? {
            cutover: {
              baseArchive: options.cutover.base.archive,
              baseRunId: options.cutover.base.runId,
              volumes: Object.fromEntries(
                Object.entries(options.cutover.baseListings).map(([name, listing]) => [
                  name,
                  { base: toBaseEntries(listing) },
                ]),
              ),
              ...(options.pairing && options.cutover.confirmCode
                ? { pairing: { confirmCode: options.cutover.confirmCode, stoppedWith: options.cutover.stopWrites } }
                : {}),
            },
          }
        : {}),
    });
  }

  /** The source plan of a session: which archive it uses (a new one, or one that exists) and which parts it skips. */
  #planFor(
    runId: string,
    archive: string,
    reuseArchiveOf: string | undefined,
    resume: SourcePlanResume | undefined,
  ): SourcePlan {
    const options = this.#options;
    return buildSourcePlan({
      app: options.app,
      runId,
      archive,
      transport: options.transport.name,
      target: options.targetName,
      targetArgv: targetArgv(options, options.pairing ? '<link>' : '-', false),
      checkArgv: options.pairing ? [] : buildCheckArgv(hostTarget(options).deploy, options.app.name, options.replace),
      interactive: options.transport.interactive && !options.pairing,
      ...(options.pairing
        ? {
            pairing: {
              shareArgv: buildFflShareArgv({
                binary: 'ffl',
                hookFile: `${runTempPath(runId, 'pair')}-*/ffl-hook.jsonl`,
                jsonFile: `${runTempPath(runId, 'pair')}-*/ffl-share.json`,
                name: `${options.app.name}.dkbundle`,
              }).map(String),
            },
          }
        : {}),
      parts: this.#sourceParts.map((part) =>
        part.part.fromArchive
          ? {
              ...part,
              producer: part.producer.map((word) => (word === `::${options.newArchive}` ? `::${archive}` : word)),
            }
          : part,
      ),
      borgEnv: options.preflight.borgEnv,
      ...(reuseArchiveOf ? { reuseArchiveOf } : {}),
      ...(resume ? { resume } : {}),
      ...(options.cutover
        ? {
            cutover: {
              stopArgv: stopWritesArgv(options.app, options.cutover.stopWrites, 'stop'),
              baseArchive: options.cutover.base.archive,
              stopWrites: options.cutover.stopWrites,
            },
          }
        : {}),
    });
  }

  async run(): Promise<{ report: MigrateReport; plan?: SourcePlan }> {
    const { app, journal, bus } = this.#options;
    // Every process this run starts carries its id and role (leftovers are found by run id).
    process.env.DEPLOY_RUN_ID = this.#options.runId;
    process.env.DEPLOY_ROLE = 'source';
    let lock: AppLock | undefined;
    try {
      let recovered: string[] = [];
      lock = await this.#step(
        { id: 'lock', kind: 'lock', title: `lock ${app.name} on this host`, argv: [] },
        async () => {
          const taken = await acquireAppLock({
            stateDir: this.#options.source.stateDir,
            app: app.name,
            runId: this.#options.runId,
            command: `deploy migrate ${app.name} ${this.#options.pairing ? '--pair' : `--to ${this.#options.targetName}`}`,
          });
          // A stale lock is a run that was killed here: its processes and temp dirs go now.
          if (taken.replacedStale) {
            recovered = await recoverSourceRun(taken.replacedStale.runId);
            if (recovered.length > 0)
              bus.emit('migrate.recovered', {
                app: app.name,
                message: `killed run ${taken.replacedStale.runId} on this host: ${recovered.join(', ')}`,
              });
          }
          return taken;
        },
        () => (recovered.length > 0 ? { recovered } : {}),
      );
      if (this.#options.pairing) {
        const failure = await this.#pairSession(this.#options.pairing);
        if (failure) throw failure;
        await this.#finish();
        return { report: this.#report(), ...(this.#plan ? { plan: this.#plan } : {}) };
      }
      for (;;) {
        this.#attempts += 1;
        const failure = await this.#attempt(this.#attempts);
        if (failure === undefined) break;
        if (!failure.retryable || this.#attempts > this.#options.retries || this.#options.signal?.aborted) {
          if (failure.stage === 'transport') await this.#recoverTarget();
          throw failure;
        }
        await journal.write({
          step: failure.step,
          status: 'failed',
          detail: { code: failure.code, message: failure.message, retry: this.#attempts + 1 },
        });
        bus.emit('migrate.retry', {
          app: app.name,
          level: 'warn',
          message: `session ${this.#attempts} with ${this.#options.targetName} failed (${failure.message}); session ${this.#attempts + 1} resumes after the parts it verified`,
        });
      }
      await this.#finish();
      return { report: this.#report(), ...(this.#plan ? { plan: this.#plan } : {}) };
    } catch (error) {
      const failure =
        error instanceof SourceFailure
          ? error
          : new SourceFailure(
              error instanceof DeployError
                ? error
                : new DeployError('internal', 'INTERNAL', error instanceof Error ? error.message : String(error)),
              this.#current,
              false,
            );
      await journal.write({
        step: failure.step,
        status: 'failed',
        detail: { code: failure.code, message: failure.message },
      });
      if (this.#writesStoppedAt !== undefined && !this.#holdWrites) await this.#resumeWrites();
      else if (this.#holdWrites) this.#holdForVerdict(failure);
      bus.emit('migrate.failed', {
        app: app.name,
        level: 'error',
        message: `[${failure.step}] ${failure.message}${failure.hint ? `\n  next: ${failure.hint}` : ''}`,
        data: { step: failure.step, code: failure.code },
      });
      return { report: this.#report(failure), ...(this.#plan ? { plan: this.#plan } : {}) };
    } finally {
      await lock?.release();
    }
  }

  /**
   * After a successful run, still under the app's lock: records which archive this finished
   * migration to its target used (the retention keeps it, a later cutover reads it), then prunes
   * the migration archives beyond the retention. A failed prune is a warning, not a failed migration.
   */
  async #finish(): Promise<void> {
    const options = this.#options;
    const { app, bus } = options;
    const archive = this.#archive?.name ?? options.newArchive;
    // A paired cutover is finished by its operator (--confirm), not by this run: it cannot hear the new host.
    if (options.cutover && options.pairing) {
      await this.#step(this.#plan!.steps.find((candidate) => candidate.id === 'await-verdict')!, async () =>
        this.#holdForVerdict(),
      );
      return;
    }
    await options.journal.write({
      step: 'finished',
      status: 'ok',
      detail: { target: options.targetName, archive, ...(options.cutover ? { cutover: true } : {}) },
    });
    if (options.cutover) {
      const step = this.#plan?.steps.find((candidate) => candidate.id === 'mark-moved');
      if (step) {
        await this.#step(step, () =>
          writeMovedMarker(options.source.stateDir, app.name, {
            to: options.targetName,
            runId: options.runId,
            at: new Date().toISOString(),
            archive,
          }),
        );
        this.#moved = true;
        bus.emit('cutover.moved', {
          app: app.name,
          message: `${app.name} here is marked as moved to ${options.targetName}: deploy start refuses it without --force${options.cutover.stopWrites === 'maintenance' ? '; it still shows its maintenance page until you stop it' : ''}`,
        });
      }
    }
    this.#pruned = await pruneMigrationArchives({
      host: options.localHost,
      borgEnv: options.preflight.borgEnv,
      stateDir: options.source.stateDir,
      app: app.name,
      keep: options.keepArchives,
    });
    const pruned = this.#pruned;
    await options.journal.write({ step: 'prune', status: pruned.error ? 'failed' : 'ok', detail: { ...pruned } });
    if (pruned.error)
      bus.emit('migrate.pruned', {
        app: app.name,
        level: 'warn',
        message: `could not prune old migration archives (${pruned.error}); the next migration tries again`,
        data: { ...pruned },
      });
    else if (pruned.pruned.length > 0)
      bus.emit('migrate.pruned', {
        app: app.name,
        message: `pruned ${pruned.pruned.length} old migration archive(s) (keeping ${pruned.keep}${pruned.protected.length > 0 ? ` and ${pruned.protected.join(', ')} of the newest finished migration to a target` : ''}): ${pruned.pruned.join(', ')}`,
        data: { ...pruned },
      });
  }

  #report(failure?: SourceFailure): MigrateReport {
    const options = this.#options;
    return {
      ok: failure === undefined,
      app: options.app.name,
      runId: options.runId,
      target: options.targetName,
      transport: options.transport.name,
      archive: this.#archive?.name ?? options.newArchive,
      journal: options.journal.path,
      attempts: this.#attempts,
      parts: this.#parts,
      stagedBytes: this.#stagedBytes,
      ...(this.#reused ? { reused: this.#reused } : {}),
      ...(this.#targetReport ? { targetReport: this.#targetReport } : {}),
      ...(this.#targetRecovery ? { targetRecovery: this.#targetRecovery } : {}),
      ...(this.#pruned ? { archives: this.#pruned } : {}),
      ...(this.#pairing ? { pairing: this.#pairing } : {}),
      ...(options.cutover ? { cutover: this.#cutoverReport() } : {}),
      ...(failure
        ? {
            failure: {
              step: failure.step,
              kind: failure.kind,
              code: failure.code,
              message: failure.message,
              ...(failure.hint ? { hint: failure.hint } : {}),
              ...(failure.stage ? { stage: failure.stage } : {}),
            },
          }
        : {}),
      durationMs: Date.now() - this.#started,
      deployVersion: options.deployVersion,
    };
  }

  #cutoverReport(): CutoverReport {
    const cutover = this.#options.cutover!;
    const sum = (predicate: (id: string) => boolean): number =>
      this.#parts
        .filter((part) => predicate(part.id))
        .reduce((total, part) => total + (part.wireBytes ?? part.bytes), 0);
    const ended = this.#writeStopEndedAt;
    return {
      baseArchive: cutover.base.archive,
      baseRunId: cutover.base.runId,
      stoppedWith: cutover.stopWrites,
      ...(this.#writesStoppedAt !== undefined && ended !== undefined
        ? { writeStopMs: ended - this.#writesStoppedAt }
        : {}),
      deltaBytes: sum((id) => id.startsWith('delta:')),
      databaseBytes: sum((id) => !id.startsWith('delta:')),
      volumes: this.#deltaCounts,
      ...(this.#sourceResumed !== undefined ? { sourceResumed: this.#sourceResumed } : {}),
      ...(this.#moved ? { moved: true } : {}),
      ...(this.#awaitingVerdict
        ? {
            awaitingVerdict: {
              confirm: confirmCommand(this.#options.app.name, '<code the new host shows>'),
              resume: resumeWritesCommand(this.#options.app.name, cutover.stopWrites),
            },
          }
        : {}),
    };
  }

  /**
   * A paired cutover from the moment its trailer went to ffl: the new host may apply it, so this host
   * stays stopped (the pending mark was written before the trailer) and says what its operator runs next.
   */
  #holdForVerdict(failure?: SourceFailure): void {
    const { app, bus, cutover } = this.#options;
    this.#awaitingVerdict = true;
    this.#sourceResumed = false;
    const resume = resumeWritesCommand(app.name, cutover!.stopWrites);
    bus.emit('cutover.pending', {
      app: app.name,
      level: failure ? 'warn' : 'info',
      message: `${app.name} stays stopped here: ${failure ? 'the bundle may have reached the new host, so ' : ''}only the new host knows whether the cutover took. Its deploy receive ends by saying what to run here:\n    on success:     ${confirmCommand(app.name, '<code>')}   (marks ${app.name} here as moved)\n    on a rollback:  ${resume}   (serves here again; the cutover can then not be confirmed)`,
    });
  }

  /** A cutover: stops this host taking writes (bin/maintenance on, else bin/stop); the window starts now. */
  async #stopWrites(step: SourceStep): Promise<void> {
    const options = this.#options;
    const { app, bus } = options;
    const how = options.cutover!.stopWrites;
    await this.#step(step, async () => {
      this.#writesStoppedAt = Date.now();
      const result = await runPhase({
        app,
        phase: how,
        ...(how === 'maintenance' ? { args: ['on'] } : {}),
        host: options.localHost,
        bus,
        context: { runId: options.runId, role: 'source', host: options.source },
      });
      if (result.status === 'failed') {
        throw new SourceFailure(
          new ScriptError(
            'SOURCE_STOP_FAILED',
            `${app.name}:${how}${how === 'maintenance' ? ' on' : ''} failed here: ${result.reason ?? ''}`,
            {
              details: { stderrTail: result.stderrTail },
              hint: 'See its output above; the cutover did not start (this host is being put back to serving).',
            },
          ),
          step.id,
          false,
          'source',
        );
      }
      bus.emit('cutover.stopped', {
        app: app.name,
        message: `${app.name} takes no writes here from now (${how === 'maintenance' ? 'bin/maintenance on' : 'bin/stop'}); the write-stop window runs`,
      });
    });
  }

  /**
   * A paired cutover about to send its trailer: the pending mark (with the confirmation code) and a
   * run record line, before the new host can have the whole bundle. From here only the operator ends it.
   */
  async #markPending(): Promise<void> {
    const options = this.#options;
    const cutover = options.cutover!;
    const archive = this.#archive?.name ?? options.newArchive;
    await writePendingCutover(options.source.stateDir, options.app.name, {
      runId: options.runId,
      to: options.targetName,
      archive,
      baseArchive: cutover.base.archive,
      stoppedWith: cutover.stopWrites,
      stoppedAt: new Date(this.#writesStoppedAt ?? Date.now()).toISOString(),
      confirmCode: cutover.confirmCode ?? '',
    });
    this.#holdWrites = true;
    await options.journal.write({
      step: 'pending',
      status: 'ok',
      detail: {
        target: options.targetName,
        archive,
        baseArchive: cutover.base.archive,
        stoppedWith: cutover.stopWrites,
      },
    });
  }

  /** After a failed cutover: this host serves again (bin/maintenance off, else bin/start); the window ends. */
  async #resumeWrites(): Promise<void> {
    const options = this.#options;
    const { app, bus } = options;
    const how = options.cutover!.stopWrites;
    const result = await runPhase({
      app,
      phase: how === 'maintenance' ? 'maintenance' : 'start',
      ...(how === 'maintenance' ? { args: ['off'] } : {}),
      host: options.localHost,
      bus,
      context: { runId: options.runId, role: 'source', host: options.source },
    });
    this.#writeStopEndedAt = Date.now();
    this.#sourceResumed = result.status !== 'failed';
    await options.journal.write({
      step: 'resume-writes',
      status: result.status === 'failed' ? 'failed' : 'ok',
      detail: { how, reason: result.reason },
    });
    if (result.status === 'failed')
      bus.emit('cutover.resumed', {
        app: app.name,
        level: 'error',
        message: `${app.name} did NOT serve again here: ${result.reason ?? ''}; start it by hand: ${how === 'maintenance' ? `deploy maintenance ${app.name} off` : `deploy start ${app.name}`}`,
      });
    else
      bus.emit('cutover.resumed', {
        app: app.name,
        message: `${app.name} serves here again (${how === 'maintenance' ? 'bin/maintenance off' : 'bin/start'}); the target was rolled back`,
      });
  }

  /** Runs one step of the plan: journaled with its argv, announced; Ctrl+C interrupts it. */
  async #step<T>(sourceStep: SourceStep, work: () => Promise<T>, detail?: () => Record<string, unknown>): Promise<T> {
    const { journal, bus, app, signal } = this.#options;
    this.#current = sourceStep.id;
    bus.emit('migrate.step', {
      app: app.name,
      message: `[${sourceStep.id}] ${sourceStep.title}`,
      data: { step: sourceStep.id },
    });
    await journal.write({ step: sourceStep.id, status: 'start', argv: displayArgv(sourceStep.argv) });
    let onAbort: (() => void) | undefined;
    const interrupted = new Promise<never>((_resolve, reject) => {
      onAbort = (): void => reject(new DeployError('usage', 'INTERRUPTED', 'interrupted (Ctrl+C)'));
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
    interrupted.catch(() => undefined);
    const stepStarted = Date.now();
    try {
      const result = await Promise.race([work(), interrupted]);
      await journal.write({
        step: sourceStep.id,
        status: 'ok',
        detail: { ms: Date.now() - stepStarted, ...detail?.() },
      });
      return result;
    } finally {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  /** The backup step: a fresh archive and the row counts right after it (or the archive in use). */
  async #backup(backup: SourceStep, database: MigrationDatabase | undefined): Promise<ArchiveInUse> {
    const options = this.#options;
    const { app, bus } = options;
    const engine = options.preflight.engine;
    await this.#step(
      backup,
      async () => {
        if (backup.kind === 'reuse-archive') return;
        const result = await runPhase({
          app,
          phase: 'backup',
          host: options.localHost,
          bus,
          context: { runId: options.runId, role: 'source', host: options.source, archive: options.newArchive },
          ...(options.signal ? { signal: options.signal } : {}),
        });
        if (result.status === 'failed') {
          throw new SourceFailure(
            new ScriptError('SOURCE_BACKUP_FAILED', `${app.name}:backup failed on the source: ${result.reason ?? ''}`, {
              details: { stderrTail: result.stderrTail },
              hint: 'Fix the backup (see its output above); nothing was changed on the target.',
            }),
            backup.id,
            false,
            'source',
          );
        }
        const rowCounts =
          engine && database
            ? await engine.countRows(createSqlClient(options.localHost, engine.clientArgv), database.name)
            : undefined;
        this.#archive = { name: options.newArchive, rowCounts, madeBy: options.runId };
      },
      // What the archive holds, as near as we can see it: the target compares with these; a resume finds them here.
      () => ({
        archive: this.#archive?.name,
        ...(this.#archive?.rowCounts ? { sourceRowsAtBackup: this.#archive.rowCounts } : {}),
      }),
    );
    return this.#archive!;
  }

  /** The archive a resume may reuse, with the row counts taken right after its backup; undefined when it may not. */
  async #resumable(offer: TargetReport['resumable']): Promise<ArchiveInUse | undefined> {
    const options = this.#options;
    if (offer === undefined || !options.resume) return undefined;
    if (this.#archive !== undefined) return offer.archive === this.#archive.name ? this.#archive : undefined;
    // A locked repository throws (BORG_LOCKED): it does not mean the archive is gone.
    const listed = await runBorgList(
      options.localHost,
      options.preflight.borgEnv,
      ['--short', `::${offer.archive}`, '--last', '1'],
      'the resume check',
    );
    if (listed.exitCode !== 0) return undefined;
    const rowCounts = await readRowCountsOfArchive(options, offer.archive);
    if (options.preflight.engine !== undefined && rowCounts === undefined) return undefined;
    return { name: offer.archive, rowCounts, madeBy: offer.runId };
  }

  /**
   * Pairing: the whole bundle in one ffl share that the new host's operator pulls with the link and
   * the pickup code (no session with it: it verifies and reports on its own screen). Backup first,
   * so the bytes flow without a pause once the new host connects; the link stays open for the
   * pairing's wait. Returns its failure instead of throwing it.
   */
  async #pairSession(pairing: PairingOptions): Promise<SourceFailure | undefined> {
    const options = this.#options;
    const { app, bus } = options;
    this.#attempts = 1;
    const dir = await mkdtemp(`${runTempPath(options.runId, 'pair')}-`);
    const header = this.#header(options.runId);
    const plan = this.#planFor(options.runId, options.newArchive, undefined, undefined);
    this.#plan = plan;
    await options.journal.write({
      step: 'plan',
      status: 'ok',
      detail: { steps: plan.steps.map((s) => ({ id: s.id, argv: displayArgv(s.argv) })) },
    });
    const stepOf = (id: string): SourceStep => plan.steps.find((s) => s.id === id)!;
    const waitMs = pairing.waitSeconds * 1000;
    let share: FflShare | undefined;
    let writer: BundleWriter | undefined;
    let producer: HostProcess | undefined;
    let path: string | undefined;
    let connectedAt: number | undefined;
    let notPickedUp = false;
    let waitTimer: NodeJS.Timeout | undefined;
    let keepalive: NodeJS.Timeout | undefined;
    // A cutover shares before it stops writes: the wait for the new host's operator costs no downtime (decision 0011).
    const cutover = options.cutover;
    let pickedUp: ((connected: boolean) => void) | undefined;
    const picked = new Promise<boolean>((resolve) => (pickedUp = resolve));
    const notPickedUpFailure = (): SourceFailure =>
      new SourceFailure(
        new TransportError(
          'PAIRING_NOT_PICKED_UP',
          `nobody started pulling the bundle within ${formatSeconds(pairing.waitSeconds)} (a wrong pickup code is refused on the new host and never reaches here)`,
          {
            hint: `Start a new pairing (deploy ${options.cutover ? 'cutover' : 'migrate'} ${app.name} --pair) and run the printed command on the new host in time; --wait sets how long the link stays open.${options.cutover ? ` Writes never stopped here.` : ''}`,
          },
        ),
        this.#current,
        false,
        'transport',
      );
    try {
      let contents: MigrationContents | undefined;
      if (!cutover) {
        const archive = await this.#backup(stepOf('backup'), header.database);
        contents = await this.#step(stepOf('contents'), () =>
          buildContents(options, archive.name, archive.rowCounts, undefined, dir, this.#deltaInputs, this.#deltaCounts),
        );
      }
      const started = await this.#step(stepOf('share'), async () => {
        const secrets: Secret[] = [];
        const opened = await startFflShare({
          host: options.localHost,
          dir,
          name: `${app.name}.dkbundle`,
          ...(options.transportOptions.ffl ? { ffl: options.transportOptions.ffl } : {}),
          secrets,
          emit: (event) => {
            if (event.kind === 'path' && path !== event.path) {
              path = event.path;
              bus.emit('migrate.path', {
                app: app.name,
                message: `the new host pulls over the ${event.path === 'direct' ? 'direct path (WebRTC, peer to peer)' : `${event.path} path (through ffl's relay)`}`,
                data: { path: event.path },
              });
            }
            bus.emit(`stream.${event.kind}`, {
              app: app.name,
              level: 'debug',
              message: event.kind,
              data: { ...event },
            });
          },
          report: (failure) =>
            bus.emit('stream.failed', {
              app: app.name,
              level: 'debug',
              message: failure.message,
              data: { ...failure },
            }),
        });
        share = opened;
        const link = await opened.link;
        const code = opened.pickupCode();
        if (code === undefined)
          throw new DeployError(
            'internal',
            'FFL_NO_PICKUP_CODE',
            'ffl printed its link but no pickup code (it was started with --recipient-auth pickup)',
          );
        const command = targetArgv(options, link, false).join(' ');
        bus.emit('migrate.pair', {
          app: app.name,
          message: `on the new host, run:\n\n    ${command}\n\n  and type the pickup code when it asks (the code is shown only on this terminal). The link stays open for ${formatSeconds(pairing.waitSeconds)}.`,
          data: { link, command, waitSeconds: pairing.waitSeconds },
        });
        await pairing.deliverCode(code, link, command);
        this.#pairing = { link, command, delivered: false };
        void opened.connected.then(() => {
          connectedAt = Date.now();
          pickedUp?.(true);
          bus.emit('migrate.paired', {
            app: app.name,
            message: 'the new host is pulling the bundle; its verification shows on its own screen',
          });
        });
        // ffl reads nothing before a receiver starts (reference/ffl.md §5): the writes below wait for
        // that, so the wait for the new host is a timer of its own.
        waitTimer = setTimeout(() => {
          if (connectedAt !== undefined) return;
          notPickedUp = true;
          pickedUp?.(false);
          producer?.kill('SIGTERM');
          void opened.stop();
        }, waitMs);
        writer = new BundleWriter(opened.sink);
        await writer.writeHeader(header);
        if (contents) await writer.writeContents(contents);
        else if ((await Promise.race([picked, opened.exit.then(() => 'ended' as const)])) !== true) {
          // ffl ended before anybody pulled (explained by its exit below), or nobody pulled in time.
          throw notPickedUp ? notPickedUpFailure() : new Error('ffl ended before the new host started pulling');
        }
        return { share: opened, openedAt: Date.now() };
      });
      if (cutover) {
        // The new host reads the header and checks its copy while writes stop and the final backup runs here.
        const headerOnly = writer!;
        keepalive = setInterval(
          () => void headerOnly.keepalive().catch(() => undefined),
          Math.min(5000, (options.stallSeconds * 1000) / 4),
        );
        await this.#stopWrites(stepOf('stop-writes'));
        const archive = await this.#backup(stepOf('backup'), header.database);
        contents = await this.#step(stepOf('contents'), () =>
          buildContents(options, archive.name, archive.rowCounts, undefined, dir, this.#deltaInputs, this.#deltaCounts),
        );
        clearInterval(keepalive);
        await headerOnly.writeContents(contents);
      }
      const active = started.share;
      const outlet: PartOutlet = {
        sink: active.sink,
        openedAt: started.openedAt,
        receivingSince: () => connectedAt,
        path: () => path,
        abort: () => active.stop(),
      };
      const bundle = writer!;
      for (const sendStep of plan.steps.filter((s): s is Extract<SourceStep, { kind: 'send' }> => s.kind === 'send')) {
        const input = this.#deltaInputs.get(sendStep.source.part.id);
        const source = input === undefined ? sendStep.source : { ...sendStep.source, producerInput: input };
        await this.#step(sendStep, () =>
          sendPart(
            { ...options, readinessSeconds: pairing.waitSeconds },
            source,
            bundle,
            outlet,
            this.#parts,
            (proc) => (producer = proc),
            () => notPickedUp,
          ),
        );
      }
      await this.#step(stepOf('trailer'), async () => {
        // From the trailer on, the new host may apply the cutover: this host must not resume on its own.
        if (cutover) await this.#markPending();
        await bundle.finish();
        active.sink.end();
      });
      // ffl exits a few seconds after the last byte, once the download counts as complete (§8).
      await this.#step(stepOf('delivered'), async () => {
        await within(active.exit, Math.max(60, options.stallSeconds) * 1000);
        if (!active.delivered()) {
          throw new TransportError(
            'PAIRING_NOT_DELIVERED',
            `ffl did not report the bundle delivered to the new host (${active.outputTail().split('\n').filter(Boolean).at(-1) ?? 'no output'})`,
            {
              hint: "See the new host's screen: its deploy receive says what happened there (it rolls back on its own). Start a new pairing when it is fixed.",
            },
          );
        }
        this.#pairing = {
          ...this.#pairing!,
          delivered: true,
          ...(path ? { path } : {}),
          ...(connectedAt !== undefined ? { pullMs: Date.now() - connectedAt } : {}),
        };
      });
      return undefined;
    } catch (error) {
      producer?.kill('SIGTERM');
      const interrupted =
        options.signal?.aborted === true || (error instanceof DeployError && error.code === 'INTERRUPTED');
      // A connected new host hears that we stop (it rolls back at once instead of waiting for ffl to notice).
      if (connectedAt !== undefined)
        await within(
          writer
            ?.abort({
              code: interrupted ? 'INTERRUPTED' : 'SOURCE_FAILED',
              reason: interrupted
                ? `interrupted on ${options.source.hostName}`
                : error instanceof Error
                  ? error.message
                  : String(error),
            })
            .catch(() => undefined),
          2000,
        );
      if (interrupted) {
        return new SourceFailure(
          new DeployError('usage', 'INTERRUPTED', 'interrupted (Ctrl+C)', {
            hint: 'The link is closed; the new host rolls back on its own when its input ends. Start a new pairing to migrate.',
          }),
          this.#current,
          false,
        );
      }
      if (notPickedUp) return notPickedUpFailure();
      if (error instanceof SourceFailure) return error;
      // Writes failing because ffl ended (the new host stopped pulling, or ffl itself died): ffl's end explains it.
      const ended = share === undefined ? undefined : await within(share.exit, 3000);
      if (ended !== undefined && (!(error instanceof DeployError) || error.code === 'BUNDLE_SINK_CLOSED')) {
        const last = share!
          .outputTail()
          .split('\n')
          .map((line) => line.trim())
          .filter(Boolean)
          .at(-1);
        return new SourceFailure(
          new TransportError(
            'FFL_SHARE_ENDED',
            `ffl share ended (${describeExit(ended)}) before the new host took the whole bundle${last ? `: ${last}` : ''}`,
            {
              hint: "If the new host stopped pulling, its screen says why (it rolls back on its own); else see ffl's output above. Start a new pairing when it is fixed.",
            },
          ),
          this.#current,
          false,
          'transport',
        );
      }
      const cause =
        error instanceof DeployError
          ? error
          : new DeployError('internal', 'INTERNAL', error instanceof Error ? error.message : String(error));
      return new SourceFailure(cause, this.#current, false, cause.kind === 'transport' ? 'transport' : 'source');
    } finally {
      clearTimeout(waitTimer);
      clearInterval(keepalive);
      producer?.kill('SIGKILL');
      await share?.stop();
      // The dir holds ffl's hook and --json files, which carry the pickup code.
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** One session with the target; returns its failure (retryable or not) instead of throwing it. */
  async #attempt(attempt: number): Promise<SourceFailure | undefined> {
    const options = this.#options;
    const { app, bus } = options;
    const runId = attempt === 1 ? options.runId : `${options.runId}-${attempt}`;
    const attemptDir = await mkdtemp(`${runTempPath(options.runId, 'attempt')}-`);
    const interactive = options.transport.interactive;
    const target = hostTarget(options);
    const checkArgv = buildCheckArgv(target.deploy, app.name, options.replace);
    let session: TargetSession | undefined;
    let writer: BundleWriter | undefined;
    let keepalive: NodeJS.Timeout | undefined;
    let producer: HostProcess | undefined;
    /** Producers started ahead of their parts (a cutover), by part id, until their part takes them. */
    const aheadProducers = new Map<string, Promise<StartedProducer | undefined>>();
    let aheadStopped = false;
    let targetFailed = false;
    const fail = (error: DeployError, retryable: boolean, stage?: string): SourceFailure =>
      new SourceFailure(error, this.#current, retryable, stage);
    const header = this.#header(runId);
    const database = header.database;
    const planFor = (
      archive: string,
      reuseArchiveOf: string | undefined,
      resume: SourcePlanResume | undefined,
    ): SourcePlan => this.#planFor(runId, archive, reuseArchiveOf, resume);
    const openChannel = async (): Promise<void> => {
      const channel = await options.transport.openSender({
        stream: app.name,
        source: options.localHost,
        target: target.host,
        deployCommand: target.deploy.command,
        estimatedBytes: header.neededBytes,
        options: options.transportOptions,
        runId,
        attempt,
        attemptDir,
        secrets: [],
        targetArgv: (spec) => targetArgv(options, spec.from, spec.deleteAfter === true),
        // The target-side run's own process carries the run id from its start (its children get it anyway).
        targetEnv: { DEPLOY_RUN_ID: runId, DEPLOY_ROLE: 'target' },
        emit: (event) => {
          if (event.kind === 'path' && session) session.path = event.path;
          bus.emit(`stream.${event.kind}`, { app: app.name, level: 'debug', message: event.kind, data: { ...event } });
        },
        report: (failure) =>
          bus.emit('stream.failed', { app: app.name, level: 'debug', message: failure.message, data: { ...failure } }),
      });
      session = new TargetSession(channel, bus, app.name, options.targetName);
      session.onReport((report) => {
        if (report.ok) return;
        // The target failed and rolled back: stop producing for it.
        targetFailed = true;
        producer?.kill('SIGTERM');
      });
      // The target command ended (killed, or its connection dropped) while we may still be sending:
      // stop at once rather than block on a pipe nobody reads.
      void channel.exited.then(() => {
        if (channel.sink.writableFinished) return;
        targetFailed = true;
        producer?.kill('SIGTERM');
        channel.sink.destroy();
      });
      writer = new BundleWriter(channel.sink);
      await channel.ready;
      await writer.writeHeader(header);
    };
    try {
      // 1. The target's answer to the header: in the session itself (ssh, local), or a check first.
      const draft = planFor(this.#archive?.name ?? options.newArchive, this.#archive?.madeBy, undefined);
      const acceptance = interactive
        ? await this.#step(draft.steps.find((s) => s.id === 'connect')!, async () => {
            await openChannel();
            return session!.accepted;
          })
        : await this.#step(draft.steps.find((s) => s.id === 'check')!, () => checkTarget(options, header, checkArgv));
      if (!acceptance.accepted) {
        session?.channel.sink.end();
        if (session) await within(session.finished, 10_000);
        const report = acceptance.report ?? session?.report;
        if (report) this.#targetReport = report;
        if (report?.failure) return fromTargetReport(report, options.targetName, false);
        return fail(
          new TransportError(
            'TARGET_NO_ANSWER',
            `the target-side run on ${options.targetName} ended without an answer${session ? `: ${session.stderrTail()}` : ''}`,
            { hint: `Check that deploy runs there: deploy --host ${options.targetName} --help` },
          ),
          session !== undefined,
          'transport',
        );
      }

      // 2. The plan, now that the target said what it holds: a resume reuses the archive its parts came from.
      const offered = await this.#resumable(acceptance.resumable);
      if (offered && this.#archive === undefined) this.#archive = offered;
      const resume =
        offered && acceptance.resumable
          ? { fromRun: acceptance.resumable.runId, parts: acceptance.resumable.parts }
          : undefined;
      const plan = planFor(this.#archive?.name ?? options.newArchive, this.#archive?.madeBy, resume);
      this.#plan = plan;
      // For the live view (docs/cli.md): every step, and the size of each part, before they run.
      bus.emit('migrate.plan', {
        app: app.name,
        level: 'debug',
        message: `${plan.steps.length} steps`,
        data: { transport: options.transport.name, steps: describePlanSteps(plan.steps) },
      });
      const planLine = plan.steps.map((s) => ({ id: s.id, argv: displayArgv(s.argv) }));
      await options.journal.write(
        attempt === 1
          ? { step: 'plan', status: 'ok', detail: { steps: planLine } }
          : { step: 'attempt', status: 'start', detail: { attempt, runId, steps: planLine } },
      );
      const stepOf = (id: string): SourceStep => plan.steps.find((s) => s.id === id)!;
      if (writer) {
        // The target waits for the contents while we back up: keepalives tell it we are alive.
        const w = writer;
        keepalive = setInterval(
          () => void w.keepalive().catch(() => undefined),
          Math.min(5000, (options.stallSeconds * 1000) / 4),
        );
      }

      // 3. Backup (or the archive in use), then what the target verifies against. A cutover stops writes first.
      if (options.cutover && this.#writesStoppedAt === undefined) await this.#stopWrites(stepOf('stop-writes'));
      const archive = await this.#backup(stepOf('backup'), database);
      const phases: Record<string, number> = {};
      const contents = await this.#step(
        stepOf('contents'),
        () =>
          buildContents(
            options,
            archive.name,
            archive.rowCounts,
            resume?.fromRun,
            attemptDir,
            this.#deltaInputs,
            this.#deltaCounts,
            phases,
          ),
        () => ({ phases }),
      );

      // 4. The transfer: a non-interactive transport starts now, with the whole bundle.
      if (!interactive) await this.#step(stepOf('connect'), openChannel);
      clearInterval(keepalive);
      const active = session!;
      const bundle = writer!;
      await bundle.writeContents(contents);
      const sendSteps = plan.steps.filter(
        (s): s is Extract<SourceStep, { kind: 'send' | 'skip' }> => s.kind === 'send' || s.kind === 'skip',
      );
      const sourceOf = (step: Extract<SourceStep, { kind: 'send' }>): SourcePart => {
        const input = this.#deltaInputs.get(step.source.part.id);
        return input === undefined ? step.source : { ...step.source, producerInput: input };
      };
      // A cutover starts every part's producer now: each spends about a second starting (borg, deploy,
      // pg_dump) before its first byte, and in the write-stop window those seconds overlap instead of
      // adding up. Each waits on its full pipe for its turn. Writes are stopped, so a producer started
      // now reads what one started later would (pg_dump's snapshot, too). Not for a migration: a live
      // pg_dump would hold its locks for the whole transfer of the volumes before it.
      // Borg readers of the repository start one after the other (oneAtATime): each once the one before exited.
      if (options.cutover) {
        let borgFree: Promise<unknown> = Promise.resolve();
        for (const step of sendSteps) {
          if (step.kind !== 'send') continue;
          const source = sourceOf(step);
          if (!readsBorgRepository(source)) {
            aheadProducers.set(source.part.id, Promise.resolve(startProducer(options.localHost, source, true)));
            continue;
          }
          const started = borgFree.then(() =>
            aheadStopped ? undefined : startProducer(options.localHost, source, true),
          );
          borgFree = started.then((ahead) => ahead?.process.wait());
          aheadProducers.set(source.part.id, started);
        }
      }
      for (const sendStep of sendSteps) {
        if (targetFailed) break;
        await this.#step(sendStep, async () => {
          if (sendStep.kind === 'skip') {
            await bundle.skipPart({
              part: sendStep.source.part.id,
              bytes: sendStep.bytes,
              sha256: sendStep.sha256,
              reason: `verified by run ${resume?.fromRun ?? '?'}`,
            });
            this.#parts.push({
              id: sendStep.source.part.id,
              status: 'reused',
              bytes: sendStep.bytes,
              elapsedMs: 0,
              rate: 0,
              path: 'reused',
              attempts: 0,
              sha256: sendStep.sha256,
            });
            return;
          }
          const ahead = await aheadProducers.get(sendStep.source.part.id);
          aheadProducers.delete(sendStep.source.part.id);
          await sendPart(
            options,
            sourceOf(sendStep),
            bundle,
            active.outlet(),
            this.#parts,
            (proc) => (producer = proc),
            () => targetFailed,
            ahead,
          );
        });
      }
      if (!targetFailed) {
        await this.#step(stepOf('trailer'), async () => {
          await bundle.finish();
          active.channel.sink.end();
        });
      }
      if (resume) this.#reused = { fromRun: resume.fromRun, parts: resume.parts.map((part) => part.id) };

      // 5. The target's verdict (a cutover's write-stop window ended when it said the app is healthy).
      await this.#step(stepOf('target'), () => active.finished);
      // Writes stopped here until the app was healthy there (its clean-up after runs with the app serving).
      if (options.cutover && active.report?.ok)
        this.#writeStopEndedAt = active.healthyAt ?? active.reportAt ?? Date.now();
      this.#stagedBytes += active.channel.stagedBytes();
      return this.#verdict(active);
    } catch (error) {
      clearInterval(keepalive);
      producer?.kill('SIGTERM');
      const interrupted =
        options.signal?.aborted === true || (error instanceof DeployError && error.code === 'INTERRUPTED');
      if (session?.report?.ok === false) return this.#verdict(session);
      // Tell the target we stop (it rolls back, keeping verified parts when we were interrupted) and hear it out:
      // an abort record while the bundle still flows, and SIGINT for a target past the trailer (committing, starting).
      const cause =
        error instanceof DeployError
          ? error
          : new DeployError('internal', 'INTERNAL', error instanceof Error ? error.message : String(error));
      await writer
        ?.abort({
          code: interrupted ? 'INTERRUPTED' : cause.code,
          reason: interrupted ? `interrupted on ${options.source.hostName}` : cause.message,
        })
        .catch(() => undefined);
      if (interrupted) session?.channel.interrupt();
      session?.channel.sink.end();
      await within(session?.finished, 120_000);
      if (session?.report) this.#targetReport = session.report;
      if (interrupted) {
        return new SourceFailure(
          new DeployError('usage', 'INTERRUPTED', 'interrupted (Ctrl+C)', {
            hint: `${options.targetName} rolled back; run the same migrate again to finish the job (verified parts are reused).`,
          }),
          this.#current,
          false,
        );
      }
      if (error instanceof SourceFailure) return error;
      // The report may have arrived while we waited: the target's own failure explains ours best;
      // a target that ended without one (killed, connection lost) is a transport failure.
      const late = session?.report as TargetReport | undefined;
      if (session && late?.ok === false && late.failure?.code !== 'SOURCE_ABORTED') return this.#verdict(session);
      if (session && late === undefined && targetFailed) return this.#verdict(session);
      const sinkBroke = cause.code === 'BUNDLE_SINK_CLOSED';
      return fail(cause, sinkBroke, sinkBroke ? 'transport' : 'source');
    } finally {
      clearInterval(keepalive);
      producer?.kill('SIGKILL');
      // Producers started ahead for parts never sent (a failure, or the target failed): gone before writes resume.
      aheadStopped = true;
      for (const pending of aheadProducers.values()) void pending.then((ahead) => ahead?.process.kill('SIGKILL'));
      await Promise.all([...aheadProducers.values()].map(async (pending) => (await pending)?.process.wait()));
      await session?.channel.abort();
      await rm(attemptDir, { recursive: true, force: true });
    }
  }

  /**
   * The target-side run ended without a report (killed, or the connection dropped): nothing there
   * undid its work yet. A short run there cleans it up now (by run id, keeping verified parts).
   */
  async #recoverTarget(): Promise<void> {
    const options = this.#options;
    try {
      this.#targetRecovery = await hostTarget(options).deploy.json<RecoverReport>(
        ['receive', options.app.name, '--recover'],
        { acceptExitCodes: [7], timeoutMs: 10 * 60_000 },
      );
      const failure = this.#targetRecovery.failure;
      if (failure)
        options.bus.emit('migrate.recovered', {
          app: options.app.name,
          level: 'warn',
          message: `could not clean up on ${options.targetName}: ${failure.message}${failure.hint ? ` (${failure.hint})` : ''}`,
        });
      for (const run of this.#targetRecovery.recovered) {
        options.bus.emit('migrate.recovered', {
          app: options.app.name,
          message: `${options.targetName}: cleaned up after run ${run.runId}${run.outcome === 'kept' ? `, keeping ${run.keptParts.join(', ')} for a resume` : ''}`,
        });
      }
    } catch (error) {
      options.bus.emit('migrate.recovered', {
        app: options.app.name,
        level: 'warn',
        message: `could not clean up on ${options.targetName} (${(error as Error).message}); the next migration there does it`,
      });
    }
  }

  /** How the session ended, from the target's report (or its absence). */
  async #verdict(session: TargetSession): Promise<SourceFailure | undefined> {
    const options = this.#options;
    const report = session.report;
    if (report) this.#targetReport = report;
    if (report?.ok) return undefined;
    if (report) return fromTargetReport(report, options.targetName, options.signal?.aborted === true);
    const exit = await session.channel.exited;
    const connection = exit.failure;
    return new SourceFailure(
      new TransportError(
        connection?.code ?? 'TARGET_DIED',
        connection?.message ??
          `the target-side run on ${options.targetName} ended without a report (${describeExit(exit.result)}): ${session.stderrTail()}`,
        {
          hint:
            connection?.hint ??
            `Look at its run record on ${options.targetName} (<state dir>/apps/${options.app.name}/incoming/).`,
        },
      ),
      this.#current,
      options.signal?.aborted !== true,
      'transport',
    );
  }
}

/** How long a transfer may take to start taking bytes when the caller does not say (ffl: link hand-over + WebRTC setup). */
export const DEFAULT_READINESS_SECONDS = 120;

/** "90 s", "30 min": a window for messages. */
function formatSeconds(seconds: number): string {
  return seconds >= 120 && seconds % 60 === 0 ? `${seconds / 60} min` : `${Math.round(seconds)} s`;
}

/** Where a part's bytes go, and what the stall watchdog needs to know about it. */
interface PartOutlet {
  readonly sink: Writable;
  /** When the channel opened (the readiness window counts from here). */
  readonly openedAt: number;
  /** When the receiving side first took bytes (ffl: a receiver connected); undefined before. */
  receivingSince(): number | undefined;
  /** The path the bytes take, once known (for the report). */
  path(): string | undefined;
  abort(): Promise<void>;
}

/** A resume as the source plan needs it. */
type SourcePlanResume = NonNullable<Parameters<typeof buildSourcePlan>[0]['resume']>;

/** Sends one part: its producer into the bundle, retried when the producer fails (the target discards the attempt). */
async function sendPart(
  options: SourceRunOptions,
  source: SourcePart,
  writer: BundleWriter,
  outlet: PartOutlet,
  reports: PartReport[],
  setProducer: (producer: HostProcess | undefined) => void,
  targetFailed: () => boolean,
  prestarted?: StartedProducer,
): Promise<void> {
  const { bus, app } = options;
  for (let attempt = 1; ; attempt += 1) {
    const started = Date.now();
    // A producer started ahead (a cutover's) serves the first attempt; a retry starts its own.
    const {
      process: producer,
      stdout,
      stderr,
    } = attempt === 1 && prestarted !== undefined ? prestarted : startProducer(options.localHost, source);
    setProducer(producer);
    // Progress and stall come from the writer's byte counter, sampled by the watchdog below: nothing
    // runs per chunk besides the bundle writer itself (no metering stream between producer and writer).
    let movedBytes = 0;
    let lastMoveAt = started;
    let shownBytes = 0;
    let shownAt = started;
    const sample = (): void => {
      const bytes = writer.partBytes;
      const now = Date.now();
      if (bytes !== movedBytes) {
        movedBytes = bytes;
        lastMoveAt = now;
      }
      if (bytes === shownBytes || now - shownAt < 2000) return;
      shownBytes = bytes;
      shownAt = now;
      const elapsed = now - started;
      const rate = elapsed > 0 ? (bytes * 1000) / elapsed : 0;
      const eta =
        source.part.expectedBytes > bytes && rate > 0
          ? `, ETA ${Math.round((source.part.expectedBytes - bytes) / rate)} s`
          : '';
      bus.emit('stream.progress', {
        app: app.name,
        stream: source.part.id,
        message: `${source.part.id}: ${formatBytes(bytes)} at ${formatBytes(Math.round(rate))}/s${eta}`,
        data: { bytes, expected: source.part.expectedBytes, rate, side: 'producer' },
      });
    };
    // No byte for the window: a producer that stopped writing, or a transfer that stopped taking bytes.
    // The window starts when the receiving side first took bytes (ffl: after its link hand-over and
    // WebRTC setup, reference/ffl.md §8); before that only the readiness window runs.
    let stalled: 'producer' | 'transfer' | 'not-ready' | undefined;
    const readinessMs = (options.readinessSeconds ?? DEFAULT_READINESS_SECONDS) * 1000;
    const watchdog = setInterval(
      () => {
        sample();
        if (stalled !== undefined) return;
        const since = outlet.receivingSince();
        if (since === undefined) {
          if (Date.now() - outlet.openedAt < readinessMs) return;
          stalled = 'not-ready';
          void outlet.abort();
        } else {
          if (Date.now() - Math.max(started, since, lastMoveAt) < options.stallSeconds * 1000) return;
          // The sink takes nothing (node's buffer is full, or the payload pump waits on it): the transfer stalled.
          if (writer.sinkBlocked) {
            stalled = 'transfer';
            void outlet.abort();
          } else {
            stalled = 'producer';
          }
        }
        producer.kill('SIGTERM');
      },
      Math.min(1000, (options.stallSeconds * 1000) / 4),
    );
    const status = producer.wait().then((result) => ({
      exitCode: result.exitCode,
      signal: result.signal,
      stderrTail: stderr.join('').trim().split('\n').slice(-12).join('\n'),
    }));
    let trailer: Awaited<ReturnType<typeof writer.writePart>>;
    try {
      trailer = await writer.writePart(source.part.id, stdout, status);
    } catch (error) {
      // The bundle could not take the part (the target went away): the producer must not stay blocked on its pipe.
      producer.kill('SIGKILL');
      stdout.destroy();
      producer.stdout.destroy();
      await producer.wait();
      throw error;
    } finally {
      clearInterval(watchdog);
      setProducer(undefined);
    }
    if (stalled === 'transfer') {
      throw new TransportError(
        'TRANSFER_STALLED',
        `${options.targetName} took no byte of ${source.part.id} for ${options.stallSeconds} s`,
        {
          hint: options.pairing
            ? 'The new host stopped taking the bundle: its screen says why. Start a new pairing when it is fixed.'
            : 'The connection hangs or the target stopped reading; the next session resumes after the verified parts.',
        },
      );
    }
    if (stalled === 'not-ready') {
      throw new TransportError(
        options.pairing ? 'PAIRING_NOT_PICKED_UP' : 'TRANSFER_NOT_READY',
        options.pairing
          ? `nobody started pulling the bundle within ${formatSeconds(readinessMs / 1000)} (a wrong pickup code is refused there and never reaches here)`
          : `${options.targetName} did not start taking the bundle within ${formatSeconds(readinessMs / 1000)}`,
        {
          hint: options.pairing
            ? 'Start a new pairing (deploy migrate <app> --pair) and run the printed command on the new host in time; --wait sets how long the link stays open.'
            : 'The transport could not connect the two hosts; see its output, then run the migration again.',
        },
      );
    }
    if (trailer.producerExit === 0 && trailer.producerSignal === null) {
      const elapsedMs = Date.now() - started;
      const report: PartReport = {
        id: source.part.id,
        status: 'sent',
        bytes: trailer.bytes,
        wireBytes: writer.lastPartWireBytes,
        elapsedMs,
        rate: elapsedMs > 0 ? (trailer.bytes * 1000) / elapsedMs : trailer.bytes,
        path: outlet.path() ?? options.transport.name,
        attempts: attempt,
        sha256: trailer.sha256,
      };
      reports.push(report);
      bus.emit('migrate.part', {
        app: app.name,
        stream: source.part.id,
        message: `${source.part.id}: ${formatBytes(report.bytes)}${report.wireBytes !== undefined && report.wireBytes < report.bytes * 0.9 ? ` (${formatBytes(report.wireBytes)} on the wire)` : ''} in ${(elapsedMs / 1000).toFixed(1)} s (${formatBytes(Math.round(report.rate))}/s, path ${report.path}${attempt > 1 ? `, attempt ${attempt}` : ''})`,
        data: { ...report },
      });
      return;
    }
    if (targetFailed() || options.signal?.aborted)
      throw new DeployError('transport', 'TARGET_FAILED', `sending ${source.part.id} stopped: the target failed`);
    const why =
      stalled === 'producer'
        ? `it wrote no byte for ${options.stallSeconds} s`
        : describeExit({ exitCode: trailer.producerExit, signal: trailer.producerSignal });
    if (attempt > options.retries) {
      throw new TransportError(
        'PRODUCER_FAILED',
        `the producer of ${source.part.id} (\`${displayArgv(source.producer.slice(0, 3))} ...\`) failed on ${options.source.hostName}: ${why}${trailer.producerStderrTail ? `\n  ${trailer.producerStderrTail.split('\n').slice(-3).join('\n  ')}` : ''}`,
        {
          hint: 'See the producer stderr above; its output was incomplete and not used on the target. Fix the cause and run the migration again.',
        },
      );
    }
    bus.emit('migrate.retry', {
      app: app.name,
      level: 'warn',
      message: `${source.part.id}: the producer failed (${why}); sending the part again (attempt ${attempt + 1})`,
    });
  }
}

/** Runs `deploy receive --check` on the target with the header: its answer, without changing anything there. */
async function checkTarget(
  options: SourceRunOptions,
  header: MigrationHeader,
  checkArgv: readonly string[],
): Promise<Acceptance> {
  const bytes = new PassThrough();
  const chunks: Buffer[] = [];
  bytes.on('data', (chunk: Buffer) => chunks.push(chunk));
  const writer = new BundleWriter(bytes);
  await writer.writeHeader(header);
  // Draft contents: the metadata the volumes need carried (known before the backup), so the target plans every step.
  // A cutover's delta is known after the final backup: the draft has an empty one (the target plans the same steps).
  const draftDelta = (volume: AppFolder['manifest']['volumes'][number]): Record<string, unknown> =>
    options.cutover
      ? {
          delta: {
            removed: [],
            sent: [],
            chmod: [],
            mtimes: [],
            bytes: 0,
            counts: { added: 0, changed: 0, removed: 0, metadata: 0 },
            ...(volume.target_writes === 'discard' ? { whole: true } : {}),
          },
        }
      : {};
  const volumes = Object.fromEntries(
    options.app.manifest.volumes.map((volume) => [
      volume.name,
      { listing: [], fidelity: options.preflight.fidelity[volume.name]!, ...draftDelta(volume) },
    ]),
  );
  await writer.writeContents({ archive: options.newArchive, volumes });
  const { deploy } = hostTarget(options);
  const args = checkArgv
    .slice(deploy.command.length + deploy.globalArgs.length)
    .filter((word) => word !== '--json' && word !== '--quiet');
  const report = await deploy.json<TargetReport>(args, {
    input: Buffer.concat(chunks),
    acceptExitCodes: [1, 3, 4, 5, 6, 7],
  });
  return report.ok
    ? { accepted: true, ...(report.resumable ? { resumable: report.resumable } : {}), report }
    : { accepted: false, report };
}

/** Row counts the source took right after the backup that made `archive` (from its run records). */
async function readRowCountsOfArchive(
  options: SourceRunOptions,
  archive: string,
): Promise<Record<string, number> | undefined> {
  const dir = journalDir(options.source.stateDir, options.app.name);
  for (const name of (await readdir(dir).catch(() => [] as string[])).sort().reverse()) {
    const lines = await Journal.read(join(dir, name)).catch(() => []);
    const backup = lines.find(
      (line) =>
        line.step === 'backup' &&
        line.status === 'ok' &&
        line.detail?.archive === archive &&
        line.detail?.sourceRowsAtBackup !== undefined,
    );
    if (backup) return backup.detail!.sourceRowsAtBackup as Record<string, number>;
  }
  return undefined;
}

/** Wraps work so its duration lands in `phases[name]` (ms; the longest when a name repeats): the contents step's detail. */
function phaseTimer(phases: Record<string, number>): <T>(name: string, work: () => Promise<T>) => Promise<T> {
  return async (name, work) => {
    const started = Date.now();
    try {
      return await work();
    } finally {
      phases[name] = Math.max(phases[name] ?? 0, Date.now() - started);
    }
  };
}

/** Like Promise.all, but waits for every promise to settle before rejecting with the first failure (nothing left running). */
async function settleAll<T>(promises: readonly Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((outcome) => (outcome as PromiseFulfilledResult<T>).value);
}

/** A cutover volume as the contents record needs it: rescanned metadata, the final listing, the delta and its patterns. */
interface ScannedCutoverVolume {
  readonly fidelity: MigrationContents['volumes'][string]['fidelity'];
  readonly entries: ReturnType<typeof contentsFromListing>;
  readonly delta: DeltaRecord;
  readonly patterns: string;
  readonly stats: VolumeDeltaStats;
}

/**
 * One volume of a cutover, with writes stopped and the final archive made: the metadata export-tar
 * drops is scanned again (the disk is what the archive holds now) while borg lists the final archive
 * for the delta - read-only, so at the same time, and beside the other volumes' (borg's readers in turn).
 */
async function scanCutoverVolume(
  options: SourceRunOptions,
  volume: AppFolder['manifest']['volumes'][number],
  archive: string,
  timed: ReturnType<typeof phaseTimer>,
  borg: ReturnType<typeof oneAtATime>,
): Promise<ScannedCutoverVolume> {
  const path = volume.path.replace(/\/$/, '');
  const dir = join(options.app.dir, path);
  const [scan, computed] = await Promise.allSettled([
    timed('scan', () => scanVolumeMetadata(options.localHost, dir, { allMtimes: true })),
    timed('listings', () =>
      borg(() =>
        computeVolumeDelta(options.localHost, options.preflight.borgEnv, {
          base: options.cutover!.base.archive,
          final: archive,
          volumePath: path,
          baseListing: options.cutover!.baseListings[volume.name] ?? [],
        }),
      ),
    ),
  ]);
  if (scan.status === 'rejected') throw scan.reason;
  if (computed.status === 'rejected') throw computed.reason;
  const entries = contentsFromListing(computed.value.finalListing, path, volume.special_files);
  const { fidelity, allMtimes = [] } = scan.value;
  const built = buildDeltaRecord(path, computed.value.delta, new Map(allMtimes), fidelity.root!.mtimeNs);
  return {
    fidelity,
    entries,
    delta: volume.target_writes === 'discard' ? { ...built.record, whole: true } : built.record,
    patterns: built.patterns,
    stats: computed.value.stats,
  };
}

/** The contents record: each volume's listing with SHA-256 from the archive, metadata, row counts, settings. */
async function buildContents(
  options: SourceRunOptions,
  archive: string,
  rowCounts: Record<string, number> | undefined,
  reusedArchiveOf: string | undefined,
  tempDir: string,
  deltaInputs: Map<string, string>,
  deltaCounts: Record<string, DeltaRecord['counts'] & { bytes: number }>,
  phases: Record<string, number> = {},
): Promise<MigrationContents> {
  const { app, preflight } = options;
  const volumes: Record<string, MigrationContents['volumes'][string]> = {};
  const timed = phaseTimer(phases);
  // The scans run at once; borg's readers of the repository one at a time (oneAtATime says why).
  const borg = oneAtATime();
  // Independent and read-only (a cutover stopped writes before its backup): the database's settings
  // and fix-ups are read while the volumes are listed and scanned, all at once.
  const engine = preflight.engine;
  const name = app.manifest.database.name;
  const settingsRead = timed('database-settings', async () => {
    if (!engine?.settings || !name) return undefined;
    const producer = preflight.archiveHasDump
      ? { argv: ['borg', 'extract', '--stdout', `::${archive}`, engine.archivedDumpPath(name)], env: preflight.borgEnv }
      : { argv: ['pg_dump', '--format=custom', '--schema-only', '--no-password', `--dbname=${name}`] };
    return preflight.archiveHasDump
      ? borg(() => readDumpSettings(options.localHost, producer, engine.settings!, tempDir))
      : readDumpSettings(options.localHost, producer, engine.settings, tempDir);
  });
  // Read from the live database (the archive's dump was made from it moments ago by the backup step).
  const fixupsRead = timed('database-fixups', async () =>
    engine?.exportObjectFixups && name
      ? engine.exportObjectFixups(createSqlClient(options.localHost, engine.clientArgv), name)
      : undefined,
  );
  const cutoverVolumes = options.cutover
    ? settleAll(app.manifest.volumes.map((volume) => scanCutoverVolume(options, volume, archive, timed, borg)))
    : undefined;
  // Everything settles before a failure is thrown: no scan may still run when the caller resumes writes.
  const settled = await Promise.allSettled([settingsRead, fixupsRead, cutoverVolumes ?? Promise.resolve(undefined)]);
  for (const outcome of settled) if (outcome.status === 'rejected') throw outcome.reason;
  const scannedVolumes = await cutoverVolumes;
  for (const [index, volume] of app.manifest.volumes.entries()) {
    const path = volume.path.replace(/\/$/, '');
    let fidelity = preflight.fidelity[volume.name]!;
    let delta: DeltaRecord | undefined;
    let entries: Awaited<ReturnType<typeof listArchivedVolumeEntries>>;
    const scanned = scannedVolumes?.[index];
    if (scanned) {
      ({ fidelity, entries, delta } = scanned);
      if (!delta.whole) deltaInputs.set(`delta:${volume.name}`, scanned.patterns);
      deltaCounts[volume.name] = { ...delta.counts, bytes: delta.bytes };
      options.bus.emit('cutover.delta', {
        app: app.name,
        message: `${volume.name}: ${delta.counts.added} added, ${delta.counts.changed} changed, ${delta.counts.removed} removed, ${delta.counts.metadata} metadata-only; ${formatBytes(delta.bytes)} of content to send (${scanned.stats.finalEntries} entries listed, ${scanned.stats.hashed} hashed)`,
        data: { volume: volume.name, ...delta.counts, bytes: delta.bytes, stats: scanned.stats },
      });
    } else {
      // borg computes each file's SHA-256 from the archive's chunks: a whole read of the volume.
      entries = await timed(`listing:${volume.name}`, () =>
        listArchivedVolumeEntries(options.localHost, preflight.borgEnv, archive, path, volume.special_files),
      );
    }
    // The archive says which declared entries travel; the preflight's scan of the disk adds the devices' major/minor.
    const onDisk = preflight.special?.[volume.name] ?? [];
    const special = entries.special.map(
      (entry) => onDisk.find((found) => found.path === entry.path && found.type === entry.type) ?? entry,
    );
    volumes[volume.name] = {
      listing: entries.files,
      symlinks: entries.symlinks,
      ...(special.length > 0 ? { special } : {}),
      fidelity,
      ...(delta ? { delta } : {}),
    };
  }
  const databaseSettings = await settingsRead;
  const databaseFixups = await fixupsRead;
  let historyArchives: string[] | undefined;
  if (options.withHistory) {
    const listed = await runBorgList(
      options.localHost,
      preflight.borgEnv,
      ['--short'],
      'listing the archives to carry (--with-history)',
    );
    if (listed.exitCode !== 0) {
      throw new DependencyError(
        'BORG_LIST_FAILED',
        `borg list of ${preflight.borgEnv.BORG_REPO ?? 'the repository'} failed (${describeBorgFailure(listed)}): the archive history to carry is unknown`,
        {
          hint: "Run `borg list` on the repository by hand (with the app's passphrase) to see why, fix it, then run migrate again.",
        },
      );
    }
    historyArchives = listed.stdout.split('\n').filter(Boolean);
  }
  return {
    archive,
    ...(reusedArchiveOf ? { reusedArchiveOf } : {}),
    volumes,
    ...(rowCounts ? { rowCounts } : {}),
    ...(databaseSettings !== undefined ? { databaseSettings } : {}),
    ...(databaseFixups ? { databaseFixups } : {}),
    ...(preflight.databaseExtensions && preflight.databaseExtensions.length > 0
      ? { databaseExtensions: preflight.databaseExtensions }
      : {}),
    ...(historyArchives ? { historyArchives } : {}),
  };
}

/** The argv stopping (or resuming) writes of an app for a cutover, for the plan. */
export function stopWritesArgv(app: AppFolder, how: 'maintenance' | 'stop', direction: 'stop' | 'resume'): string[] {
  if (how === 'maintenance') return [join(app.dir, 'bin', 'maintenance'), direction === 'stop' ? 'on' : 'off'];
  return [join(app.dir, 'bin', direction === 'stop' ? 'stop' : 'start')];
}
