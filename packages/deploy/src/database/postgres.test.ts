import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planExtensionOwners } from './postgres.js';

test("extensions an app role owns: its owner creates them before the restore (requirements first), else a note says why the target's admin will own them", () => {
  const found = [
    { name: 'b_needs_a', schema: 'public', owner: 'shop', trusted: true, requires: ['a_base'] },
    { name: 'a_base', schema: 'public', owner: 'shop', trusted: true, requires: [] },
    { name: 'needs_admins', schema: 'public', owner: 'shop', trusted: true, requires: ['plpython3u'] },
    { name: 'needs_untrusted', schema: 'public', owner: 'shop', trusted: true, requires: ['untrusted'] },
    { name: 'untrusted', schema: 'public', owner: 'shop', trusted: false, requires: [] },
    { name: 'elsewhere', schema: 'ext', owner: 'shop', trusted: true, requires: [] },
    { name: 'strangers', schema: 'public', owner: 'dba', trusted: true, requires: [] },
  ];
  const planned = planExtensionOwners(found, ['shop']);
  assert.deepEqual(planned.extensions, [
    { name: 'a_base', schema: 'public', owner: 'shop' },
    { name: 'b_needs_a', schema: 'public', owner: 'shop' },
  ]);
  const prefix = (name: string, owner = 'shop'): string =>
    `database: extension ${name} is owned by ${owner} here but will be owned by the target's admin: PostgreSQL cannot change an extension's owner, and `;
  assert.deepEqual(planned.notes, [
    `${prefix('needs_admins')}needs_admins requires extension plpython3u, which only the restore creates`,
    `${prefix('needs_untrusted')}needs_untrusted requires extension untrusted, which only the restore creates`,
    `${prefix('untrusted')}untrusted is not a trusted extension, so only a superuser can create it`,
    `${prefix('elsewhere')}elsewhere lives in schema ext, which the restore creates only after the extension would have to exist`,
    `${prefix('strangers', 'dba')}dba is not one of the app's roles (database.roles), so the target may not have it`,
  ]);
  // A cycle (impossible in PostgreSQL, but the list comes from a bundle) ends in notes, not a loop.
  assert.deepEqual(
    planExtensionOwners(
      [
        { name: 'x', schema: 'public', owner: 'shop', trusted: true, requires: ['y'] },
        { name: 'y', schema: 'public', owner: 'shop', trusted: true, requires: ['x'] },
      ],
      ['shop'],
    ).extensions,
    [],
  );
});
