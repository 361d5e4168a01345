import { EXIT_CODES } from '@deploykit/core';
// Subpaths, not the index: with no apps `deploy list` needs neither YAML nor the schema validator.
import { discoverApps } from '@deploykit/manifest/discover-apps';
import { formatIssue } from '@deploykit/manifest/issue';
import { readMovedMarker } from '../../migrate/moved-marker.js';
import { readPendingCutover } from '../../migrate/paired-cutover.js';
import type { DeployCommand } from '../deploy-command.js';
import { renderTable } from '../table.js';

/** `deploy list`: every app folder under the apps root, valid or not. */
export const listCommand: DeployCommand = {
  command: 'list',
  describe: 'List the app folders under the apps root',
  examples: [
    ['deploy list', 'Apps under /srv/apps (or DEPLOY_APPS_ROOT)'],
    ['deploy list --json', 'The same as JSON for scripts'],
    ['deploy list --host b', 'Apps on host b'],
  ],
  async run(context) {
    const found = await discoverApps(context.hostContext.appsRoot);
    const moved = await Promise.all(
      found.entries.map((entry) => readMovedMarker(context.hostContext.stateDir, entry.app?.name ?? entry.folder)),
    );
    const pending = await Promise.all(
      found.entries.map((entry) => readPendingCutover(context.hostContext.stateDir, entry.app?.name ?? entry.folder)),
    );
    const rows = found.entries.map((entry, index) => ({
      name: entry.app?.name ?? entry.folder,
      dir: entry.dir,
      valid: entry.errors.length === 0,
      runtime: entry.app?.manifest.runtime ?? null,
      database: entry.app?.manifest.database.kind ?? null,
      volumes: entry.app?.manifest.volumes.map((v) => v.name) ?? [],
      errors: entry.errors.map((issue) => formatIssue(issue)),
      // A cutover moved it: the copy here no longer takes writes (deploy start refuses it).
      movedTo: moved[index]?.to ?? null,
      // A paired cutover waits for its verdict (decision 0011): stopped here, not moved yet. Only when there is one.
      ...(pending[index]
        ? {
            cutoverPending: { to: pending[index].to, runId: pending[index].runId, stoppedAt: pending[index].stoppedAt },
          }
        : {}),
    }));
    const text =
      rows.length === 0
        ? `no apps under ${found.root} (create one with \`deploy init <name>\`)`
        : renderTable(
            ['APP', 'STATUS', 'RUNTIME', 'DATABASE', 'FOLDER'],
            rows.map((row) => [
              row.name,
              row.movedTo !== null
                ? `moved to ${row.movedTo}`
                : row.cutoverPending
                  ? `stopped: cutover to ${row.cutoverPending.to} pending`
                  : row.valid
                    ? 'ok'
                    : `${row.errors.length} error(s)`,
              row.runtime ?? '-',
              row.database ?? '-',
              row.dir,
            ]),
          );
    return { exitCode: EXIT_CODES.ok, json: { root: found.root, apps: rows }, text };
  },
};
