import { EXIT_CODES, type AppFolder, type Phase } from '@deploykit/core';
import { discoverApps } from '@deploykit/manifest';
import type { CommandContext } from '../cli/command-context.js';
import { pickApp } from './load-app.js';
import { newArchiveName } from '../phase-env.js';
import { runPhase, type PhaseResult } from '../script-runner.js';

/** Result of running one phase over several apps: one app's failure does not hide the others'. */
export interface PhaseRunSummary {
  readonly phase: Phase;
  readonly results: readonly (PhaseResult & { archive?: string })[];
  readonly ok: number;
  readonly skipped: number;
  readonly failed: number;
}

/** Resolves the apps a phase command names (or all with --all). */
export async function selectApps(
  context: CommandContext,
  names: readonly string[],
  all: boolean,
  phase?: Phase,
): Promise<AppFolder[]> {
  // bin/install may create the app's secrets on first run (the sample app does), so they may be missing before it.
  const found = await discoverApps(context.hostContext.appsRoot, { allowMissingSecrets: phase === 'install' });
  if (all) return found.apps;
  return names.map((name) => pickApp(found, name));
}

/** Runs bin/<phase> for each app in turn on this host and summarises. */
export async function runPhaseForApps(
  context: CommandContext,
  phase: Phase,
  apps: readonly AppFolder[],
  options: { archive?: string; args?: readonly string[] } = {},
): Promise<PhaseRunSummary> {
  const results: (PhaseResult & { archive?: string })[] = [];
  for (const app of apps) {
    const archive =
      phase === 'backup' ? newArchiveName(app) : phase === 'restore' ? (options.archive ?? '') : undefined;
    if (context.hostContext.dryRun) {
      const args = options.args?.length ? ` ${options.args.join(' ')}` : '';
      context.bus.emit('phase.plan', {
        app: app.name,
        phase,
        message: `would run ${app.dir}/bin/${phase}${args}${archive ? ` (archive ${archive})` : ''}`,
      });
      results.push({
        app: app.name,
        phase,
        status: 'skipped',
        exitCode: null,
        signal: null,
        timedOut: false,
        durationMs: 0,
        stderrTail: '',
        reason: 'dry run',
      });
      continue;
    }
    const result = await runPhase({
      app,
      phase,
      host: context.host,
      bus: context.bus,
      ...(options.args ? { args: options.args } : {}),
      context: {
        runId: context.runId,
        role: 'local',
        host: context.hostContext,
        ...(archive !== undefined ? { archive } : {}),
      },
    });
    results.push({ ...result, ...(archive ? { archive } : {}) });
  }
  return {
    phase,
    results,
    ok: results.filter((r) => r.status === 'ok').length,
    skipped: results.filter((r) => r.status === 'skipped').length,
    failed: results.filter((r) => r.status === 'failed').length,
  };
}

/** Renders a phase summary for humans: a line per app, the failing ones with their stderr tail. */
export function renderPhaseSummary(summary: PhaseRunSummary): string {
  const lines: string[] = [];
  for (const r of summary.results) {
    const seconds = (r.durationMs / 1000).toFixed(1);
    const archive = r.archive ? ` archive ${r.archive}` : '';
    lines.push(
      `${r.status.padEnd(7)} ${r.app}:${r.phase} (${seconds} s)${archive}${r.reason && r.status !== 'ok' ? ` - ${r.reason}` : ''}`,
    );
    if (r.status === 'failed' && r.stderrTail) {
      lines.push(...r.stderrTail.split('\n').map((line) => `        | ${line}`));
    }
  }
  lines.push(`${summary.phase}: ${summary.ok} ok, ${summary.skipped} skipped, ${summary.failed} failed`);
  return lines.join('\n');
}

/** Exit code of a phase summary: script error when any app failed. */
export function phaseExitCode(summary: PhaseRunSummary): number {
  return summary.failed > 0 ? EXIT_CODES.script : EXIT_CODES.ok;
}
