import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalHost } from '@deploykit/host/local-host';
import { isCompatibleDeployVersion } from '../version.js';
import { parseProbe, planHostSetup, probeHost, type HostFacts } from './host-setup.js';
import { listToolRequirements } from './setup-requirements.js';

const NEEDS = { postgres: false, mariadb: false, ffl: false };
const RELEASE = { file: '/r/deploykit-0.1.0.tgz', version: '0.1.0', bytes: Buffer.from('tgz') };

/** A host that has everything the base set needs, deploy 0.1.0 and both roots with the right modes. */
function completeFacts(overrides: Partial<HostFacts> = {}): HostFacts {
  const tools = Object.fromEntries(listToolRequirements(NEEDS).map((tool) => [tool.tool, `/usr/bin/${tool.tool}`]));
  return {
    uid: 0,
    node: 'v20.11.0',
    tools,
    tarVersion: 'tar (GNU tar) 1.34',
    deployPath: '/usr/local/bin/deploy',
    deployVersion: '0.1.0',
    installPrefix: '',
    aptGet: 'apt-get',
    aptGetFound: true,
    roots: { appsRoot: { path: '/srv/apps', mode: '755' }, stateDir: { path: '/var/lib/deploy', mode: '700' } },
    ...overrides,
  };
}

test('a host that has everything: every check ok, no step', () => {
  const plan = planHostSetup({
    host: 'b',
    facts: completeFacts(),
    needs: NEEDS,
    ourVersion: '0.1.0',
    release: RELEASE,
  });
  assert.deepEqual(plan.steps, []);
  assert.deepEqual(plan.blockers, []);
  assert.ok(plan.checks.every((check) => check.status === 'ok'));
});

test('missing tools, deploy and roots as non-root: one apt-get with sudo, the release into the prefix, mkdir with modes', () => {
  const facts = completeFacts({
    uid: 1000,
    tools: { ...completeFacts().tools, getfattr: '', setfacl: '', tar: '/bin/tar' },
    tarVersion: 'bsdtar 3.6.2',
    deployVersion: undefined,
    deployPath: '',
    installPrefix: '/opt/dk',
    roots: { appsRoot: { path: '/srv/apps', mode: '' }, stateDir: { path: '/var/lib/deploy', mode: '755' } },
  });
  const plan = planHostSetup({ host: 'b', facts, needs: NEEDS, ourVersion: '0.1.0', release: RELEASE });
  assert.deepEqual(plan.packages, ['tar', 'attr', 'acl']);
  assert.deepEqual(
    plan.steps.map((step) => step.argv.slice(0, 3)),
    [
      ['sudo', '-n', 'env'],
      ['sh', '-c', plan.steps[1]!.argv[2]!],
      ['sudo', '-n', 'mkdir'],
      ['sudo', '-n', 'chmod'],
    ],
  );
  assert.deepEqual(plan.steps[0]!.argv, [
    'sudo',
    '-n',
    'env',
    'DEBIAN_FRONTEND=noninteractive',
    'apt-get',
    'install',
    '-y',
    '--no-install-recommends',
    'tar',
    'attr',
    'acl',
  ]);
  assert.match(
    plan.steps[1]!.argv[2]!,
    /cat > "\$dir\/deploykit-0\.1\.0\.tgz"; sudo -n npm install --global --prefix \/opt\/dk --offline --no-audit --no-fund --loglevel=error "\$dir\/deploykit-0\.1\.0\.tgz"$/,
  );
  assert.equal(plan.steps[1]!.input, RELEASE.bytes);
  assert.deepEqual(plan.steps[2]!.argv, ['sudo', '-n', 'mkdir', '-p', '-m', '755', '/srv/apps']);
  assert.deepEqual(plan.steps[3]!.argv, ['sudo', '-n', 'chmod', '700', '/var/lib/deploy']);
  assert.equal(plan.checks.find((check) => check.name === 'tar')?.status, 'wrong');
});

test('what setup cannot fix is a blocker: old Node, ffl, no release for a missing deploy, no package manager', () => {
  const facts = completeFacts({
    node: 'v18.19.0',
    deployVersion: undefined,
    aptGetFound: false,
    tools: { ...completeFacts().tools, borg: '' },
  });
  const plan = planHostSetup({
    host: 'b',
    facts,
    needs: { ...NEEDS, ffl: true },
    ourVersion: '0.1.0',
    release: undefined,
  });
  assert.equal(plan.blockers.length, 4, plan.blockers.join('\n'));
  assert.match(plan.blockers.join('\n'), /Node v18\.19\.0 on b: deploy needs Node >= 20\.10/);
  assert.match(plan.blockers.join('\n'), /ffl on b: install FastFileLink/);
  assert.match(plan.blockers.join('\n'), /npm run release/);
  assert.match(plan.blockers.join('\n'), /apt-get is not on b: install borgbackup/);
  assert.deepEqual(plan.steps, []);
});

test('another deploy version is replaced (other major.minor) or upgraded (same major.minor)', () => {
  const title = (version: string): string | undefined =>
    planHostSetup({
      host: 'b',
      facts: completeFacts({ deployVersion: version }),
      needs: NEEDS,
      ourVersion: '0.1.0',
      release: RELEASE,
    }).steps[0]?.title;
  assert.match(title('0.2.0') ?? '', /^replace deploy 0\.1\.0/);
  assert.match(title('0.1.3') ?? '', /^upgrade deploy 0\.1\.0/);
});

test('isCompatibleDeployVersion: the same major.minor', () => {
  assert.equal(isCompatibleDeployVersion('0.1.0', '0.1.7'), true);
  assert.equal(isCompatibleDeployVersion('0.1.0', '0.2.0'), false);
  assert.equal(isCompatibleDeployVersion('1.4.2', '1.5.0'), false);
  assert.equal(isCompatibleDeployVersion('1.4.2', '2.4.2'), false);
});

test('the probe on this machine (a real shell) finds this Node, tar and the roots it is given', async () => {
  const facts = await probeHost(new LocalHost('here'), listToolRequirements(NEEDS), {
    appsRoot: '/nonexistent/apps',
    stateDir: '/tmp',
  });
  assert.equal(facts.node, process.version);
  assert.match(facts.tarVersion, /GNU tar/);
  assert.equal(facts.uid, process.getuid?.());
  assert.deepEqual(facts.roots.appsRoot, { path: '/nonexistent/apps', mode: '' });
  assert.deepEqual(facts.roots.stateDir, { path: '/tmp', mode: '1777' });
  assert.equal(parseProbe('tool\tborg\t\n').tools.borg, '');
});
