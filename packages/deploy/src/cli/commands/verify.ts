import { EXIT_CODES } from '@deploykit/core';
import { loadApp } from '../../actions/load-app.js';
import { collectAppFacts } from '../../health/app-facts.js';
import { verifyApp } from '../../health/verify-app.js';
import type { DeployCommand } from '../deploy-command.js';
import { renderTable } from '../table.js';

/** `deploy facts <app>`: the counts verify compares, taken on this host. */
export const factsCommand: DeployCommand = {
  command: 'facts <app>',
  describe: "Report an app's counts on this host: files and bytes per volume, rows per database table",
  builder: (y) => y.positional('app', { type: 'string', describe: 'App name', demandOption: true }),
  examples: [['deploy facts notes --host b --json', 'What verify compares, from host b']],
  async run(context, args) {
    const app = await loadApp(context.hostContext.appsRoot, String(args.app));
    const facts = await collectAppFacts(app, context.host);
    const rows: string[][] = facts.volumes.map((v) => [
      `volume ${v.name}`,
      v.error ? `ERROR ${v.error}` : `${v.files} files, ${v.bytes} bytes`,
    ]);
    if (facts.database) {
      if (facts.database.error) rows.push([`database ${facts.database.name}`, `ERROR ${facts.database.error}`]);
      for (const [table, count] of Object.entries(facts.database.tables)) rows.push([`rows ${table}`, String(count)]);
    }
    const failed = facts.volumes.some((v) => v.error) || facts.database?.error !== undefined;
    return {
      exitCode: failed ? EXIT_CODES.checks : EXIT_CODES.ok,
      json: facts,
      text: renderTable(['FACT', 'VALUE'], rows),
    };
  },
};

/** `deploy verify <app> --source A --target B`: prove the target serves what the source serves. */
export const verifyCommand: DeployCommand = {
  command: 'verify <app>',
  describe: 'Compare an app on two hosts (health on both, sampled upload checksums, page digests, file and row counts)',
  remote: false,
  builder: (y) =>
    y
      .positional('app', { type: 'string', describe: 'App name', demandOption: true })
      .option('source', {
        type: 'string',
        demandOption: true,
        describe: 'Host the app runs on now (a host of the global config, or local)',
      })
      .option('target', {
        type: 'string',
        demandOption: true,
        describe: 'Host it moved to (a host of the global config, or local)',
      })
      .option('ignore-table', {
        type: 'string',
        array: true,
        describe: 'Report but do not compare the row count of this table (e.g. sessions)',
      }),
  examples: [
    ['deploy verify notes --source a --target b', 'Before the DNS cutover: exit 1 on any mismatch'],
    ['deploy verify notes --source local --target b --json', 'From the source host itself, machine-readable'],
  ],
  async run(context, args) {
    const localArgs = [
      ...(context.options.appsRoot ? ['--apps-root', context.options.appsRoot] : []),
      ...(context.options.stateDir ? ['--state-dir', context.options.stateDir] : []),
      ...(context.configPath ? ['--config', context.configPath] : []),
    ];
    const result = await verifyApp({
      app: String(args.app),
      source: String(args.source),
      target: String(args.target),
      ...(context.configPath ? { configPath: context.configPath } : {}),
      localArgs,
      ...(Array.isArray(args.ignoreTable) ? { ignoreTables: args.ignoreTable as string[] } : {}),
    });
    for (const c of result.comparisons)
      context.bus.emit('verify.compare', {
        app: result.app,
        level: c.status === 'mismatch' || c.status === 'failed' ? 'warn' : 'debug',
        data: { ...c },
      });
    const bad = result.comparisons.filter((c) => c.status === 'mismatch' || c.status === 'failed');
    const text = [
      renderTable(
        ['WHAT', 'RESULT', result.source.toUpperCase(), result.target.toUpperCase(), 'REASON'],
        result.comparisons.map((c) => [
          c.subject,
          c.status === 'match' ? 'ok' : c.status.toUpperCase(),
          c.source,
          c.target,
          c.reason ?? '',
        ]),
      ),
      `${result.app}: ${result.source} -> ${result.target}: ${result.comparisons.length - bad.length} ok, ${bad.length} mismatch/failed${result.ok ? ' - ready for the DNS cutover' : ''}`,
    ].join('\n');
    return { exitCode: result.ok ? EXIT_CODES.ok : EXIT_CODES.checks, json: result, text };
  },
};
