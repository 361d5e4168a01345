import { resolve } from 'node:path';
import { EXIT_CODES } from '@deploykit/core';
import { discoverApps, formatIssue, type Issue } from '@deploykit/manifest';
import type { DeployCommand } from '../deploy-command.js';

/** `deploy validate [app...]`: every error of every named (or every) app at once, with file:line:column. */
export const validateCommand: DeployCommand = {
  command: 'validate [apps..]',
  describe: 'Validate app folders: schema, cross-field rules, files and scripts on disk',
  builder: (y) => y.positional('apps', { type: 'string', array: true, describe: 'App names (default: all)' }),
  examples: [
    ['deploy validate', 'Every app under the apps root'],
    ['deploy validate notes --json', 'One app, machine-readable'],
  ],
  async run(context, args) {
    const found = await discoverApps(context.hostContext.appsRoot);
    const wanted = (args.apps as string[] | undefined) ?? [];
    const entries =
      wanted.length === 0
        ? found.entries
        : found.entries.filter((e) => wanted.includes(e.app?.name ?? e.folder) || wanted.includes(e.folder));
    const missing = wanted.filter(
      (name) => !entries.some((e) => (e.app?.name ?? e.folder) === name || e.folder === name),
    );
    const results = entries.map((entry) => ({
      app: entry.app?.name ?? entry.folder,
      dir: entry.dir,
      status: entry.errors.length === 0 ? 'ok' : 'failed',
      errors: entry.errors,
      warnings: entry.warnings,
    }));
    for (const name of missing) {
      results.push({
        app: name,
        dir: resolve(found.root, name),
        status: 'failed',
        errors: [
          {
            file: resolve(found.root, name, 'app.yaml'),
            line: 0,
            column: 0,
            path: '',
            message: `no app named "${name}" under ${found.root}`,
            rule: 'app-unknown',
          } satisfies Issue,
        ],
        warnings: [],
      });
    }
    const failed = results.filter((r) => r.status === 'failed').length;
    const lines: string[] = [];
    for (const r of results) {
      lines.push(`${r.status === 'ok' ? 'ok    ' : 'FAILED'} ${r.app}`);
      for (const issue of r.errors) lines.push(`  error: ${formatIssue(issue)}`);
      for (const issue of r.warnings) lines.push(`  warning: ${formatIssue(issue)}`);
    }
    lines.push(`${results.length - failed} ok, ${failed} failed`);
    if (results.length === 0) lines.unshift(`no apps under ${found.root}`);
    return {
      exitCode: failed > 0 ? EXIT_CODES.config : EXIT_CODES.ok,
      json: { ok: failed === 0, apps: results },
      text: lines.join('\n'),
    };
  },
};
