import { createInterface } from 'node:readline';
import {
  ConflictError,
  DeployError,
  displayArgv,
  TransportError,
  ScriptError,
  type Host,
  type HostProcess,
} from '@deploykit/core';
import { signalAllProcessGroups, tailLines } from '@deploykit/host';
import { runPhase } from '../script-runner.js';
import { acquireAppLock, type AppLock } from './app-lock.js';
import { buildDropDatabaseArgv } from './database-commands.js';
import type { FidelityMetadata } from './fidelity.js';
import { Journal } from './journal.js';
import type { MigrateStep, MigrationContext } from './plan.js';
import { readSourceRowCounts, verifyData, verifyTarget, type VerificationReport } from './verify-migration.js';

/** Per stream: what moved, how, and how long it took. */
export interface StreamReport {
  readonly name: string;
  readonly bytes: number;
  readonly elapsedMs: number;
  readonly rate: number;
  readonly path: string;
  readonly retries: number;
  readonly sha256?: string;
}

/** The result of a migration run. */
export interface MigrateReport {
  readonly ok: boolean;
  readonly app: string;
  readonly runId: string;
  readonly target: string;
  readonly transport: string;
  readonly archive: string;
  readonly journal: string;
  readonly streams: readonly StreamReport[];
  readonly verification?: VerificationReport;
  readonly failure?: { readonly step: string; readonly kind: string; readonly code: string; readonly message: string; readonly hint?: string };
  readonly rolledBack?: readonly string[];
  readonly durationMs: number;
}

interface ExecuteOptions extends MigrationContext {
  readonly journal: Journal;
  /** Aborted on Ctrl+C: the running step is stopped and the target rolled back. */
  readonly signal?: AbortSignal;
}

/** Resolves like `work`, or rejects as soon as `signal` aborts (stopping every child process group). */
function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  const interrupted = (): DeployError =>
    new DeployError('usage', 'INTERRUPTED', 'interrupted (Ctrl+C)', { hint: 'The target was rolled back; run the same migrate again to finish the job.' });
  if (signal.aborted) return Promise.reject(interrupted());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      signalAllProcessGroups('SIGTERM');
      reject(interrupted());
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

function formatRate(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1024 / 1024).toFixed(1)} MiB/s`;
}

/** Runs a remote `deploy ...` step; a non-zero exit becomes an error carrying the remote message. */
async function runRemote(host: Host, argv: readonly string[], input?: string): Promise<string> {
  const result = await host.run({ argv, ...(input !== undefined ? { input } : {}), timeoutMs: 30 * 60_000 });
  if (result.exitCode !== 0) {
    const message = tailLines(result.stderr, 6).replace(/^deploy: /gm, '').trim() || `exit ${result.exitCode}`;
    if (result.exitCode === 7) throw new ConflictError('TARGET_CONFLICT', `${host.name}: ${message}`);
    throw new TransportError('REMOTE_STEP_FAILED', `${host.name}: ${displayArgv(argv.slice(0, 4))} failed: ${message}`, { details: { exitCode: result.exitCode } });
  }
  return result.stdout;
}

/** Holds the target-side lock: a `deploy receive lock` whose stdin we keep open. */
async function lockTarget(host: Host, argv: readonly string[]): Promise<HostProcess> {
  const proc = host.spawn({ argv, stdin: 'pipe' });
  const first = await new Promise<string | undefined>((resolve) => {
    const lines = createInterface({ input: proc.stdout });
    lines.once('line', (line) => resolve(line));
    lines.once('close', () => resolve(undefined));
  });
  if (first === undefined || !first.includes('"locked":true')) {
    const result = await proc.wait();
    const message = tailLines(result.stderr, 4).replace(/^deploy: /gm, '').trim();
    throw new ConflictError('TARGET_LOCKED', `cannot lock the app on ${host.name}: ${message}`, { hint: 'Another migration into that host is running; wait for it or stop it.' });
  }
  return proc;
}

/** Runs a `deploy stream send` child and turns its JSONL events into our events and a report. */
async function runStreamStep(options: ExecuteOptions, step: Extract<MigrateStep, { kind: 'stream' }>): Promise<StreamReport> {
  const { bus, localHost } = options;
  const proc = localHost.spawn({ argv: step.argv, env: step.stream.producerEnv });
  let done: Record<string, unknown> | undefined;
  let failed: Record<string, unknown> | undefined;
  let result: Record<string, unknown> | undefined;
  let path = 'unknown';
  let retries = 0;
  let lastShownBytes = -1;
  let lastShownAt = 0;
  const lines = createInterface({ input: proc.stdout });
  lines.on('line', (line) => {
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const data = (event.data ?? event) as Record<string, unknown>;
    const kind = String(data.kind ?? event.type ?? '').replace(/^stream\./, '');
    if (kind === 'progress') {
      const bytes = Number(data.bytes ?? 0);
      // Every progress event goes to the log; a person sees one line per 2 s, and none while nothing moves.
      const show = bytes > 0 && bytes !== lastShownBytes && Date.now() - lastShownAt >= 2000;
      if (show) {
        lastShownBytes = bytes;
        lastShownAt = Date.now();
      }
      bus.emit('stream.progress', { stream: step.stream.name, level: show ? 'info' : 'debug', message: `${step.stream.name}: ${(bytes / 1024 / 1024).toFixed(1)} MiB at ${formatRate(Number(data.rate ?? 0))}`, data });
    } else if (kind === 'path') {
      path = String(data.path);
      bus.emit('stream.path', { stream: step.stream.name, level: 'debug', data });
    } else if (kind === 'retry') {
      retries += 1;
      bus.emit('stream.retry', { stream: step.stream.name, level: 'warn', message: `${step.stream.name}: retrying (${String(data.reason ?? '')})`, data });
    } else if (kind === 'stalled') {
      bus.emit('stream.stalled', { stream: step.stream.name, level: 'warn', message: `${step.stream.name}: no byte moved for ${Math.round(Number(data.idleMs ?? 0) / 1000)} s`, data });
    } else if (kind === 'done') done = data;
    else if (kind === 'failed') failed = data;
    else if (kind === 'result') result = data;
  });
  const stderr: string[] = [];
  createInterface({ input: proc.stderr }).on('line', (line) => stderr.push(line));
  const exit = await proc.wait();
  await new Promise((resolve) => setTimeout(resolve, 20));
  if (exit.exitCode !== 0 || done === undefined) {
    const stage = String(failed?.stage ?? 'sender');
    const message = String(failed?.message ?? (stderr.slice(-5).join('\n') || `deploy stream send exited ${exit.exitCode}`));
    throw new TransportError('STREAM_FAILED', `stream ${step.stream.name} failed at the ${stage}: ${message}`, {
      details: { stage, exitCode: failed?.exitCode ?? exit.exitCode, stderrTail: failed?.stderrTail },
      hint: 'Nothing was swapped into place on the target; fix the cause and run the same migrate again.',
    });
  }
  const bytes = Number(done.bytes ?? 0);
  const elapsedMs = Number(done.elapsedMs ?? exit.durationMs);
  if (typeof result?.path === 'string') path = result.path;
  if (typeof result?.retries === 'number') retries = result.retries;
  return { name: step.stream.name, bytes, elapsedMs, rate: elapsedMs > 0 ? (bytes * 1000) / elapsedMs : 0, path, retries, ...(typeof done.sha256 === 'string' ? { sha256: done.sha256 } : {}) };
}

/** Runs a target-side phase (`deploy install|start <app>` over ssh), streaming its output as script lines. */
async function runTargetPhase(options: ExecuteOptions, step: Extract<MigrateStep, { kind: 'phase' }>): Promise<void> {
  const proc = options.targetHost.spawn({ argv: step.argv });
  const forward = (stream: NodeJS.ReadableStream): void => {
    createInterface({ input: stream }).on('line', (line) =>
      options.bus.emit('script.output', { app: options.app.name, phase: `${step.phase}@${options.targetHost.name}`, message: line }),
    );
  };
  forward(proc.stdout);
  forward(proc.stderr);
  const result = await proc.wait();
  if (result.exitCode !== 0) {
    throw new ScriptError('TARGET_PHASE_FAILED', `${options.app.name}:${step.phase} failed on ${options.targetHost.name} (exit ${result.exitCode})`, {
      hint: `See the output above; the target was rolled back. Check the app with \`deploy --host ${options.targetHost.name} validate ${options.app.name}\` after fixing.`,
      details: { stderrTail: tailLines(result.stderr, 10) },
    });
  }
}

/**
 * Executes a migration plan step by step. Each step is journaled before and after it runs. On a
 * failure the target is put back as it was (staging removed, a committed folder and a restored
 * database undone) and the source is untouched; locks are released on both sides.
 */
export async function executeMigration(options: ExecuteOptions): Promise<MigrateReport> {
  const started = Date.now();
  const { plan, input, app, bus, journal, targetHost, localHost } = options;
  const streams: StreamReport[] = [];
  let localLock: AppLock | undefined;
  let targetLock: HostProcess | undefined;
  let committed = false;
  let databaseTouched = false;
  let verification: VerificationReport | undefined;
  let sourceRowsAtBackup: Record<string, number> | undefined;
  let current = 'preflight';
  const base = { app: app.name, runId: plan.runId, target: plan.target, transport: plan.transport, archive: plan.archive, journal: journal.path };
  try {
    for (const step of plan.steps) {
      current = step.id;
      bus.emit('migrate.step', { app: app.name, message: `[${step.id}] ${step.title}`, data: { step: step.id } });
      await journal.write({ step: step.id, status: 'start', argv: displayArgv(step.argv) });
      const stepStarted = Date.now();
      let stepDetail: Record<string, unknown> = {};
      await abortable(
        (async () => {
          switch (step.kind) {
            case 'lock':
              localLock = await acquireAppLock({ stateDir: options.source.stateDir, app: app.name, runId: plan.runId, command: `deploy migrate ${app.name} --to ${plan.target}` });
              targetLock = await lockTarget(targetHost, step.argv);
              break;
            case 'phase':
              if (step.where === 'source') {
                const result = await runPhase({ app, phase: step.phase, host: localHost, bus, context: { runId: plan.runId, role: 'source', host: options.source, archive: plan.archive } });
                if (result.status === 'failed') {
                  throw new ScriptError('SOURCE_BACKUP_FAILED', `${app.name}:backup failed on the source: ${result.reason ?? ''}`, { details: { stderrTail: result.stderrTail }, hint: 'Fix the backup (see its output above); nothing was changed on the target.' });
                }
                if (app.manifest.database.kind !== 'none') {
                  // What the archive holds, as near as we can see it: verification compares the target with this.
                  sourceRowsAtBackup = (await readSourceRowCounts(app, localHost)).tables;
                  stepDetail = { archive: plan.archive, sourceRowsAtBackup };
                }
              } else await runTargetPhase(options, step);
              break;
            case 'remote': {
              const metadata = step.input === 'fidelity' ? input.fidelity[step.id.replace(/^metadata:/, '')] : undefined;
              await runRemote(targetHost, step.argv, metadata ? JSON.stringify(metadata satisfies FidelityMetadata) : undefined);
              if (step.id === 'commit') committed = true;
              break;
            }
            case 'stream': {
              if (step.id === 'database') databaseTouched = true;
              const report = await runStreamStep(options, step);
              streams.push(report);
              bus.emit('migrate.stream', { app: app.name, stream: report.name, message: `${report.name}: ${(report.bytes / 1024 / 1024).toFixed(1)} MiB in ${(report.elapsedMs / 1000).toFixed(1)} s (${formatRate(report.rate)}, path ${report.path}, ${report.retries} retries)`, data: { ...report } });
              break;
            }
            case 'verify':
              if (step.id === 'verify-data') verification = await verifyData({ ...options, step, ...(sourceRowsAtBackup ? { sourceRowsAtBackup } : {}) });
              else verification = await verifyTarget({ ...options, step, previous: verification });
              if (!verification.ok) {
                throw new DeployError('transport', 'VERIFICATION_FAILED', `verification failed on ${plan.target}: ${verification.problems.slice(0, 5).join('; ')}`, {
                  hint: 'The target was rolled back. Look at the problems listed; re-run when fixed (writes on the source after the backup also show up here).',
                });
              }
              break;
          }
        })(),
        options.signal,
      );
      await journal.write({ step: step.id, status: 'ok', detail: { ms: Date.now() - stepStarted, ...stepDetail } });
    }
    return { ok: true, ...base, streams, ...(verification ? { verification } : {}), durationMs: Date.now() - started };
  } catch (error) {
    const failure = error instanceof DeployError ? error : new DeployError('internal', 'INTERNAL', error instanceof Error ? error.message : String(error));
    await journal.write({ step: current, status: 'failed', detail: { code: failure.code, message: failure.message } });
    bus.emit('migrate.failed', { app: app.name, level: 'error', message: `[${current}] ${failure.message}`, data: { step: current, code: failure.code, ...failure.details } });
    const rolledBack = current === 'lock' ? [] : await rollbackTarget(options, { committed, databaseTouched });
    return {
      ok: false,
      ...base,
      streams,
      ...(verification ? { verification } : {}),
      failure: { step: current, kind: failure.kind, code: failure.code, message: failure.message, ...(failure.hint ? { hint: failure.hint } : {}) },
      rolledBack,
      durationMs: Date.now() - started,
    };
  } finally {
    if (targetLock) {
      targetLock.stdin?.end();
      await Promise.race([targetLock.wait(), new Promise((resolve) => setTimeout(resolve, 10_000))]);
    }
    await localLock?.release();
  }
}

/** Puts the target back as it was before this run; each undo is journaled and reported. */
async function rollbackTarget(options: ExecuteOptions, state: { committed: boolean; databaseTouched: boolean }): Promise<string[]> {
  const { app, plan, targetHost, journal, bus } = options;
  const undone: string[] = [];
  const attempt = async (what: string, argv: readonly string[]): Promise<void> => {
    const result = await targetHost.run({ argv, timeoutMs: 120_000 });
    const ok = result.exitCode === 0 || result.exitCode === 75;
    await journal.write({ step: 'rollback', status: 'rollback', argv: displayArgv(argv), detail: { what, ok, exitCode: result.exitCode } });
    bus.emit('migrate.rollback', { app: app.name, level: ok ? 'info' : 'error', message: `rollback on ${plan.target}: ${what}${ok ? '' : ` FAILED: ${tailLines(result.stderr, 3)}`}` });
    if (ok) undone.push(what);
  };
  const remoteDeploy = options.input.remoteDeployCommand;
  if (state.committed) await attempt(`stop ${app.name}`, [...remoteDeploy, 'stop', app.name, '--quiet']);
  if (state.databaseTouched) await attempt(`drop the database this run restored`, buildDropDatabaseArgv(app));
  await attempt(state.committed ? 'remove the committed app folder and staging' : 'remove staging', [
    ...remoteDeploy,
    'receive',
    'abort',
    app.name,
    '--run-id',
    plan.runId,
    ...(state.committed ? ['--remove-app'] : []),
  ]);
  return undone;
}
