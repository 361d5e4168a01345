import { readFile } from 'node:fs/promises';
import { EXIT_CODES, UsageError } from '@deploykit/core';
import { loadApp } from '../../actions/load-app.js';
import type { CheckBaseline, CheckResult } from '../../health/check-types.js';
import { resolveBaseUrl, runChecks } from '../../health/run-checks.js';
import type { DeployCommand } from '../deploy-command.js';
import { renderTable } from '../table.js';

/** Reads a baseline (an earlier `deploy health --json` output) from a file or `-` (stdin). */
async function readBaseline(source: string): Promise<CheckBaseline> {
  let text: string;
  if (source === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    text = Buffer.concat(chunks).toString('utf8');
  } else {
    text = await readFile(source, 'utf8');
  }
  try {
    const parsed = JSON.parse(text) as { checks?: unknown };
    if (!Array.isArray(parsed.checks)) throw new Error('no "checks" array');
    return { checks: parsed.checks as CheckResult[] };
  } catch (error) {
    throw new UsageError(
      'BASELINE_INVALID',
      `the baseline ${source === '-' ? 'on stdin' : source} is not a \`deploy health --json\` output: ${error instanceof Error ? error.message : String(error)}`,
      {
        hint: 'Save one with `deploy health <app> --json > before.json`, then pass --baseline before.json.',
      },
    );
  }
}

/** Renders check results as the health table (check, type, result, time, reason). */
export function renderCheckTable(results: readonly CheckResult[]): string {
  return renderTable(
    ['CHECK', 'TYPE', 'RESULT', 'TIME', 'REASON'],
    results.map((r) => [
      r.name,
      r.type,
      r.status === 'ok' ? 'ok' : r.status.toUpperCase(),
      `${r.durationMs} ms`,
      r.reason ?? '',
    ]),
  );
}

/** `deploy health <app>`: run the app's declared checks on this host. */
export const healthCommand: DeployCommand = {
  command: 'health <app>',
  describe: "Run the app's health checks (declared in app.yaml) and print a table",
  builder: (y) =>
    y
      .positional('app', { type: 'string', describe: 'App name', demandOption: true })
      .option('base-url', { type: 'string', describe: 'Reach the app here instead of health.base_url' })
      .option('check', { type: 'string', array: true, describe: 'Only these checks (by name)' })
      .option('baseline', {
        type: 'string',
        describe:
          'An earlier `deploy health --json` output (a file, or --baseline=- for stdin): uploads checks re-check its sampled files and checksums',
      }),
  examples: [
    ['deploy health notes', 'Every check, as a table; exit 1 if any fails'],
    ['deploy health notes --host b --json', 'On host b, machine-readable'],
    [
      'deploy health notes --json > before.json; deploy health notes --baseline before.json',
      'Prove the sampled uploads are still there, unchanged',
    ],
  ],
  async run(context, args) {
    const app = await loadApp(context.hostContext.appsRoot, String(args.app));
    const baseline = typeof args.baseline === 'string' ? await readBaseline(args.baseline) : undefined;
    const base = { app, host: context.host, hostContext: context.hostContext };
    const baseUrl = resolveBaseUrl(base, typeof args.baseUrl === 'string' ? args.baseUrl : undefined);
    const results = await runChecks(
      { ...base, baseUrl, ...(baseline ? { baseline } : {}) },
      (args.check as string[] | undefined) ?? [],
    );
    const failed = results.filter((r) => r.status === 'failed');
    for (const r of results)
      context.bus.emit('check.end', { app: app.name, level: r.status === 'failed' ? 'warn' : 'debug', data: { ...r } });
    const text = [
      renderCheckTable(results),
      `${app.name} on ${context.hostContext.hostName} (${baseUrl}): ${results.length - failed.length} ok, ${failed.length} failed`,
    ].join('\n');
    return {
      exitCode: failed.length > 0 ? EXIT_CODES.checks : EXIT_CODES.ok,
      json: { app: app.name, host: context.hostContext.hostName, baseUrl, ok: failed.length === 0, checks: results },
      text,
    };
  },
};
