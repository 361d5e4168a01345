import { EXIT_CODES } from '@deploykit/core';
import { loadApp } from '../../actions/load-app.js';
import { resolveBaseUrl, runChecks } from '../../health/run-checks.js';
import type { DeployCommand } from '../deploy-command.js';
import { renderTable } from '../table.js';

/** `deploy health <app>`: run the app's declared checks on this host. */
export const healthCommand: DeployCommand = {
  command: 'health <app>',
  describe: "Run the app's health checks (declared in app.yaml) and print a table",
  builder: (y) =>
    y
      .positional('app', { type: 'string', describe: 'App name', demandOption: true })
      .option('base-url', { type: 'string', describe: 'Reach the app here instead of health.base_url' })
      .option('check', { type: 'string', array: true, describe: 'Only these checks (by name)' }),
  examples: [
    ['deploy health notes', 'Every check, as a table; exit 1 if any fails'],
    ['deploy health notes --host b --json', 'On host b, machine-readable'],
  ],
  async run(context, args) {
    const app = await loadApp(context.hostContext.appsRoot, String(args.app));
    const base = { app, host: context.host, hostContext: context.hostContext };
    const baseUrl = resolveBaseUrl(base, typeof args.baseUrl === 'string' ? args.baseUrl : undefined);
    const results = await runChecks({ ...base, baseUrl }, (args.check as string[] | undefined) ?? []);
    const failed = results.filter((r) => r.status === 'failed');
    for (const r of results) context.bus.emit('check.end', { app: app.name, level: r.status === 'failed' ? 'warn' : 'debug', data: { ...r } });
    const text = [
      renderTable(
        ['CHECK', 'TYPE', 'RESULT', 'TIME', 'REASON'],
        results.map((r) => [r.name, r.type, r.status === 'ok' ? 'ok' : r.status.toUpperCase(), `${r.durationMs} ms`, r.reason ?? '']),
      ),
      `${app.name} on ${context.hostContext.hostName} (${baseUrl}): ${results.length - failed.length} ok, ${failed.length} failed`,
    ].join('\n');
    return { exitCode: failed.length > 0 ? EXIT_CODES.checks : EXIT_CODES.ok, json: { app: app.name, host: context.hostContext.hostName, baseUrl, ok: failed.length === 0, checks: results }, text };
  },
};
