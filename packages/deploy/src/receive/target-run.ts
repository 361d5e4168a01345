import { mkdir, readdir, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import {
  ConflictError,
  DependencyError,
  DeployError,
  describeExit,
  displayArgv,
  formatBytes,
  TransportError,
  type AppFolder,
  type DataEventType,
  type DeployEventDataMap,
  type EventBus,
  type Host,
  type SpecialFileSpec,
} from '@deploykit/core';
import { signalAllProcessGroups } from '@deploykit/host';
import { BundleError, BundleReader, type BundleItem, type ReceiverInput } from '@deploykit/transport';
import type { DatabaseEngine } from '../database/engine.js';
import { engineFor } from '../database/engines.js';
import { createSqlClient, type SqlClient } from '../database/sql-client.js';
import type { CheckResult } from '../health/check-types.js';
import { resolveBaseUrl, runChecks } from '../health/run-checks.js';
import type { HostContext } from '../host-context.js';
import { acquireAppLock, processStartTicks, type AppLock } from '../migrate/app-lock.js';
import {
  compareDigests,
  compareSpecialFiles,
  compareSymlinks,
  digestTree,
  listSpecialFiles,
  listSymlinks,
} from '../migrate/checksums.js';
import { keepXattrsForUndo, makeXattrsExactly } from './exact-xattrs.js';
import {
  applyFidelity,
  compareFidelity,
  compareMtimes,
  isFidelityTrivial,
  scanVolumeMetadata,
} from '../migrate/fidelity.js';
import { findOnPath, freeBytesAt, readDeployVersion } from '../migrate/host-facts.js';
import { DEPLOY_VERSION, isCompatibleDeployVersion } from '../version.js';
import {
  parseMigrationContents,
  parseMigrationHeader,
  type MigrationContents,
  type MigrationHeader,
  type MigrationPart,
} from '../migrate/migration-header.js';
import { runPhase } from '../script-runner.js';
import { dumpToFile, restoreFromFile } from '../database/dump-files.js';
import {
  classifyBundleError,
  receiveCommandPart,
  receiveFilePart,
  receiveHeldPart,
  receiveTarPart,
  TargetFailure,
  type PartAttempt,
  type PartOutcome,
} from './part-consumers.js';
import { PlannedHost } from './planned-host.js';
import {
  adoptRun,
  discardRun,
  holdsKeptParts,
  pruneStaging,
  recoverEarlierRuns,
  reusableParts,
  undoActions,
  type RecoveredRun,
} from './recover-runs.js';
import {
  asideDumpFile,
  BORG_CHECK_ARGV,
  BORG_LIST_ARGV,
  buildTargetLayout,
  buildTargetPlan,
  databaseDumpFile,
  partDir,
  partDirName,
  type TargetLayout,
  type TargetOccupancy,
  type TargetStep,
} from './target-plan.js';
import { incomingDir, listRecordedRuns, TargetJournal, type RecordedRun } from './target-journal.js';
import { applyVolumeDelta, compareWithBase, type DeltaApplied } from './apply-delta.js';
import { pairedCutoverNextStep, type SourceNextStep } from '../migrate/paired-cutover.js';
import { loadAppFolder, pathExists, stopRunProcesses, type UndoEnvironment } from './undo.js';

/** Space kept free beyond the app itself. */
export const TARGET_SPACE_MARGIN_BYTES = 64 * 1024 * 1024;

/** Inputs of a target-side run. */
export interface TargetRunOptions {
  readonly input: ReceiverInput;
  readonly host: Host;
  readonly hostContext: HostContext;
  readonly bus: EventBus;
  /** The operator's consent to replace an app that is already here (its folder, database, repository). */
  readonly replace: boolean;
  /** Aborted on SIGINT/SIGTERM on this host: stop and roll back. */
  readonly signal?: AbortSignal;
  /** Only check the header against this host and answer; change nothing (`--check`). */
  readonly check?: boolean;
  /** The app the operator expects; a bundle of another app is refused before anything happens. */
  readonly expectApp?: string;
  /** A cutover: go on when the copy here differs from the base archive (the final verification still decides). */
  readonly force?: boolean;
}

/** One verification result. */
export interface TargetCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** Per part: what arrived, or that a verified copy was reused. */
export interface TargetPartReport {
  readonly id: string;
  readonly status: 'received' | 'reused';
  readonly bytes: number;
  readonly sha256?: string;
  readonly elapsedMs: number;
  readonly attempts: number;
}

/** A resume offer: verified parts an earlier run of this app keeps here. */
export interface ResumeOffer {
  readonly runId: string;
  readonly archive: string;
  readonly parts: readonly { readonly id: string; readonly bytes: number; readonly sha256: string }[];
}

/** What a target-side run did: the report the source shows and `--json` prints. */
export interface TargetReport {
  readonly ok: boolean;
  /** The version of the deploy that ran this side (absent in reports of deploy before it was added). */
  readonly deployVersion?: string;
  readonly app: string;
  readonly runId: string;
  readonly host: string;
  readonly source?: string;
  readonly archive?: string;
  readonly journal?: string;
  readonly check?: boolean;
  readonly layout?: {
    readonly finalDir: string;
    readonly appsRoot: string;
    readonly stateDir: string;
    readonly freeBytes: number;
    readonly neededBytes: number;
  };
  readonly plan?: readonly {
    readonly id: string;
    readonly kind: string;
    readonly title: string;
    readonly commands: readonly string[][];
  }[];
  readonly parts: readonly TargetPartReport[];
  readonly resumable?: ResumeOffer;
  readonly reused?: { readonly fromRun: string; readonly parts: readonly string[] };
  readonly recovered: readonly RecoveredRun[];
  readonly replaced?: TargetOccupancy;
  readonly verification: {
    readonly ok: boolean;
    readonly checks: readonly TargetCheck[];
    readonly problems: readonly string[];
  };
  readonly failure?: {
    readonly step: string;
    readonly stage: string;
    readonly kind: string;
    readonly code: string;
    readonly message: string;
    readonly hint?: string;
    readonly retryable: boolean;
  };
  readonly rolledBack: readonly string[];
  readonly rollbackFailed: readonly string[];
  readonly kept: readonly string[];
  readonly baseUrl?: string;
  /** A cutover: the archive it built on, and what applying each volume's delta did. */
  readonly cutover?: {
    readonly baseArchive: string;
    readonly applied: Readonly<Record<string, DeltaApplied>>;
    /** Pairing mode: what the source's operator runs there now - the source cannot hear this report (decision 0011). */
    readonly onSource?: SourceNextStep;
  };
  readonly durationMs: number;
}

function toTargetFailure(error: unknown, stage: string): TargetFailure {
  if (error instanceof TargetFailure) return error;
  const classified = classifyBundleError(error);
  if (classified !== 'producer-failed')
    return classified.stage === 'transfer' || classified.class === 'input'
      ? classified
      : new TargetFailure(classified, classified.class, stage);
  return new TargetFailure(new TransportError('BUNDLE_PRODUCER_FAILED', (error as Error).message), 'fatal', stage);
}

/**
 * The target-side run of a migration (`deploy receive <app> --from ...`): reads the bundle and does
 * every target step here - preflight from the header, lock, recovery of earlier runs, each part into
 * its consumer (under staging names, nothing visible), verification, the commit (a replaced app set
 * aside, stopped), bin/install, bin/start, health - and on any failure rolls back exactly what it
 * did, in reverse, here where the data is. Verified parts are kept for a resume when only the input
 * was lost. Never throws; the report says how it went.
 */
export async function runTargetSide(options: TargetRunOptions): Promise<TargetReport> {
  return new TargetRun(options).run();
}

/** How long `--recover` waits for a run that still holds the app's lock (rolling back on its own) to end. */
const RECOVER_LOCK_WAIT_MS = 120_000;

/** What `deploy receive <app> --recover` did: earlier runs of the app on this host, cleaned up or kept for a resume. */
export interface RecoverReport {
  readonly ok: boolean;
  readonly app: string;
  readonly host: string;
  readonly recovered: readonly RecoveredRun[];
  readonly failure?: { readonly code: string; readonly message: string; readonly hint?: string };
}

/**
 * Cleans up after earlier target-side runs of an app that did not end (killed, or their input
 * lost): takes the app's lock, stops their processes (by run id), undoes what they did, keeps the
 * verified parts of the newest one for a resume (unless `discard`), and releases the lock.
 */
export async function recoverTargetRuns(options: {
  app: string;
  host: Host;
  hostContext: HostContext;
  bus: EventBus;
  runId: string;
  discard: boolean;
}): Promise<RecoverReport> {
  const { app, hostContext } = options;
  let lock: AppLock | undefined;
  try {
    // A run that lost its input (the source's connection dropped) is still rolling back: wait for it.
    lock = await acquireAppLock({
      stateDir: hostContext.stateDir,
      app,
      runId: options.runId,
      command: `deploy receive ${app} --recover`,
      waitMs: RECOVER_LOCK_WAIT_MS,
    });
    // The Borg repository path (for the layout) comes from the app's manifest where one is here.
    const manifest = await newestManifest(hostContext, app);
    const environment = { host: options.host, hostContext, bus: options.bus };
    const layoutOf = (runId: string): TargetLayout =>
      buildTargetLayout({ app, runId, manifest: manifest ?? {} }, hostContext);
    const { recovered, candidate } = await recoverEarlierRuns(environment, app, options.runId, layoutOf);
    if (options.discard && candidate) {
      const result = await discardRun(environment, app, candidate, options.runId);
      const index = recovered.findIndex((run) => run.runId === candidate.runId);
      if (index >= 0)
        recovered[index] = {
          ...recovered[index]!,
          outcome: 'undone',
          keptParts: [],
          undone: [...recovered[index]!.undone, ...result.undone],
          failed: [...recovered[index]!.failed, ...result.failed],
        };
    }
    for (const run of recovered)
      options.bus.emit('receive.recovered', {
        app,
        message: `earlier run ${run.runId}: ${run.outcome === 'kept' ? `keeps ${run.keptParts.join(', ')} for a resume` : 'rolled back'}${run.undone.length > 0 ? ` (${run.undone.join('; ')})` : ''}`,
        data: { ...run },
      });
    return { ok: recovered.every((run) => run.failed.length === 0), app, host: hostContext.hostName, recovered };
  } catch (error) {
    const failure = error instanceof DeployError ? error : new DeployError('internal', 'INTERNAL', String(error));
    return {
      ok: false,
      app,
      host: hostContext.hostName,
      recovered: [],
      failure: { code: failure.code, message: failure.message, ...(failure.hint ? { hint: failure.hint } : {}) },
    };
  } finally {
    await lock?.release();
  }
}

/** The app's manifest as the newest recorded run staged or installed it (for its database engine). */
async function newestManifest(hostContext: HostContext, app: string): Promise<AppFolder['manifest'] | undefined> {
  const final = join(hostContext.appsRoot, app);
  const candidates = [
    final,
    ...(await readdir(hostContext.appsRoot).catch(() => [] as string[]))
      .filter((name) => name.startsWith(`.migrate-${app}-`))
      .map((name) => join(hostContext.appsRoot, name, 'parts', 'files')),
  ];
  for (const dir of candidates) {
    const loaded = await loadAppFolder(dir).catch(() => undefined);
    if (loaded) return loaded.manifest;
  }
  return undefined;
}

class TargetRun {
  readonly #options: TargetRunOptions;
  readonly #started = Date.now();
  readonly #bus: EventBus;
  #reader: BundleReader | undefined;
  #header: (MigrationHeader & { manifest: AppFolder['manifest'] }) | undefined;
  #contents: MigrationContents | undefined;
  #layout: TargetLayout | undefined;
  #engine: DatabaseEngine | undefined;
  #rawSql: SqlClient | undefined;
  #journal: TargetJournal | undefined;
  #plan: TargetStep[] = [];
  #occupied: TargetOccupancy = { folder: false, database: false, repository: false };
  #lock: AppLock | undefined;
  #current = 'bundle';
  #committed = false;
  #assembled = false;
  #stagingMade = false;
  #candidate: RecordedRun | undefined;
  #reused: { fromRun: string; parts: string[] } | undefined;
  #recovered: RecoveredRun[] = [];
  #inputRunId: string | undefined;
  readonly #parts = new Map<string, TargetPartReport & { fromArchive: boolean }>();
  readonly #held = new Map<string, string>();
  readonly #checks: TargetCheck[] = [];
  #freeBytes = 0;
  #baseUrl: string | undefined;
  /** A cutover: what applying each volume's delta did. */
  readonly #deltaApplied: Record<string, DeltaApplied> = {};
  /** Stops the running step: a stall, or SIGINT/SIGTERM here. */
  readonly #stop = new AbortController();
  #lastProgressShownAt = 0;

  constructor(options: TargetRunOptions) {
    this.#options = options;
    this.#bus = options.bus;
  }

  get #runId(): string {
    return this.#header?.runId ?? this.#bus.context.runId;
  }

  async run(): Promise<TargetReport> {
    const onSignal = (): void =>
      this.#stop.abort(
        new TargetFailure(
          new DeployError('usage', 'INTERRUPTED', `interrupted on ${this.#options.hostContext.hostName}`, {
            hint: 'Run the migration again: verified parts are reused.',
          }),
          'input',
          'receiver',
        ),
      );
    this.#options.signal?.addEventListener('abort', onSignal, { once: true });
    // A signal that came while the input was being opened (ffl starting) fires no listener any more.
    if (this.#options.signal?.aborted) onSignal();
    let failure: TargetFailure | undefined;
    try {
      await this.#receiveAndCommit();
      if (this.#options.check) return this.#report(undefined);
    } catch (error) {
      failure = toTargetFailure(error, this.#current);
      if (failure.code === 'INTERRUPTED' && this.#committed)
        failure = new TargetFailure(failure, 'fatal', failure.stage);
    } finally {
      this.#options.signal?.removeEventListener('abort', onSignal);
      this.#reader?.destroy();
    }
    const rollback =
      failure && !this.#options.check ? await this.#rollback(failure) : { undone: [], failed: [], kept: [] };
    if (!failure && !this.#options.check) this.#journal?.write({ t: 'end', outcome: 'finished' });
    await this.#lock?.release();
    await this.#options.input.close();
    return this.#report(failure, rollback);
  }

  // ---- the bundle -----------------------------------------------------------------------------

  /** Next bundle item, watched: no byte for the stall window (or a stop here) fails the wait. */
  async #next(): Promise<BundleItem> {
    const reader = this.#reader!;
    const windowMs = (this.#header?.options.stallSeconds ?? 60) * 1000;
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<never>((_resolve, reject) => {
      timer = setInterval(
        () => {
          if (Date.now() - reader.lastByteAt >= windowMs) {
            reject(
              new TargetFailure(
                new TransportError(
                  'INPUT_STALLED',
                  `no byte arrived from the source for ${Math.round(windowMs / 1000)} s (${formatBytes(reader.inputBytes)} so far)`,
                  {
                    hint: 'The source stopped sending or the connection hangs; run the migration again (verified parts are reused).',
                  },
                ),
                'input',
                'transfer',
              ),
            );
          }
        },
        Math.min(1000, windowMs / 4),
      );
    });
    const stopped = new Promise<never>((_resolve, reject) => {
      if (this.#stop.signal.aborted) reject(this.#stop.signal.reason);
      this.#stop.signal.addEventListener('abort', () => reject(this.#stop.signal.reason), { once: true });
    });
    stalled.catch(() => undefined);
    stopped.catch(() => undefined);
    try {
      return await Promise.race([reader.next(), stalled, stopped]);
    } catch (error) {
      throw await this.#explainInputError(error);
    } finally {
      clearInterval(timer);
    }
  }

  /** When the bundle broke off, the transport may know why (ffl exited with its message). */
  async #explainInputError(error: unknown): Promise<unknown> {
    const failure = toTargetFailure(error, 'transfer');
    // A stop here (SIGTERM from the source's abort, Ctrl+C) is no input error: waiting up to 3 s for
    // the transport's verdict would outlast the source's grace before SIGKILL and skip our cleanup.
    if (this.#stop.signal.aborted && error === this.#stop.signal.reason) return failure;
    // A malformed bundle may be the transport's doing too: ffl appends its error text to the payload
    // (reference/ffl.md §2.2), so a refused pickup code arrives as "Oops, ..." where the magic should be.
    if (failure.class !== 'input' && !(error instanceof BundleError)) return failure;
    const transport = await this.#options.input.transportFailure(3000);
    if (transport === undefined) return failure;
    return new TargetFailure(
      new TransportError(transport.code, `${transport.message} (${failure.message})`, {
        hint: transport.hint ?? failure.hint ?? 'Run the migration again: verified parts are reused.',
        details: { stderrTail: transport.stderrTail ?? '' },
      }),
      'input',
      'transfer',
    );
  }

  #emit<T extends DataEventType>(
    type: T,
    message: string,
    data: DeployEventDataMap[T],
    level: 'debug' | 'info' | 'warn' | 'error' = 'info',
  ): void {
    this.#bus.emit(type, { app: this.#header?.app ?? '', level, message, data });
  }

  /** Runs one step: journaled, announced, its commands through a PlannedHost; a stop here interrupts it. */
  async #step<T>(id: string, work: (host: Host) => Promise<T>, fallbackTitle = id): Promise<T> {
    const step = this.#plan.find((candidate) => candidate.id === id) ?? {
      id,
      title: fallbackTitle,
      commands: [] as readonly (readonly string[])[],
    };
    this.#current = id;
    this.#journal?.write({ t: 'step', step: id, status: 'start' });
    this.#emit('receive.step', `[${id}] ${step.title}`, { step: id });
    const host = this.#journal ? new PlannedHost(this.#options.host, step, this.#journal) : this.#options.host;
    let onStop: (() => void) | undefined;
    const stopped = new Promise<'stopped'>((resolve) => {
      onStop = (): void => resolve('stopped');
      if (this.#stop.signal.aborted) resolve('stopped');
      else this.#stop.signal.addEventListener('abort', onStop, { once: true });
    });
    const running = work(host);
    try {
      const first = await Promise.race([
        running.then(
          () => 'done' as const,
          () => 'done' as const,
        ),
        stopped,
      ]);
      if (first === 'stopped') {
        // Whatever this step runs stops with it (scripts' whole process groups); what it already did
        // must be on record before the rollback reads it, so the step is allowed to settle first.
        signalAllProcessGroups('SIGTERM');
        await running.catch(() => undefined);
        throw this.#stop.signal.reason;
      }
      const result = await running;
      this.#journal?.write({ t: 'step', step: id, status: 'ok' });
      return result;
    } catch (error) {
      this.#journal?.write({ t: 'step', step: id, status: 'failed', detail: { message: (error as Error).message } });
      throw error;
    } finally {
      if (onStop) this.#stop.signal.removeEventListener('abort', onStop);
    }
  }

  async #receiveAndCommit(): Promise<void> {
    this.#reader = new BundleReader(this.#options.input.stream);
    const first = await this.#next();
    if (first.kind === 'abort')
      throw new TargetFailure(
        new TransportError('SOURCE_ABORTED', `the source gave up before sending anything: ${first.abort.reason}`),
        'input',
        'transfer',
      );
    if (first.kind !== 'header')
      throw new TargetFailure(
        new TransportError('BUNDLE_NO_HEADER', `the bundle does not start with a header (got ${first.kind})`),
        'fatal',
        'integrity',
      );
    const header = parseMigrationHeader(first.header);
    if (this.#options.expectApp !== undefined && header.app !== this.#options.expectApp) {
      throw new TargetFailure(
        new DeployError(
          'usage',
          'BUNDLE_OTHER_APP',
          `this bundle carries the app ${header.app}, not ${this.#options.expectApp}`,
          { hint: `Run \`deploy receive ${header.app} --from ...\` if that is the app you mean.` },
        ),
        'fatal',
        'preflight',
      );
    }
    this.#header = header;
    // Every process of this run (consumers, scripts, the app they start) carries its id and role:
    // that is how a later run finds them again if this one is killed. The input started before the
    // id was known (pairing: its ffl download carries the receiving command's own id): recorded below.
    this.#inputRunId = process.env.DEPLOY_RUN_ID;
    process.env.DEPLOY_RUN_ID = header.runId;
    process.env.DEPLOY_ROLE = 'target';
    this.#engine = engineFor(header.manifest);
    this.#rawSql = this.#engine ? createSqlClient(this.#options.host, this.#engine.clientArgv) : undefined;
    const { appsRoot, stateDir } = this.#options.hostContext;
    this.#layout = buildTargetLayout(header, { appsRoot, stateDir });
    if (!this.#options.check) {
      this.#journal = new TargetJournal(this.#layout.journal);
      this.#journal.write({
        t: 'run',
        deployVersion: DEPLOY_VERSION,
        app: header.app,
        runId: header.runId,
        source: header.source.host,
        pid: process.pid,
        startTicks: processStartTicks(process.pid),
        parts: header.parts.map((part) => part.id),
        ...(this.#engine ? { engine: this.#engine.kind } : {}),
      });
      const paths = this.#options.input.paths ?? [];
      if ((this.#inputRunId !== undefined && this.#inputRunId !== header.runId) || paths.length > 0)
        this.#journal.write({ t: 'input', runId: this.#inputRunId ?? header.runId, paths });
    }
    this.#emit(
      'receive.start',
      `receiving ${header.app} from ${header.source.host} (run ${header.runId}, ${header.parts.length} parts, ${formatBytes(header.neededBytes)})`,
      { source: header.source.host, parts: header.parts.map((part) => part.id) },
    );

    await this.#step('preflight', () => this.#preflight(), 'check this host can take the app');
    if (!this.#options.check) {
      this.#lock = await this.#step(
        'lock',
        () =>
          acquireAppLock({
            stateDir,
            app: header.app,
            runId: header.runId,
            command: `deploy receive ${header.app} (from ${header.source.host})`,
          }),
        'lock the app',
      );
    }
    await this.#step('recover', () => this.#recover(), 'clean up earlier runs');
    this.#plan = buildTargetPlan({
      header,
      layout: this.#layout,
      ...(this.#engine ? { engine: this.#engine } : {}),
      occupied: this.#occupied,
    });
    const offer = this.#offer();
    if (this.#options.check) {
      // A check may carry draft contents (the metadata to carry): then its plan is the full plan.
      const draft = await this.#next().catch(() => undefined);
      if (draft?.kind === 'contents') {
        this.#contents = parseMigrationContents(draft.contents, header);
        this.#plan = buildTargetPlan({
          header,
          contents: this.#contents,
          layout: this.#layout,
          ...(this.#engine ? { engine: this.#engine } : {}),
          occupied: this.#occupied,
        });
      }
      this.#emit(
        'receive.accepted',
        `${header.app} can be received here${offer ? `; run ${offer.runId} keeps ${offer.parts.length} verified part(s) of archive ${offer.archive} for a resume` : ''}`,
        { ...(offer ? { resumable: offer } : {}) },
      );
      return;
    }
    this.#emit(
      'receive.accepted',
      `${header.app} can be received here${offer ? `; run ${offer.runId} keeps ${offer.parts.length} verified part(s) of archive ${offer.archive} for a resume` : ''}`,
      { ...(offer ? { resumable: offer } : {}) },
    );

    const second = await this.#next();
    if (second.kind === 'abort')
      throw new TargetFailure(
        new TransportError('SOURCE_ABORTED', `the source gave up: ${second.abort.reason}`, {
          hint: 'Fix what the source reports, then run the migration again.',
        }),
        second.abort.code === 'INTERRUPTED' ? 'input' : 'fatal',
        'source',
      );
    if (second.kind !== 'contents')
      throw new TargetFailure(
        new TransportError(
          'BUNDLE_NO_CONTENTS',
          `the bundle has no contents record after its header (got ${second.kind})`,
        ),
        'fatal',
        'integrity',
      );
    this.#contents = parseMigrationContents(second.contents, header);
    this.#journal!.write({ t: 'archive', archive: this.#contents.archive });
    await this.#adoptOrDiscard();
    this.#plan = buildTargetPlan({
      header,
      contents: this.#contents,
      layout: this.#layout,
      ...(this.#engine ? { engine: this.#engine } : {}),
      occupied: this.#occupied,
    });
    this.#journal!.write({
      t: 'plan',
      steps: this.#planData().map((step) => ({ ...step, commands: step.commands.map((argv) => displayArgv(argv)) })),
    });
    this.#emit('receive.plan', `${this.#plan.length} steps`, { plan: this.#planData() }, 'debug');
    await this.#receiveParts();
    await this.#runSteps();
  }

  #planData(): { id: string; kind: string; title: string; commands: string[][] }[] {
    return this.#plan.map((step) => ({
      id: step.id,
      kind: step.kind,
      title: step.title,
      commands: step.commands.map((argv) => [...argv]),
    }));
  }

  // ---- preflight, lock, recovery ---------------------------------------------------------------

  async #preflight(): Promise<void> {
    const header = this.#header!;
    const context = this.#options.hostContext;
    const version = await readDeployVersion();
    if (!isCompatibleDeployVersion(version, header.source.deployVersion)) {
      throw new TargetFailure(
        new DependencyError(
          'DEPLOY_VERSION_MISMATCH',
          `deploy ${version} here on ${context.hostName}, ${header.source.deployVersion} on ${header.source.host}: a migration needs the same major.minor on both`,
          {
            hint: `From ${header.source.host}, run \`deploy setup ${context.hostName}\` to install its deploy here (docs/decisions/0009-release-and-setup.md).`,
          },
        ),
        'fatal',
        'preflight',
      );
    }
    const missing: string[] = [];
    for (const tool of header.tools) if ((await findOnPath(tool)) === null) missing.push(tool);
    if (missing.length > 0) {
      throw new TargetFailure(
        new DependencyError('TOOLS_MISSING', `missing on ${context.hostName}: ${missing.join(', ')}`, {
          hint: `From ${header.source.host}, run \`deploy setup ${context.hostName} --install\` (or install them: Debian borgbackup, tar, postgresql-client, mariadb-client, attr, acl, util-linux), then run the migration again.`,
        }),
        'fatal',
        'preflight',
      );
    }
    // tar -x makes device nodes only as root: refuse a declared device now rather than after its bytes came.
    const devices = header.manifest.volumes.flatMap((volume) =>
      (volume.special_files ?? [])
        .filter((file) => file.type !== 'fifo')
        .map((file) => `${volume.name}:${file.path} (${file.type})`),
    );
    if (devices.length > 0 && process.getuid?.() !== 0) {
      throw new TargetFailure(
        new DependencyError(
          'TARGET_DEVICES_NEED_ROOT',
          `${header.app} declares device nodes (${devices.join(', ')}), which only root can create; deploy runs as uid ${String(process.getuid?.())} on ${context.hostName}`,
          {
            hint: 'Run deploy receive as root on the target, or remove the device nodes from the volume and from volumes[].special_files on the source.',
          },
        ),
        'fatal',
        'preflight',
      );
    }
    await mkdir(context.appsRoot, { recursive: true }).catch(() => undefined);
    this.#freeBytes = await freeBytesAt(context.appsRoot);
    const kept = await this.#keptBytes();
    const needed = Math.max(0, header.neededBytes - kept);
    if (this.#freeBytes < needed + TARGET_SPACE_MARGIN_BYTES) {
      throw new TargetFailure(
        new DependencyError(
          'TARGET_SPACE',
          `${context.hostName} has ${formatBytes(this.#freeBytes)} free in ${context.appsRoot}, the app needs ${formatBytes(needed)} (+${formatBytes(TARGET_SPACE_MARGIN_BYTES)} margin)`,
          {
            hint: 'Free space on the target or choose another target host.',
            details: { freeBytes: this.#freeBytes, neededBytes: needed },
          },
        ),
        'fatal',
        'preflight',
      );
    }
  }

  /** Bytes of verified parts earlier runs keep here (they need no new space if reused). */
  async #keptBytes(): Promise<number> {
    const runs = await listRecordedRuns(this.#options.hostContext.stateDir, this.#header!.app);
    const latest = runs.filter((run) => run.runId !== this.#runId && reusableParts(run).length > 0).at(-1);
    return latest ? reusableParts(latest).reduce((sum, part) => sum + part.bytes, 0) : 0;
  }

  #undoEnvironment(runId = this.#runId): UndoEnvironment {
    return {
      host: this.#options.host,
      hostContext: this.#options.hostContext,
      bus: this.#bus,
      runId,
      ...(this.#engine ? { engine: this.#engine } : {}),
      ...(this.#rawSql ? { sql: this.#rawSql } : {}),
    };
  }

  async #recover(): Promise<void> {
    const header = this.#header!;
    const context = this.#options.hostContext;
    const layoutOf = (runId: string): TargetLayout => buildTargetLayout({ ...header, runId }, context);
    if (!this.#options.check) {
      const { recovered, candidate } = await recoverEarlierRuns(
        this.#undoEnvironment(),
        header.app,
        header.runId,
        layoutOf,
      );
      this.#recovered = recovered;
      this.#candidate = candidate;
      for (const run of recovered) {
        this.#emit(
          'receive.recovered',
          `earlier run ${run.runId}: ${run.outcome === 'kept' ? `keeps ${run.keptParts.join(', ')} for a resume` : 'rolled back'}${run.undone.length > 0 ? ` (${run.undone.join('; ')})` : ''}${run.processesStopped > 0 ? `, ${run.processesStopped} process(es) stopped` : ''}`,
          { ...run },
          run.failed.length > 0 ? 'warn' : 'info',
        );
      }
    } else {
      const runs = await listRecordedRuns(context.stateDir, header.app);
      this.#candidate = runs
        .filter(
          (run) =>
            run.runId !== header.runId &&
            (run.outcome === undefined || run.outcome === 'kept-for-resume') &&
            reusableParts(run).length > 0,
        )
        .at(-1);
    }
    const layout = this.#layout!;
    const database = header.database;
    this.#occupied = {
      folder: await pathExists(layout.finalDir),
      database: this.#engine && database ? await this.#engine.databaseExists(this.#rawSql!, database.name) : false,
      repository: header.options.withHistory ? await pathExists(layout.repository) : false,
    };
    if (header.cutover) {
      await this.#checkCutoverBase();
      return;
    }
    const taken = [
      this.#occupied.folder ? `the app folder ${layout.finalDir}` : '',
      this.#occupied.database ? `the database ${database!.name}` : '',
      this.#occupied.repository ? `the Borg repository ${layout.repository}` : '',
    ].filter(Boolean);
    if (taken.length > 0 && !this.#options.replace) {
      throw new TargetFailure(
        new ConflictError('TARGET_APP_EXISTS', `${context.hostName} already has ${taken.join(', ')}`, {
          hint: 'Choose a host without this app, or pass --replace: the app there is stopped and kept aside until the new copy is verified and healthy, and put back if it is not.',
          details: { occupied: this.#occupied },
        }),
        'fatal',
        'preflight',
      );
    }
  }

  #offer(): ResumeOffer | undefined {
    const run = this.#candidate;
    if (run === undefined || run.archive === undefined) return undefined;
    return {
      runId: run.runId,
      archive: run.archive,
      parts: reusableParts(run).map((part) => ({ id: part.part, bytes: part.bytes, sha256: part.sha256 })),
    };
  }

  /** Reuses the candidate's verified parts when the source resumes its archive; otherwise rolls it back. */
  async #adoptOrDiscard(): Promise<void> {
    const run = this.#candidate;
    const contents = this.#contents!;
    const layout = this.#layout!;
    if (run !== undefined && contents.reusedArchiveOf === run.runId && run.archive === contents.archive) {
      const from = buildTargetLayout({ ...this.#header!, runId: run.runId }, this.#options.hostContext);
      // Our names for what we take over, recorded before the rename (write-ahead).
      this.#journal!.undo({ kind: 'remove-path', path: layout.stagingRoot, resumable: true });
      if (reusableParts(run).some((part) => part.part === 'database'))
        this.#journal!.undo({ kind: 'drop-database', name: layout.stageDatabase, resumable: true });
      const parts = await adoptRun(this.#undoEnvironment(), run, from, layout);
      this.#stagingMade = true;
      for (const part of reusableParts(run).filter((p) => parts.includes(p.part))) {
        this.#journal!.write({
          t: 'part',
          part: part.part,
          bytes: part.bytes,
          sha256: part.sha256,
          archive: contents.archive,
          fromArchive: true,
        });
        this.#parts.set(part.part, {
          id: part.part,
          status: 'reused',
          bytes: part.bytes,
          sha256: part.sha256,
          elapsedMs: 0,
          attempts: 0,
          fromArchive: true,
        });
      }
      this.#reused = { fromRun: run.runId, parts };
      this.#emit(
        'receive.reused',
        `reusing ${parts.join(', ')} verified by run ${run.runId} (archive ${run.archive})`,
        { fromRun: run.runId, parts },
      );
    } else if (run !== undefined) {
      const result = await discardRun(this.#undoEnvironment(), this.#header!.app, run, this.#runId);
      this.#emit(
        'receive.recovered',
        `earlier run ${run.runId}: its kept parts are not reused (archive ${run.archive ?? '?'} is not this run's ${contents.archive}); removed`,
        { runId: run.runId, undone: result.undone },
      );
    }
    this.#candidate = undefined;
    if (!this.#stagingMade) {
      this.#journal!.undo({ kind: 'remove-path', path: layout.stagingRoot, resumable: true });
      await mkdir(join(layout.stagingRoot, 'parts'), { recursive: true, mode: 0o700 });
      this.#stagingMade = true;
    }
  }

  // ---- parts --------------------------------------------------------------------------------------

  async #receiveParts(): Promise<void> {
    const header = this.#header!;
    const attempts = new Map<string, number>();
    for (;;) {
      const item = await this.#next();
      if (item.kind === 'end') break;
      if (item.kind === 'abort') {
        throw new TargetFailure(
          new TransportError('SOURCE_ABORTED', `the source gave up: ${item.abort.reason}`, {
            hint:
              item.abort.code === 'INTERRUPTED'
                ? 'Run the migration again: verified parts are reused.'
                : 'Fix what the source reports, then run the migration again.',
          }),
          item.abort.code === 'INTERRUPTED' ? 'input' : 'fatal',
          'source',
        );
      }
      if (item.kind === 'skip') {
        const held = this.#parts.get(item.skip.part);
        if (held?.status !== 'reused' || held.sha256 !== item.skip.sha256 || held.bytes !== item.skip.bytes) {
          throw new TargetFailure(
            new TransportError(
              'RESUME_PART_MISSING',
              `the source skipped part ${item.skip.part} (${item.skip.reason}), but this host does not hold it verified`,
              { hint: 'Run the migration again without resuming (deploy migrate ... --no-resume).' },
            ),
            'fatal',
            'integrity',
          );
        }
        this.#journal!.write({
          t: 'step',
          step: `receive:${item.skip.part}`,
          status: 'reused',
          detail: { fromRun: this.#reused?.fromRun },
        });
        this.#emit(
          'receive.part',
          `${item.skip.part}: reused (${formatBytes(item.skip.bytes)} verified by run ${this.#reused?.fromRun ?? '?'})`,
          { part: item.skip.part, status: 'reused', bytes: item.skip.bytes },
        );
        continue;
      }
      if (item.kind !== 'part')
        throw new TargetFailure(
          new TransportError('BUNDLE_OUT_OF_ORDER', `unexpected ${item.kind} record among the parts`),
          'fatal',
          'integrity',
        );
      const part = header.parts.find((candidate) => candidate.id === item.part);
      if (part === undefined)
        throw new TargetFailure(
          new TransportError(
            'BUNDLE_UNKNOWN_PART',
            `the bundle carries part ${item.part}, which its header does not announce`,
          ),
          'fatal',
          'integrity',
        );
      attempts.set(part.id, (attempts.get(part.id) ?? 0) + 1);
      const started = Date.now();
      const outcome = await this.#step(`receive:${part.id}`, (host) => this.#receivePart(host, part, item));
      if (!outcome.ok) {
        this.#emit(
          'receive.part',
          `${part.id}: the producer on ${header.source.host} failed (${outcome.message}); waiting for a retry`,
          { part: part.id, status: 'producer-failed' },
          'warn',
        );
        continue;
      }
      const elapsedMs = Date.now() - started;
      const report = {
        id: part.id,
        status: 'received' as const,
        bytes: outcome.trailer.bytes,
        sha256: outcome.trailer.sha256,
        elapsedMs,
        attempts: attempts.get(part.id) ?? 1,
        fromArchive: part.fromArchive,
      };
      this.#parts.set(part.id, report);
      this.#journal!.write({
        t: 'part',
        part: part.id,
        bytes: report.bytes,
        sha256: report.sha256,
        archive: this.#contents!.archive,
        fromArchive: part.fromArchive,
      });
      this.#emit(
        'receive.part',
        `${part.id}: ${formatBytes(report.bytes)} in ${(elapsedMs / 1000).toFixed(1)} s, verified (sha256 ${report.sha256.slice(0, 12)}...)`,
        { ...report },
      );
    }
    const missing = header.parts.filter((part) => !this.#parts.has(part.id)).map((part) => part.id);
    if (missing.length > 0)
      throw new TargetFailure(
        new TransportError('BUNDLE_PARTS_MISSING', `the bundle ended without part(s) ${missing.join(', ')}`),
        'fatal',
        'integrity',
      );
  }

  /** Consumes one part attempt into its consumer; a consumer that stops taking bytes for the window is a stall. */
  async #receivePart(
    host: Host,
    part: MigrationPart,
    item: Extract<BundleItem, { kind: 'part' }>,
  ): Promise<PartOutcome> {
    const layout = this.#layout!;
    const attempt: PartAttempt = { part: part.id, data: item.data, done: item.done };
    const stall = new AbortController();
    const windowMs = this.#header!.options.stallSeconds * 1000;
    let lastBytes = -1;
    let lastMoveAt = Date.now();
    let consumed = 0;
    const watchdog = setInterval(
      () => {
        const reader = this.#reader!;
        if (consumed !== lastBytes) {
          lastBytes = consumed;
          lastMoveAt = Date.now();
        }
        const idle = Date.now() - Math.max(lastMoveAt, reader.lastByteAt);
        if (idle < windowMs) return;
        // Bytes waiting in front of the consumer: it stopped taking them. None: the source stopped sending.
        stall.abort(
          item.data.readableLength > 0
            ? new TargetFailure(
                new TransportError(
                  'CONSUMER_STALLED',
                  `the consumer of ${part.id} took no bytes for ${Math.round(idle / 1000)} s`,
                  {
                    hint: 'Look at the consumer on this host (a stopped or hung process, a locked database), then run the migration again.',
                  },
                ),
                'fatal',
                'consumer',
              )
            : new TargetFailure(
                new TransportError(
                  'INPUT_STALLED',
                  `no byte of ${part.id} arrived from the source for ${Math.round(idle / 1000)} s`,
                  {
                    hint: 'The source stopped sending or the connection hangs; run the migration again (verified parts are reused).',
                  },
                ),
                'input',
                'transfer',
              ),
        );
      },
      Math.min(1000, windowMs / 4),
    );
    const onBytes = {
      onBytes: (total: number) => {
        consumed = total;
        if (Date.now() - this.#lastProgressShownAt >= 2000) {
          this.#lastProgressShownAt = Date.now();
          this.#emit(
            'stream.progress',
            `${part.id}: ${formatBytes(total)} received`,
            { stream: part.id, side: 'consumer', bytes: total },
            'debug',
          );
        }
      },
    };
    try {
      switch (part.kind) {
        case 'app-folder':
        case 'borg-repo':
          return await receiveTarPart(host, attempt, partDir(layout, part.id), onBytes, stall.signal);
        case 'volume':
        case 'volume-delta':
          // The volume's declared device nodes and FIFOs (app.yaml from the header, validated here) pass the guard.
          return await receiveTarPart(
            host,
            attempt,
            partDir(layout, part.id),
            onBytes,
            stall.signal,
            this.#specialFilesOf(part),
          );
        case 'db-roles': {
          const outcome = await receiveHeldPart(attempt);
          if (outcome.ok) {
            this.#held.set(part.id, outcome.text ?? '');
            // A restore gives objects to these roles: the missing ones exist (bare, no login) from now on.
            const engine = this.#engine!;
            const sql = createSqlClient(host, engine.clientArgv);
            const roles = this.#header!.database!.roles;
            this.#journal!.undo({ kind: 'drop-new-accounts', roles, existing: await engine.listAccounts(sql, roles) });
            await engine.createMissingRoles(sql, roles);
          }
          return outcome;
        }
        case 'db-grants': {
          const outcome = await receiveHeldPart(attempt);
          if (outcome.ok) this.#held.set(part.id, outcome.text ?? '');
          return outcome;
        }
        case 'database': {
          const engine = this.#engine!;
          const staging = engine.staging;
          if (staging.kind === 'dump-file') {
            // Held as a file in staging (inside the staging root's undo) until the commit restores it.
            return await receiveFilePart(attempt, databaseDumpFile(layout), onBytes, stall.signal);
          }
          const sql = createSqlClient(host, engine.clientArgv);
          this.#journal!.undo({ kind: 'drop-database', name: layout.stageDatabase, resumable: true });
          await engine.dropDatabase(sql, layout.stageDatabase).catch(() => undefined);
          await staging.createStaging(
            sql,
            layout.stageDatabase,
            this.#contents!.databaseSettings,
            this.#contents!.databaseExtensions,
          );
          const outcome = await receiveCommandPart(
            host,
            attempt,
            staging.restoreConsumer(layout.stageDatabase).argv,
            layout.appsRoot,
            onBytes,
            stall.signal,
          );
          if (!outcome.ok) await engine.dropDatabase(sql, layout.stageDatabase);
          else if (staging.fixRestored && this.#contents!.databaseFixups)
            await staging.fixRestored(sql, layout.stageDatabase, this.#contents!.databaseFixups);
          return outcome;
        }
      }
    } catch (error) {
      // The input broke off inside the part: the transport may know why (a dead sending ffl).
      const lostInput = error instanceof BundleError || (error instanceof TargetFailure && error.class === 'input');
      throw lostInput ? await this.#explainInputError(error) : error;
    } finally {
      clearInterval(watchdog);
    }
  }

  // ---- assemble, verify ---------------------------------------------------------------------------

  /**
   * Runs the plan's steps after the parts arrived, in order, switching on their kinds: assemble,
   * metadata, verification, commit, install, start, health, finish. Nothing is committed or started
   * while a verification check failed.
   */
  async #runSteps(): Promise<void> {
    const first = this.#plan.findIndex((step) => step.kind === 'assemble' || step.kind === 'stop-app');
    let app: AppFolder | undefined;
    for (const step of this.#plan.slice(first)) {
      if ((step.kind === 'commit' || step.kind === 'phase') && this.#checks.some((check) => !check.ok))
        this.#failVerification(step.kind === 'commit');
      switch (step.kind) {
        case 'assemble':
          await this.#step(step.id, () => this.#assemble());
          break;
        case 'stop-app':
          app = await this.#step(step.id, (host) => this.#stopForCutover(host));
          break;
        case 'check-base':
          await this.#step(step.id, () => this.#checkCutoverCopy());
          break;
        case 'apply-delta':
          await this.#step(step.id, () => this.#applyDelta(step.volume));
          break;
        case 'apply-metadata': {
          await this.#step(step.id, (host) =>
            this.#header!.cutover
              ? this.#applyCutoverMetadata(host, step.volume)
              : applyFidelity(host, this.#volumeDir(step.volume), this.#contents!.volumes[step.volume]!.fidelity),
          );
          break;
        }
        case 'verify-volume':
          await this.#step(step.id, (host) => this.#verifyVolume(host, step.volume));
          break;
        case 'verify-rows':
          await this.#step(step.id, (host) => this.#verifyRows(host));
          break;
        case 'verify-history':
          await this.#step(step.id, (host) => this.#verifyHistory(host));
          break;
        case 'commit':
          await this.#step(step.id, (host) => this.#commit(host));
          if (this.#header!.cutover) break;
          app = await loadAppFolder(this.#layout!.finalDir);
          // Whatever install or start leave running is stopped on a rollback (bin/stop, then by run id).
          this.#journal!.undo({ kind: 'stop-app', dir: this.#layout!.finalDir });
          break;
        case 'phase':
          // A cutover starts the copy it stopped: whatever start leaves running is stopped on a rollback.
          if (this.#header!.cutover && step.phase === 'start')
            this.#journal!.undo({ kind: 'stop-app', dir: this.#layout!.finalDir });
          await this.#step(step.id, (host) => this.#phase(host, app!, step.phase));
          break;
        case 'health':
          await this.#step(step.id, (host) => this.#health(host, app!));
          // The source ends a cutover's write-stop window here (the app serves), not after the clean-up below.
          this.#emit(
            'receive.healthy',
            `${app!.name} is healthy on ${this.#options.hostContext.hostName}`,
            {},
            'debug',
          );
          break;
        case 'finish':
          await this.#step(step.id, (host) => this.#finish(host));
          break;
        default:
          // preflight, lock, recover and receive steps ran before the parts arrived.
          break;
      }
    }
  }

  #failVerification(beforeCommit: boolean): never {
    const problems = this.#checks.filter((check) => !check.ok);
    throw new TargetFailure(
      new TransportError(
        'VERIFICATION_FAILED',
        `verification failed on ${this.#options.hostContext.hostName}: ${problems
          .slice(0, 5)
          .map((check) => `${check.name}: ${check.detail}`)
          .join('; ')}`,
        {
          hint: `${beforeCommit ? 'Nothing was made visible here' : 'What was committed here was rolled back'}. Look at the problems listed, then run the migration again.`,
        },
      ),
      'fatal',
      'verify',
    );
  }

  async #assemble(): Promise<void> {
    const header = this.#header!;
    const layout = this.#layout!;
    // From here the parts are one staged app: a rollback keeps none of them for a resume.
    this.#assembled = true;
    this.#journal!.write({ t: 'assembled' });
    for (const part of header.parts) {
      if (part.kind !== 'volume' || part.volume === undefined) continue;
      const target = join(layout.stagedApp, part.volume.path);
      if (await pathExists(target)) {
        // The files part carries no volume content: only an empty placeholder may be there.
        if ((await readdir(target).catch(() => ['?'])).length > 0)
          throw new TargetFailure(
            new TransportError(
              'VOLUME_IN_APP_FOLDER',
              `the app folder part already holds files in ${part.volume.path}, where volume ${part.volume.name} goes`,
            ),
            'fatal',
            'integrity',
          );
        await rmdir(target);
      }
      await mkdir(dirname(target), { recursive: true });
      await rename(partDir(layout, part.id), target);
    }
    const staged = await loadAppFolder(layout.stagedApp);
    const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
    if (
      staged.manifest.name !== header.app ||
      !same(staged.manifest.volumes, header.manifest.volumes) ||
      !same(staged.manifest.database, header.manifest.database)
    ) {
      throw new TargetFailure(
        new TransportError(
          'MANIFEST_CHANGED',
          `the app.yaml that arrived differs from the one in the bundle header (name, volumes or database)`,
          { hint: 'The app folder changed on the source during the migration; run it again.' },
        ),
        'fatal',
        'integrity',
      );
    }
  }

  #check(check: TargetCheck): void {
    this.#checks.push(check);
    this.#emit(
      'receive.verify',
      `verify ${check.name}: ${check.ok ? 'ok' : 'FAILED'} - ${check.detail}`,
      { ...check },
      check.ok ? 'info' : 'error',
    );
  }

  /** What the tar guard lets through for a volume part: its declared special files; devices only when running as root. */
  #specialFilesOf(part: MigrationPart): { specialFiles: readonly SpecialFileSpec[]; allowDevices: boolean } {
    const declared =
      this.#header!.manifest.volumes.find((volume) => volume.name === part.volume?.name)?.special_files ?? [];
    return { specialFiles: declared, allowDevices: process.getuid?.() === 0 };
  }

  /** Where a volume is checked and its metadata applied: the staged app, or (a cutover) the app's own folder. */
  #volumeDir(volume: string): string {
    const part = this.#header!.parts.find((candidate) => candidate.volume?.name === volume)!;
    return join(this.#header!.cutover ? this.#layout!.finalDir : this.#layout!.stagedApp, part.volume!.path);
  }

  // ---- cutover --------------------------------------------------------------------------------------

  /**
   * A cutover builds on the copy a finished migration left here: the folder must be here, and a run
   * record of this host must show that migration (or an earlier cutover) finished with the base
   * archive. Its volumes are compared with the base now, before the source stops taking writes.
   */
  async #checkCutoverBase(): Promise<void> {
    const header = this.#header!;
    const cutover = header.cutover!;
    const layout = this.#layout!;
    const context = this.#options.hostContext;
    if (!this.#occupied.folder) {
      throw new TargetFailure(
        new ConflictError(
          'CUTOVER_NO_COPY',
          `${context.hostName} has no ${header.app} in ${layout.finalDir} to cut over to`,
          { hint: `Migrate it first: deploy migrate ${header.app} --to ${context.hostName}` },
        ),
        'fatal',
        'preflight',
      );
    }
    const runs = await listRecordedRuns(context.stateDir, header.app);
    if (!runs.some((run) => run.archive === cutover.baseArchive && run.outcome === 'finished')) {
      throw new TargetFailure(
        new ConflictError(
          'CUTOVER_NO_BASE',
          `${context.hostName} has no finished migration of ${header.app} from archive ${cutover.baseArchive} (the base of this cutover)`,
          {
            hint: `The copy here was not made by that migration: migrate again (deploy migrate ${header.app} --to ${context.hostName} --replace), then cut over.`,
          },
        ),
        'fatal',
        'preflight',
      );
    }
    await this.#checkCutoverCopy();
  }

  /** The copy's volumes against the base archive: a difference refuses the cutover unless --force. */
  async #checkCutoverCopy(): Promise<void> {
    const header = this.#header!;
    const differences: string[] = [];
    for (const part of header.parts) {
      if (part.kind !== 'volume-delta' || part.volume === undefined) continue;
      // What the copy here wrote into a `target_writes: discard` volume (logs) is set aside anyway: the volume comes whole.
      if (header.manifest.volumes.find((volume) => volume.name === part.volume!.name)?.target_writes === 'discard')
        continue;
      const base = header.cutover!.volumes[part.volume.name]?.base ?? [];
      const dir = join(this.#layout!.finalDir, part.volume.path);
      for (const difference of await compareWithBase(dir, base)) differences.push(`${part.volume.name}/${difference}`);
    }
    if (differences.length === 0) return;
    const shown = `${differences.slice(0, 8).join('; ')}${differences.length > 8 ? `; and ${differences.length - 8} more` : ''}`;
    if (this.#options.force) {
      this.#emit(
        'receive.cutover',
        `the copy here differs from archive ${header.cutover!.baseArchive} (--force: going on; the final verification decides): ${shown}`,
        { differences: differences.length },
        'warn',
      );
      return;
    }
    throw new TargetFailure(
      new ConflictError(
        'CUTOVER_TARGET_CHANGED',
        `the copy of ${header.app} on ${this.#options.hostContext.hostName} changed since the migration (archive ${header.cutover!.baseArchive}): ${shown}`,
        {
          hint: "Find out who wrote there. To replace the copy with the source's whole: deploy migrate --replace; to apply the delta anyway: deploy cutover --force.",
          details: { differences },
        },
      ),
      'fatal',
      'preflight',
    );
  }

  /**
   * A cutover's metadata: the copy's xattrs/ACLs are kept for the undo, then made exactly the source's
   * (an attribute the source dropped goes here too), then the rest of the fidelity step.
   */
  async #applyCutoverMetadata(host: Host, volume: string): Promise<void> {
    const dir = this.#volumeDir(volume);
    const fidelity = this.#contents!.volumes[volume]!.fidelity;
    await mkdir(this.#layout!.cutoverUndoDir, { recursive: true, mode: 0o700 });
    await keepXattrsForUndo(
      host,
      dir,
      join(this.#layout!.cutoverUndoDir, `xattrs-${partDirName(`delta:${volume}`)}.dump`),
      this.#journal!,
    );
    const removed = await makeXattrsExactly(host, dir, fidelity.xattrDump);
    if (removed > 0)
      this.#emit('receive.cutover', `removed ${removed} xattr(s)/ACL(s) in ${dir} that the source no longer has`, {
        removedXattrs: removed,
      });
    await applyFidelity(host, dir, { ...fidelity, xattrDump: '' });
  }

  /** Stops the copy here for the cutover; it is started again on a rollback (recorded first). */
  async #stopForCutover(host: Host): Promise<AppFolder> {
    const layout = this.#layout!;
    const journal = this.#journal!;
    // From here the parts are being applied: a rollback keeps none of them for a resume.
    this.#assembled = true;
    this.#journal!.write({ t: 'assembled' });
    const app = await loadAppFolder(layout.finalDir);
    const restart = journal.undo({ kind: 'start-app', dir: layout.finalDir });
    const stopped = await runPhase({
      app,
      phase: 'stop',
      host,
      bus: this.#bus,
      context: { runId: this.#runId, role: 'target', host: this.#options.hostContext },
    });
    if (stopped.status === 'failed')
      throw new TargetFailure(
        new DeployError('script', 'PREVIOUS_STOP_FAILED', `${app.name} here did not stop: ${stopped.reason ?? ''}`, {
          hint: `Stop it by hand (deploy stop ${app.name}) and run the cutover again.`,
        }),
        'fatal',
        'commit',
      );
    if (stopped.status === 'skipped') journal.write({ t: 'cancel', id: restart });
    this.#committed = true;
    return app;
  }

  async #applyDelta(volume: string): Promise<void> {
    const part = this.#header!.parts.find(
      (candidate) => candidate.kind === 'volume-delta' && candidate.volume?.name === volume,
    )!;
    const delta = this.#contents!.volumes[volume]!.delta!;
    const live = this.#volumeDir(volume);
    // With --force, what only the copy here has goes aside too (the final verification then sees the source's volume).
    const extras =
      this.#options.force && !delta.whole
        ? (await compareWithBase(live, this.#header!.cutover!.volumes[volume]?.base ?? []))
            .filter((line) => line.endsWith(': new here'))
            .map((line) => line.slice(0, -': new here'.length))
        : [];
    const applied = await applyVolumeDelta({
      live,
      incoming: partDir(this.#layout!, part.id),
      undoDir: join(this.#layout!.cutoverUndoDir, partDirName(part.id)),
      delta,
      extras,
      journal: this.#journal!,
      asRoot: process.getuid?.() === 0,
    });
    this.#deltaApplied[volume] = applied;
    this.#emit(
      'receive.delta',
      `${volume}: ${applied.movedAside} entries moved aside, ${applied.placed} put in place, ${applied.modes} modes/owners set (${delta.counts.added} added, ${delta.counts.changed} changed, ${delta.counts.removed} removed, ${delta.counts.metadata} metadata-only)`,
      { volume, ...applied, counts: delta.counts },
    );
  }

  async #verifyVolume(host: Host, volume: string): Promise<void> {
    const dir = this.#volumeDir(volume);
    const contents = this.#contents!.volumes[volume]!;
    // A cutover's delta (not a whole volume): hashed are the files it brought; the others, verified by the
    // migration and found unchanged by check-base, are compared by path and size (decision 0008).
    const delta = contents.delta !== undefined && contents.delta.whole !== true ? contents.delta : undefined;
    const brought = delta === undefined ? undefined : new Set(delta.sent);
    const hashOnly =
      brought === undefined
        ? undefined
        : (path: string): boolean => brought.has(path) || [...ancestors(path)].some((dir) => brought.has(dir));
    const expected =
      hashOnly === undefined
        ? contents
        : {
            ...contents,
            listing: contents.listing.map((file) => (hashOnly(file.path) ? file : { ...file, sha256: '' })),
          };
    // The walks of the volume read only, so they run at once (in the write-stop window of a cutover, too):
    // the metadata scan's processes beside the file digests and the symlink and special-file listings.
    const [walked, metadata] = await Promise.allSettled([
      Promise.all([
        digestTree(dir, '', hashOnly),
        expected.symlinks === undefined ? undefined : listSymlinks(dir),
        listSpecialFiles(dir),
      ]),
      isFidelityTrivial(expected.fidelity) ? undefined : scanVolumeMetadata(host, dir, { allMtimes: true }),
    ]);
    if (walked.status === 'rejected') throw walked.reason;
    if (metadata.status === 'rejected') throw metadata.reason;
    const [got, symlinks, special] = walked.value;
    const metadataScan = metadata.value;
    const differences = compareDigests(expected.listing, got);
    // Symlinks are content too: a missing or re-pointed link fails the volume (older sources send no symlink list).
    if (expected.symlinks !== undefined) differences.push(...compareSymlinks(expected.symlinks, symlinks!));
    // Declared device nodes and FIFOs: the type, and a device's major/minor (an undeclared one never passed the guard).
    differences.push(...compareSpecialFiles(expected.special ?? [], special));
    const bytes = expected.listing.reduce((sum, file) => sum + file.size, 0);
    const links = expected.symlinks === undefined ? '' : `, ${expected.symlinks.length} symlinks`;
    const specials =
      special.length === 0 ? '' : `, ${special.length} declared device nodes/FIFOs of the same type and device number`;
    const hashed =
      hashOnly === undefined
        ? 'every SHA-256 equal to the archive'
        : `the ${expected.listing.filter((file) => hashOnly(file.path)).length} files the delta brought with SHA-256 equal to the archive, the others with its sizes`;
    this.#check({
      name: `volume ${volume}`,
      ok: differences.length === 0,
      detail:
        differences.length === 0
          ? `${expected.listing.length} files, ${bytes} bytes, ${hashed}${links}${links ? ' with the same targets' : ''}${specials}`
          : differences.join('; '),
    });
    if (metadataScan !== undefined) {
      const fidelity = expected.fidelity;
      const scanned = metadataScan;
      const diff = compareFidelity(fidelity, scanned.fidelity);
      // Owners can only be given by root (tar does the same); the mode and the mtimes are always checked.
      diff.push(
        ...compareMtimes(
          fidelity,
          { mtimes: scanned.allMtimes ?? [], root: scanned.fidelity.root! },
          { owner: process.getuid?.() === 0 },
        ),
      );
      const extra = `${(fidelity.subsecondMtimes ?? []).length} sub-second mtimes${fidelity.root ? ", the root's mode, owner and mtime" : ''}`;
      this.#check({
        name: `metadata ${volume}`,
        ok: diff.length === 0,
        detail:
          diff.length === 0
            ? `${fidelity.xattrFiles} xattr files, ${fidelity.aclFiles} ACL files, ${fidelity.lateMtimes.length} late mtimes, ${fidelity.sparseFiles.length} sparse files, ${extra} match`
            : diff.join('; '),
      });
    }
  }

  async #verifyRows(host: Host): Promise<void> {
    const expected = this.#contents!.rowCounts;
    const engine = this.#engine!;
    let got: Record<string, number>;
    try {
      // Counted where the restore is: the staging database, or (dump-file engines) the database itself after the commit.
      got = await engine.countRows(
        createSqlClient(host, engine.clientArgv),
        engine.staging.kind === 'rename' ? this.#layout!.stageDatabase : this.#header!.database!.name,
      );
    } catch (error) {
      this.#check({ name: 'database rows', ok: false, detail: `cannot count rows: ${(error as Error).message}` });
      return;
    }
    if (expected === undefined) {
      this.#check({ name: 'database rows', ok: false, detail: 'the source sent no row counts to compare with' });
      return;
    }
    const tables = [...new Set([...Object.keys(expected), ...Object.keys(got)])].sort();
    const differing = tables
      .filter((table) => expected[table] !== got[table])
      .map((table) => `${table} source ${expected[table] ?? 'absent'}, target ${got[table] ?? 'absent'}`);
    const rows = Object.values(got).reduce((sum, value) => sum + value, 0);
    this.#check({
      name: 'database rows',
      ok: differing.length === 0,
      detail:
        differing.length === 0
          ? `${tables.length} tables, ${rows} rows, every count equal to the source at backup time`
          : differing.join('; '),
    });
  }

  #historyEnv(repository: string): Record<string, string> {
    const header = this.#header!;
    const env: Record<string, string> = {
      BORG_REPO: repository,
      BORG_BASE_DIR: posix.join(this.#options.hostContext.stateDir, 'apps', header.app, 'borg'),
      BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
      BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
    };
    const passphrase = header.manifest.borg?.passphrase_file;
    if (passphrase) env.BORG_PASSCOMMAND = `cat -- ${posix.join(this.#layout!.stagedApp, passphrase)}`;
    return env;
  }

  async #verifyHistory(host: Host): Promise<void> {
    const repository = partDir(this.#layout!, 'history');
    const env = this.#historyEnv(repository);
    const list = await host.run({ argv: [...BORG_LIST_ARGV], env, timeoutMs: 30 * 60_000 });
    const names = list.stdout.split('\n').filter(Boolean);
    const expected = this.#contents!.historyArchives ?? [];
    const same = list.exitCode === 0 && JSON.stringify(names) === JSON.stringify(expected);
    this.#check({
      name: 'borg history',
      ok: same,
      detail: same
        ? `${names.length} archives listed, as on the source`
        : `archive lists differ (source ${expected.length}, here ${names.length}; borg list ${describeExit(list)}: ${list.stderr.trim().split('\n').pop() ?? ''})`,
    });
    const check = await host.run({ argv: [...BORG_CHECK_ARGV], env, timeoutMs: 6 * 3600_000 });
    this.#check({
      name: 'borg check',
      ok: check.exitCode === 0,
      detail:
        check.exitCode === 0
          ? 'repository and archives consistent here'
          : `borg check ${describeExit(check)}: ${check.stderr.trim().split('\n').slice(-2).join(' ')}`,
    });
  }

  // ---- commit -------------------------------------------------------------------------------------

  /**
   * Makes the verified app visible: a replaced app is stopped and its folder, database and
   * repository set aside (kept until the new one is healthy); the staged ones take their names;
   * roles/users get their attributes and grants. Every action's undo is recorded first.
   */
  async #commit(host: Host): Promise<void> {
    const header = this.#header!;
    const layout = this.#layout!;
    const journal = this.#journal!;
    const engine = this.#engine;
    this.#committed = true;
    const cutover = header.cutover !== undefined;
    if (this.#occupied.folder && !cutover) {
      const previous = await loadAppFolder(layout.finalDir);
      const restart = journal.undo({ kind: 'start-app', dir: layout.finalDir });
      const stopped = await runPhase({
        app: previous,
        phase: 'stop',
        host,
        bus: this.#bus,
        context: { runId: this.#runId, role: 'target', host: this.#options.hostContext },
      });
      if (stopped.status === 'failed')
        throw new TargetFailure(
          new DeployError(
            'script',
            'PREVIOUS_STOP_FAILED',
            `the app already here did not stop: ${stopped.reason ?? ''}`,
            { hint: `Stop it by hand (deploy stop ${header.app}) and run the migration again.` },
          ),
          'fatal',
          'commit',
        );
      if (stopped.status === 'skipped') journal.write({ t: 'cancel', id: restart });
      journal.undo({ kind: 'rename-path', from: layout.asideDir, to: layout.finalDir });
      await rename(layout.finalDir, layout.asideDir);
    }
    if (!cutover) {
      journal.undo({ kind: 'remove-path', path: layout.finalDir });
      await rename(layout.stagedApp, layout.finalDir);
    }
    if (engine && header.database) {
      const sql = createSqlClient(host, engine.clientArgv);
      const roles = header.database.roles;
      const rolesSql = this.#held.get('roles');
      if (rolesSql !== undefined && roles.length > 0) {
        // What the roles/users are now, to put back: their attributes, password verifiers, grants (0600).
        const snapshot = join(
          incomingDir(this.#options.hostContext.stateDir, header.app),
          `${header.runId}.accounts.sql`,
        );
        await writeFile(snapshot, await engine.exportRolesSql(sql, roles, 'all'), { mode: 0o600 });
        journal.undo({ kind: 'restore-accounts', file: snapshot });
        journal.undo({ kind: 'drop-new-accounts', roles, existing: await engine.listAccounts(sql, roles) });
        if (rolesSql.trim() !== '') await sql.query(rolesSql);
      }
      const name = header.database.name;
      const staging = engine.staging;
      if (staging.kind === 'rename') {
        if (this.#occupied.database) {
          journal.undo({ kind: 'rename-database', from: layout.asideDatabase, to: name });
          await staging.moveDatabase(sql, name, layout.asideDatabase);
        }
        journal.undo({ kind: 'drop-database', name });
        await staging.moveDatabase(sql, layout.stageDatabase, name);
        await staging.finishDatabase(sql, name, this.#contents!.databaseSettings);
      } else {
        if (this.#occupied.database) {
          // Kept aside as a whole dump (written to a temporary name first), then dropped; put back from it on a rollback.
          const aside = asideDumpFile(layout);
          await dumpToFile(host, staging.asideDumpArgv(name), aside);
          journal.undo({ kind: 'restore-database', name, file: aside });
          await engine.dropDatabase(sql, name);
        }
        journal.undo({ kind: 'drop-database', name });
        await restoreFromFile(host, staging.restoreArgv(), databaseDumpFile(layout));
      }
      const grants = this.#held.get('grants');
      if (grants !== undefined && grants.trim() !== '') await sql.query(grants);
    }
    if (header.parts.some((part) => part.kind === 'borg-repo')) {
      if (this.#occupied.repository) {
        journal.undo({ kind: 'rename-path', from: layout.asideRepository, to: layout.repository });
        await rename(layout.repository, layout.asideRepository);
      }
      journal.undo({ kind: 'remove-path', path: layout.repository });
      await mkdir(dirname(layout.repository), { recursive: true });
      await rename(partDir(layout, 'history'), layout.repository);
    }
    this.#emit(
      'receive.committed',
      cutover
        ? `the database of ${header.app} is in place (the previous one waits aside until the app is healthy)`
        : `${header.app} is in place in ${layout.finalDir}${this.#occupied.folder ? ` (the previous copy waits in ${layout.asideDir})` : ''}`,
      { replaced: this.#occupied },
    );
  }

  // ---- install, start, health, finish -------------------------------------------------------------

  async #phase(host: Host, app: AppFolder, name: 'install' | 'start'): Promise<void> {
    const result = await runPhase({
      app,
      phase: name,
      host,
      bus: this.#bus,
      context: {
        runId: this.#runId,
        role: 'target',
        host: this.#options.hostContext,
        archive: this.#contents!.archive,
      },
    });
    if (result.status === 'failed') {
      throw new TargetFailure(
        new DeployError(
          'script',
          `TARGET_${name.toUpperCase()}_FAILED`,
          `${app.name}:${name} failed on ${this.#options.hostContext.hostName}: ${result.reason ?? ''}`,
          {
            hint: 'See its output above; the target was rolled back. Fix the cause and run the migration again.',
            details: { stderrTail: result.stderrTail },
          },
        ),
        'fatal',
        name,
      );
    }
  }

  async #health(host: Host, app: AppFolder): Promise<void> {
    const environment = { app, host, hostContext: this.#options.hostContext };
    this.#baseUrl = resolveBaseUrl(environment);
    const results: CheckResult[] = await runChecks({ ...environment, baseUrl: this.#baseUrl });
    for (const result of results)
      this.#check({
        name: `health ${result.name}`,
        ok: result.status !== 'failed',
        detail: `${result.status === 'failed' ? (result.reason ?? 'failed') : result.status} (${(result.durationMs / 1000).toFixed(1)} s)`,
      });
    const failed = results.filter((result) => result.status === 'failed');
    if (failed.length > 0) {
      throw new TargetFailure(
        new DeployError(
          'script',
          'TARGET_UNHEALTHY',
          `${app.name} is not healthy on ${this.#options.hostContext.hostName}: ${failed.map((result) => `${result.name}: ${result.reason ?? 'failed'}`).join('; ')}`,
          {
            hint: 'The new copy was removed and what was here before put back. Fix the cause, then run the migration again.',
          },
        ),
        'fatal',
        'health',
      );
    }
  }

  /** The new app is healthy: drop what a replaced app kept aside, and the staging. */
  async #finish(host: Host): Promise<void> {
    const layout = this.#layout!;
    const engine = this.#engine;
    if (this.#occupied.database && engine?.staging.kind === 'rename')
      await engine.dropDatabase(createSqlClient(host, engine.clientArgv), layout.asideDatabase);
    await rm(layout.asideDir, { recursive: true, force: true });
    await rm(layout.asideRepository, { recursive: true, force: true });
    await rm(layout.cutoverUndoDir, { recursive: true, force: true });
    await rm(layout.stagingRoot, { recursive: true, force: true });
    await rm(join(incomingDir(this.#options.hostContext.stateDir, this.#header!.app), `${this.#runId}.accounts.sql`), {
      force: true,
    });
  }

  // ---- rollback and report ------------------------------------------------------------------------

  /**
   * Undoes what this run did, in reverse, and waits for its processes to be gone. When only the
   * input was lost before the commit, the verified parts made from the archive stay in staging
   * (invisible, nothing running) for a resume.
   */
  async #rollback(failure: TargetFailure): Promise<{ undone: string[]; failed: string[]; kept: string[] }> {
    const journal = this.#journal;
    if (journal === undefined) return { undone: [], failed: [], kept: [] };
    // Verified parts wait for a resume when only the input was lost; a pairing run has no resume (one share, pulled once).
    const keep =
      failure.class === 'input' &&
      !this.#assembled &&
      this.#header?.options.pairing !== true &&
      this.#header?.cutover === undefined
        ? [...this.#parts.values()].filter((part) => part.fromArchive).map((part) => part.id)
        : [];
    const layout = this.#layout!;
    if (keep.length > 0) await pruneStaging(layout, keep);
    const run = (await listRecordedRuns(this.#options.hostContext.stateDir, this.#header!.app)).find(
      (candidate) => candidate.runId === this.#runId,
    );
    const result = await undoActions(
      this.#undoEnvironment(),
      journal,
      run?.pending ?? [],
      (action) => holdsKeptParts(action, keep, layout),
      (line, ok) => this.#emit('receive.rollback', `rollback: ${line}`, { ok }, ok ? 'info' : 'error'),
    );
    // Processes of this run that no undo covered (a consumer mid-part, a script of a step that failed).
    await stopRunProcesses(this.#runId);
    // A cutover's set-aside entries went back where they were; what an undo could not put back stays there.
    if (this.#header?.cutover && result.failed.length === 0)
      await rm(layout.cutoverUndoDir, { recursive: true, force: true });
    await rm(join(incomingDir(this.#options.hostContext.stateDir, this.#header!.app), `${this.#runId}.accounts.sql`), {
      force: true,
    });
    journal.write({ t: 'end', outcome: keep.length > 0 ? 'kept-for-resume' : 'rolled-back' });
    if (keep.length > 0)
      this.#emit(
        'receive.kept',
        `kept ${keep.join(', ')} verified in ${layout.stagingRoot} for a resume (invisible, nothing running); run the migration again to reuse them`,
        { kept: keep },
      );
    return { ...result, kept: keep };
  }

  #report(
    failure: TargetFailure | undefined,
    rollback: { undone: string[]; failed: string[]; kept: string[] } = { undone: [], failed: [], kept: [] },
  ): TargetReport {
    const header = this.#header;
    const offer = this.#options.check ? this.#offer() : undefined;
    const problems = this.#checks.filter((check) => !check.ok).map((check) => `${check.name}: ${check.detail}`);
    const report: TargetReport = {
      ok: failure === undefined,
      app: header?.app ?? '',
      runId: this.#runId,
      host: this.#options.hostContext.hostName,
      ...(header ? { source: header.source.host } : {}),
      ...(this.#contents && !this.#options.check ? { archive: this.#contents.archive } : {}),
      ...(this.#journal ? { journal: this.#journal.path } : {}),
      ...(this.#options.check ? { check: true } : {}),
      ...(this.#layout && header
        ? {
            layout: {
              finalDir: this.#layout.finalDir,
              appsRoot: this.#layout.appsRoot,
              stateDir: this.#layout.stateDir,
              freeBytes: this.#freeBytes,
              neededBytes: header.neededBytes,
            },
          }
        : {}),
      ...(this.#plan.length > 0 ? { plan: this.#planData() } : {}),
      parts: [...this.#parts.values()].map(({ fromArchive: _fromArchive, ...part }) => part),
      ...(offer ? { resumable: offer } : {}),
      ...(this.#reused ? { reused: this.#reused } : {}),
      recovered: this.#recovered,
      ...(this.#occupied.folder || this.#occupied.database || this.#occupied.repository
        ? { replaced: this.#occupied }
        : {}),
      verification: { ok: problems.length === 0 && this.#checks.length > 0, checks: this.#checks, problems },
      ...(failure
        ? {
            failure: {
              step: this.#current,
              stage: failure.stage,
              kind: failure.kind,
              code: failure.code,
              message: failure.message,
              ...(failure.hint ? { hint: failure.hint } : {}),
              retryable: failure.class === 'input',
            },
          }
        : {}),
      rolledBack: rollback.undone,
      rollbackFailed: rollback.failed,
      kept: rollback.kept,
      ...(this.#baseUrl ? { baseUrl: this.#baseUrl } : {}),
      ...(header?.cutover
        ? {
            cutover: {
              baseArchive: header.cutover.baseArchive,
              applied: this.#deltaApplied,
              ...(header.cutover.pairing && !this.#options.check
                ? {
                    onSource: pairedCutoverNextStep({
                      app: header.app,
                      ok: failure === undefined,
                      rollbackFailed: rollback.failed,
                      ...header.cutover.pairing,
                    }),
                  }
                : {}),
            },
          }
        : {}),
      durationMs: Date.now() - this.#started,
      deployVersion: DEPLOY_VERSION,
    };
    this.#bus.emit('receive.report', {
      app: report.app,
      level: report.ok ? 'info' : 'error',
      message: report.ok
        ? `${report.app} received, verified and healthy on ${report.host}`
        : `receiving ${report.app} failed at [${report.failure?.step}]: ${report.failure?.message}`,
      data: { report },
    });
    return report;
  }
}

/** The parent directories of a relative path, nearest first ("a/b/c" -> "a/b", "a"). */
function* ancestors(path: string): Generator<string> {
  for (let index = path.lastIndexOf('/'); index > 0; index = path.lastIndexOf('/', index - 1))
    yield path.slice(0, index);
}
