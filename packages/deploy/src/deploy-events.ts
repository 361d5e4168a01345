/**
 * Every event deploy emits, by type, with its data: the entries of core's DeployEventDataMap, which
 * makes DeployEvent the union of them (docs/decisions/0010-ffl-standin-package-and-typed-events.md). An event type
 * without an entry here cannot be emitted; `undefined` = the event carries no data.
 */
import type { DeployEventType } from '@deploykit/core';
import type { StageFailure, StreamEvent, StreamPath } from '@deploykit/transport';
import type { CheckResult } from './health/check-types.js';
import type { VerifyComparison } from './health/verify-app.js';
import type { PruneReport } from './migrate/archive-retention.js';
import type { DeltaRecord } from './migrate/migration-header.js';
import type { PlanStepView } from './migrate/source-plan.js';
import type { MigrateReport, PartReport } from './migrate/source-run.js';
import type { VolumeDeltaStats } from './migrate/volume-delta.js';
import type { DeltaApplied } from './receive/apply-delta.js';
import type { RecoveredRun } from './receive/recover-runs.js';
import type { TargetOccupancy } from './receive/target-plan.js';
import type { ResumeOffer, TargetCheck, TargetReport } from './receive/target-run.js';

/**
 * A stream event of one kind as `stream.<kind>` data: whole (the migration run passes it on as it
 * came), or without `kind` and `stream`, which the event's type and `stream` field carry
 * (createStreamEventPublisher).
 */
export type StreamEventData<K extends StreamEvent['kind']> =
  | Extract<StreamEvent, { kind: K }>
  | Omit<Extract<StreamEvent, { kind: K }>, 'kind' | 'stream'>;

/** `stream.progress` as the migration's producer meter reports a part (expected bytes from the plan). */
export interface ProducerProgressData {
  readonly bytes: number;
  readonly expected?: number;
  readonly rate: number;
  readonly side: 'producer';
}

/** `stream.progress` as the target reports a part's bytes received so far. */
export interface ConsumerProgressData {
  readonly stream: string;
  readonly side: 'consumer';
  readonly bytes: number;
}

/** The `receive.part` data: a part received and verified, reused, or waiting after its producer failed. */
export type ReceivePartData =
  | (PartReportOfTarget & { readonly fromArchive?: boolean })
  | { readonly part: string; readonly status: 'reused'; readonly bytes: number }
  | { readonly part: string; readonly status: 'producer-failed' };

type PartReportOfTarget = TargetReport['parts'][number];

declare module '@deploykit/core' {
  interface DeployEventDataMap {
    // An app's phase scripts (script-runner.ts, actions/phase-action.ts).
    'phase.plan': undefined;
    'phase.start': { readonly timeoutSeconds: number };
    'phase.end':
      | { readonly status: 'failed' | 'skipped' }
      | {
          readonly status: 'ok' | 'failed' | 'skipped';
          readonly exitCode: number | null;
          readonly signal: string | null;
          readonly durationMs: number;
          readonly timedOut: boolean;
        };
    'script.output': { readonly channel: 'stdout' | 'stderr' };
    'script.detach': undefined;
    // One stream's life (actions/stream-events.ts, the migration's parts).
    'stream.ready': StreamEventData<'ready'>;
    'stream.connected': StreamEventData<'connected'>;
    'stream.path': StreamEventData<'path'>;
    'stream.progress': StreamEventData<'progress'> | ProducerProgressData | ConsumerProgressData;
    'stream.stalled': StreamEventData<'stalled'>;
    'stream.retry': StreamEventData<'retry'>;
    'stream.received': StreamEventData<'received'>;
    'stream.done': StreamEventData<'done'>;
    'stream.failed': StreamEventData<'failed'> | StageFailure;
    'stream.recovered': undefined;
    // Health checks and verification (deploy health, update, verify).
    'check.end': CheckResult;
    'verify.compare': VerifyComparison;
    // deploy update, remove, setup.
    'update.start': undefined;
    'update.end': undefined;
    'update.rollback': undefined;
    'remove.step': undefined;
    'remove.kept': undefined;
    'setup.step': undefined;
    // The source side of a migration or cutover (cli/commands/migrate.ts, cutover.ts, migrate/source-run.ts).
    'migrate.start': undefined;
    'migrate.note': undefined;
    'migrate.plan': { readonly transport: string; readonly steps: readonly PlanStepView[] };
    'migrate.step': { readonly step: string };
    'migrate.path': { readonly path: StreamPath };
    'migrate.part': PartReport;
    'migrate.retry': undefined;
    'migrate.recovered': undefined;
    'migrate.failed': { readonly step: string; readonly code: string };
    'migrate.pruned': PruneReport;
    'migrate.pair': { readonly link: string; readonly command: string; readonly waitSeconds: number };
    'migrate.paired': undefined;
    'migrate.report': { readonly report: MigrateReport };
    'migrate.cutover': undefined;
    'cutover.start': undefined;
    'cutover.delta': DeltaRecord['counts'] & {
      readonly volume: string;
      readonly bytes: number;
      readonly stats: VolumeDeltaStats;
    };
    'cutover.stopped': undefined;
    'cutover.resumed': undefined;
    'cutover.moved': undefined;
    /** A paired cutover from its trailer on: this host stays stopped until its operator types the new host's verdict. */
    'cutover.pending': undefined;
    /** Writes resumed while a paired cutover waited: it can no longer be confirmed. */
    'cutover.abandoned': undefined;
    // The target side (receive/target-run.ts), relayed by the source as `<app>@<target>`.
    'receive.start': { readonly source: string; readonly parts: readonly string[] };
    'receive.accepted': { readonly resumable?: ResumeOffer };
    'receive.plan': { readonly plan: NonNullable<TargetReport['plan']> };
    'receive.step': { readonly step: string };
    'receive.recovered': RecoveredRun | { readonly runId: string; readonly undone: readonly string[] };
    'receive.reused': { readonly fromRun: string; readonly parts: readonly string[] };
    'receive.part': ReceivePartData;
    'receive.verify': TargetCheck;
    /** The copy differs from the base (--force), or the metadata step removed attributes the source dropped. */
    'receive.cutover': { readonly differences: number } | { readonly removedXattrs: number };
    'receive.delta': DeltaApplied & { readonly volume: string; readonly counts: DeltaRecord['counts'] };
    'receive.committed': { readonly replaced: TargetOccupancy };
    /** The app passed its health checks here: a cutover's write-stop window ends (the clean-up follows). */
    'receive.healthy': Readonly<Record<string, never>>;
    'receive.rollback': { readonly ok: boolean };
    'receive.kept': { readonly kept: readonly string[] };
    'receive.report': { readonly report: TargetReport };
  }
}

/** Every event type, once (the compiler checks it against the map both ways). */
const EVENT_TYPES = {
  'phase.plan': true,
  'phase.start': true,
  'phase.end': true,
  'script.output': true,
  'script.detach': true,
  'stream.ready': true,
  'stream.connected': true,
  'stream.path': true,
  'stream.progress': true,
  'stream.stalled': true,
  'stream.retry': true,
  'stream.received': true,
  'stream.done': true,
  'stream.failed': true,
  'stream.recovered': true,
  'check.end': true,
  'verify.compare': true,
  'update.start': true,
  'update.end': true,
  'update.rollback': true,
  'remove.step': true,
  'remove.kept': true,
  'setup.step': true,
  'migrate.start': true,
  'migrate.note': true,
  'migrate.plan': true,
  'migrate.step': true,
  'migrate.path': true,
  'migrate.part': true,
  'migrate.retry': true,
  'migrate.recovered': true,
  'migrate.failed': true,
  'migrate.pruned': true,
  'migrate.pair': true,
  'migrate.paired': true,
  'migrate.report': true,
  'migrate.cutover': true,
  'cutover.start': true,
  'cutover.delta': true,
  'cutover.stopped': true,
  'cutover.resumed': true,
  'cutover.moved': true,
  'cutover.pending': true,
  'cutover.abandoned': true,
  'receive.start': true,
  'receive.accepted': true,
  'receive.plan': true,
  'receive.step': true,
  'receive.recovered': true,
  'receive.reused': true,
  'receive.part': true,
  'receive.verify': true,
  'receive.cutover': true,
  'receive.delta': true,
  'receive.committed': true,
  'receive.healthy': true,
  'receive.rollback': true,
  'receive.kept': true,
  'receive.report': true,
} as const satisfies Record<DeployEventType, true>;

/** The event types this version emits: what parseDeployEvent takes as typed from another deploy. */
export const DEPLOY_EVENT_TYPES: ReadonlySet<string> = new Set<DeployEventType>(
  Object.keys(EVENT_TYPES) as DeployEventType[],
);
