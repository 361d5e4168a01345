import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '@deploykit/core';
import { expandPlaceholders, formatNowPlaceholder } from './expand-placeholders.js';

test('known placeholders are replaced, repeated ones too', () => {
  const values = {
    app: 'wiki',
    now: '2026-11-21T10-00-00',
    state_dir: '/var/lib/deploy',
    app_dir: '/srv/apps/wiki',
    host_address: '127.0.0.2',
    port: '8080',
  };
  assert.equal(expandPlaceholders('{state_dir}/borg/{app}', values), '/var/lib/deploy/borg/wiki');
  assert.equal(expandPlaceholders('{app}-{now}-{app}', values), 'wiki-2026-11-21T10-00-00-wiki');
  assert.equal(expandPlaceholders('http://{host_address}:{port}/', values), 'http://127.0.0.2:8080/');
  assert.equal(expandPlaceholders('no placeholders {} here', values), 'no placeholders {} here');
});

test('an unknown placeholder is a ConfigError listing the known ones', () => {
  assert.throws(
    () => expandPlaceholders('{state_dir}/borg/{hostname}', { state_dir: '/s' }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.code, 'PLACEHOLDER_UNKNOWN');
      assert.equal(error.message, 'unknown placeholder {hostname} in "{state_dir}/borg/{hostname}"');
      assert.equal(error.hint, 'Use one of {app}, {now}, {state_dir}, {app_dir}, {host_address}, {port}.');
      return true;
    },
  );
});

test('a known placeholder without a value is a ConfigError too', () => {
  assert.throws(() => expandPlaceholders('http://{host_address}:{port}', { host_address: '127.0.0.2' }), {
    code: 'PLACEHOLDER_NO_VALUE',
    message: 'placeholder {port} in "http://{host_address}:{port}" has no value here',
  });
});

test('{now} is UTC in the ISO 8601 basic format, without dashes or colons', () => {
  assert.equal(formatNowPlaceholder(new Date(Date.UTC(2026, 10, 21, 9, 5, 7, 123))), '20261121T090507Z');
});
