import { EXIT_CODES } from '@deploykit/core';
import { appSchema, configSchema, schemaPath } from '@deploykit/manifest';
import type { DeployCommand } from '../deploy-command.js';

/** `deploy schema`: prints the JSON Schema of app.yaml (or of the global config). */
export const schemaCommand: DeployCommand = {
  command: 'schema',
  describe: 'Print the JSON Schema of app.yaml (point your editor at it)',
  remote: false,
  versionInJson: false,
  builder: (y) =>
    y
      .option('config-file', {
        type: 'boolean',
        default: false,
        describe: 'The schema of the global config file instead',
      })
      .option('path', { type: 'boolean', default: false, describe: 'Print where the schema file is installed' }),
  examples: [
    ['deploy schema > app.schema.json', 'Save the schema'],
    ['deploy schema --path', 'Where the shipped schema lives (for # yaml-language-server: $schema=)'],
  ],
  async run(_context, args) {
    if (args.path === true) return { exitCode: EXIT_CODES.ok, json: { path: schemaPath }, text: schemaPath };
    const schema = args.configFile === true ? configSchema : appSchema;
    return { exitCode: EXIT_CODES.ok, json: schema, text: JSON.stringify(schema, null, 2) };
  },
};
