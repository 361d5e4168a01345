import { EXIT_CODES } from '@deploykit/core';
import { stringify } from 'yaml';
import { loadApp } from '../../actions/load-app.js';
import { resolveBorgRepo } from '../../phase-env.js';
import type { DeployCommand } from '../deploy-command.js';

/** `deploy show <app>`: the app's manifest with defaults applied, and where things live on this host. */
export const showCommand: DeployCommand = {
  command: 'show <app>',
  describe: 'Show an app: its manifest with defaults applied, folder and Borg repository',
  builder: (y) => y.positional('app', { type: 'string', describe: 'App name', demandOption: true }),
  examples: [
    ['deploy show notes', 'The notes app as deploy sees it'],
    ['deploy show notes --json', 'As JSON'],
  ],
  async run(context, args) {
    const app = await loadApp(context.hostContext.appsRoot, String(args.app));
    const info = {
      name: app.name,
      dir: app.dir,
      manifestPath: app.manifestPath,
      borgRepository: resolveBorgRepo(app, context.hostContext),
      manifest: app.manifest,
    };
    const text = `# ${app.name} (${app.dir})\n# borg repository: ${info.borgRepository}\n${stringify(app.manifest)}`;
    return { exitCode: EXIT_CODES.ok, json: info, text };
  },
};
