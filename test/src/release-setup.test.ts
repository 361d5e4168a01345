// End to end: the release (npm run release's tarball, built fresh here) installed with npm into its own
// prefix on two lab hosts, which then run it instead of the repo. `deploy setup` on host b, which lacks
// the attr tools (its PATH hides getfattr and setfattr, docs/lab.md): refuses without --install and
// changes nothing, installs with --install (through the lab's apt-get stand-in) together with deploy
// itself, and a second run changes nothing. A target deploy of another major.minor is refused before
// any byte moves, both versions named. (migrate-notes.test.ts migrates the sample app through the
// installed release on its four hosts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { quoteWord } from '@deploykit/core';
import type { Lab } from '@deploykit/testlab';
import { labShell, runDeploy, runOrThrow, withLab, withReleases, type DeployRun } from './helpers/index.js';
import { assertExit, deployOnA } from './migrate-lab.js';

/** A one-volume app without a database (scripts that do nothing): enough for migrate to reach the target check. */
const TINY_APP = `name: tiny
runtime: process
volumes:
  - name: files
    path: data/files
`;

/** `deploy setup` run on this machine as if on host a (its roots), against the lab's host map. */
function setup(lab: Lab, args: readonly string[]): Promise<DeployRun> {
  const a = lab.host('a');
  return runDeploy(['--config', lab.deployConfigPath, 'setup', ...args], {
    env: { DEPLOY_APPS_ROOT: a.appsRoot, DEPLOY_STATE_DIR: a.stateDir },
    timeoutMs: 180_000,
  });
}

/** The lab apt-get stand-in's record of calls on a host. */
function aptCalls(lab: Lab, host: string): string[][] {
  try {
    return readFileSync(join(lab.host(host).root, 'logs', 'apt-get.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => (JSON.parse(line) as { argv: string[] }).argv);
  } catch {
    return [];
  }
}

test('the release on two lab hosts: deploy setup (refuse, --install, idempotent), another version refused', {
  timeout: 180_000,
}, async (t) => {
  await withReleases([undefined, '0.99.0'], async ([release, other]) => {
    if (release === undefined || other === undefined) throw new Error('two releases were built');
    await withLab(
      { hosts: 2, postgres: false, release: release.file, hideTools: { b: ['getfattr', 'setfattr'] } },
      async (lab) => {
        const b = lab.host('b');
        const prefixB = b.deployPrefix!;

        await t.test('each host runs deploy from its own prefix, installed from the tarball', async () => {
          for (const name of ['a', 'b']) {
            const where = await runOrThrow(
              labShell(lab, name),
              'command -v deploy; deploy --version; test ! -e "$(dirname "$(command -v deploy)")/../lib/node_modules/deploykit/node_modules" && echo no-dependencies',
            );
            assert.deepEqual(where.trim().split('\n'), [
              `${lab.host(name).deployPrefix}/bin/deploy`,
              release.version,
              'no-dependencies',
            ]);
          }
          const hidden = await lab.ssh('b', 'command -v getfattr || echo absent');
          assert.equal(hidden.stdout.trim(), 'absent', 'b lacks getfattr');
        });

        await t.test(
          'deploy setup without --install refuses, names the packages and the command, changes nothing',
          async () => {
            await runOrThrow(labShell(lab, 'b'), `rm -rf ${quoteWord(prefixB)}`);
            const run = await setup(lab, ['b', '--release', release.file]);
            assertExit(run, 6, 'deploy setup b');
            assert.match(run.stderr, /b lacks Debian packages attr; nothing was changed/);
            assert.match(run.stderr, /getfattr\s+extended attributes of volumes\s+not found\s+apt-get install attr/);
            assert.match(
              run.stderr,
              /next: Run `deploy setup b --install` to install them \(it runs: env DEBIAN_FRONTEND=noninteractive \S+lab-apt-get install -y --no-install-recommends attr\)/,
            );
            assert.deepEqual(aptCalls(lab, 'b'), []);
            assert.equal((await lab.ssh('b', 'command -v deploy || echo absent')).stdout.trim(), 'absent');
          },
        );

        await t.test(
          'deploy setup --install installs attr and deploy, fixes the state dir mode; a second run changes nothing',
          async () => {
            const plan = await setup(lab, ['b', '--release', release.file, '--install', '--plan']);
            assertExit(plan, 0, 'deploy setup b --plan');
            assert.match(
              plan.stdout,
              /\[packages\] install attr\n\s+\$ env DEBIAN_FRONTEND=noninteractive \S+ install -y --no-install-recommends attr/,
            );
            assert.match(plan.stdout, /\[deploy\] install deploy \S+ from \S+ into \S+\/b\/deploykit/);
            assert.match(plan.stdout, /\[roots\] chmod 700 \S+\/b\/state/);
            assert.deepEqual(aptCalls(lab, 'b'), [], '--plan changes nothing');

            const first = await setup(lab, ['b', '--release', release.file, '--install', '--json']);
            assertExit(first, 0, 'deploy setup b --install');
            const report = JSON.parse(first.stdout) as {
              changed: string[];
              checks: { name: string; status: string; found: string }[];
              deployVersion: string;
            };
            assert.equal(report.changed.length, 3, report.changed.join('; '));
            assert.match(report.changed[0]!, /^install attr$/);
            assert.match(report.changed[1]!, /^install deploy /);
            assert.match(report.changed[2]!, /^chmod 700 /);
            assert.ok(
              report.checks.every((check) => check.status === 'ok'),
              JSON.stringify(report.checks),
            );
            assert.deepEqual(aptCalls(lab, 'b'), [['install', '-y', '--no-install-recommends', 'attr']]);
            const after = await runOrThrow(
              labShell(lab, 'b'),
              `readlink -f "$(command -v getfattr)"; deploy --version; command -v deploy; stat -c %a ${quoteWord(b.stateDir)}`,
            );
            assert.deepEqual(after.trim().split('\n'), [
              '/usr/bin/getfattr',
              release.version,
              `${prefixB}/bin/deploy`,
              '700',
            ]);

            const second = await setup(lab, ['b', '--release', release.file, '--install']);
            assertExit(second, 0, 'deploy setup b, again');
            assert.match(second.stdout, /b is set up for deploy \S+: nothing to change\./);
            assert.equal(aptCalls(lab, 'b').length, 1, 'no second apt-get call');
          },
        );

        await t.test(
          'a target deploy of another major.minor is refused before any byte moves, both versions named',
          async () => {
            await runOrThrow(
              labShell(lab, 'b'),
              `npm install --global --prefix ${quoteWord(prefixB)} --offline --no-audit --no-fund --loglevel=error ${quoteWord(other.file)}`,
            );
            const appDir = `${lab.host('a').appsRoot}/tiny`;
            const scripts = ['install', 'start', 'stop', 'backup', 'restore']
              .map((phase) => `printf '#!/bin/sh\\nexit 0\\n' > bin/${phase} && chmod +x bin/${phase}`)
              .join(' && ');
            await runOrThrow(
              labShell(lab, 'a'),
              `mkdir -p ${appDir}/bin ${appDir}/data/files && cd ${appDir} && cat > app.yaml && ${scripts}`,
              TINY_APP,
            );
            const run = await deployOnA(lab, ['migrate', 'tiny', '--to', 'b']);
            assertExit(run, 6, 'migrate tiny to a deploy 0.99.0');
            assert.match(
              run.stderr,
              new RegExp(
                `deploy 0\\.99\\.0 on b cannot take a migration from deploy ${release.version.replace(/\./g, '\\.')} here: both need the same major\\.minor`,
              ),
            );
            assert.match(
              run.stderr,
              new RegExp(`next: Run \`deploy setup b\` to install ${release.version.replace(/\./g, '\\.')} there`),
            );
            // Nothing of a migration happened on either host: no run record on a, no staging on b.
            assert.equal(
              (
                await lab.ssh('a', `ls -A ${lab.host('a').stateDir}/apps/tiny 2>/dev/null | grep -c migrations || true`)
              ).stdout.trim(),
              '0',
            );
            assert.equal((await lab.ssh('b', `ls -A ${b.appsRoot}`)).stdout.trim(), '');
            const fixed = await setup(lab, ['b', '--release', release.file]);
            assertExit(fixed, 0, "deploy setup b puts the caller's version back");
            assert.match(fixed.stdout, /replace deploy \S+ from/);
            assert.equal((await runOrThrow(labShell(lab, 'b'), 'deploy --version')).trim(), release.version);
          },
        );
      },
    );
  });
});
