import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AppFolder, AppManifest } from '@deploykit/core';
import { newArchiveName } from './phase-env.js';

function app(borg?: AppManifest['borg']): AppFolder {
  const manifest: AppManifest = {
    name: 'notes',
    runtime: 'process',
    env: {},
    volumes: [],
    database: { kind: 'none' },
    config: [],
    secrets: [],
    timeouts: { default: 300 },
    migrate: { transport: 'ssh', with_history: false },
    ...(borg ? { borg } : {}),
  };
  return { name: 'notes', dir: '/srv/apps/notes', manifestPath: '/srv/apps/notes/app.yaml', manifest };
}

test('archive names expand {now} as docs/app-folder.md says: UTC YYYYMMDDTHHMMSSZ', () => {
  const at = new Date(Date.UTC(2026, 11, 1, 19, 9, 8, 765));
  assert.equal(newArchiveName(app(), at), 'notes-20261201T190908Z');
  assert.equal(
    newArchiveName(app({ repository: '{state_dir}/borg/{app}', archive: 'nightly-{now}-{app}' }), at),
    'nightly-20261201T190908Z-notes',
  );
});
