// End to end: the Ansible collection deploykit.deploy (ansible/ansible_collections/deploykit/deploy) drives
// deploy on a 3-host lab through ansible-core from Debian. One lab for every scenario (suite time): notes
// (PostgreSQL) and guestbook (MariaDB) on host a are evacuated to b and c - check mode first (nothing changes
// on any host), then the real run (both healthy on their targets, the report in the play's output), a second
// run (no change), then, after guestbook's copy is taken off b again, a run in which guestbook fails its health
// on b (a MariaDB fault only b has): the play stops at that first batch, b is rolled back, notes' copy on c and
// both apps on a are untouched. Ansible's temp files, home and ssh control sockets live in the
// test's temp dir, which is checked to hold nothing of a remote run and removed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { quoteWord } from '@deploykit/core';
import type { Lab } from '@deploykit/testlab';
import { REPO_ROOT, buildDeployEnv, labShell, runDeploy, runOrThrow, withLab } from './helpers/index.js';
import { GUESTBOOK_DIR, assertExit, deployOnA } from './migrate-lab.js';

const COLLECTION_ROOT = join(REPO_ROOT, 'ansible');
const PLAYBOOKS = join(COLLECTION_ROOT, 'ansible_collections/deploykit/deploy/playbooks');

/** What one ansible run gave back, with its wall time. */
interface AnsibleRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Runs an ansible-core command in `work` with everything of Ansible's own kept below `work`. */
function runAnsible(work: string, argv: readonly string[], timeoutMs = 600_000): Promise<AnsibleRun> {
  const env = {
    ...buildDeployEnv(),
    ANSIBLE_CONFIG: join(work, 'ansible.cfg'),
    ANSIBLE_COLLECTIONS_PATH: COLLECTION_ROOT,
    ANSIBLE_HOME: join(work, 'home'),
    ANSIBLE_LOCAL_TEMP: join(work, 'local-tmp'),
    ANSIBLE_REMOTE_TEMP: join(work, 'remote-tmp'),
    ANSIBLE_SSH_CONTROL_PATH_DIR: join(work, 'cp'),
    // No ControlPersist master outliving the run; pipelining keeps module files off the hosts.
    ANSIBLE_SSH_ARGS: '-o ControlMaster=no',
    ANSIBLE_PIPELINING: 'True',
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_STDOUT_CALLBACK: 'default',
  };
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({
        exitCode: code ?? 143,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        seconds: (Date.now() - started) / 1000,
      });
    });
  });
}

function assertAnsibleExit(run: AnsibleRun, expected: number, what: string): void {
  assert.equal(
    run.exitCode,
    expected,
    `${what}: exit ${run.exitCode}, expected ${expected}\n--- stdout\n${run.stdout.slice(-6000)}\n--- stderr\n${run.stderr.slice(-3000)}`,
  );
}

/** The PLAY RECAP line of each host: ok, changed, failed, rescued... as numbers. */
function parseRecap(stdout: string): Record<string, Record<string, number>> {
  const recap: Record<string, Record<string, number>> = {};
  const section = stdout.slice(stdout.lastIndexOf('PLAY RECAP'));
  for (const line of section.split('\n').slice(1)) {
    const match = /^(\S+)\s+:\s+(.*)$/.exec(line.trim());
    if (!match) continue;
    recap[match[1]!] = Object.fromEntries(
      [...match[2]!.matchAll(/(\w+)=(\d+)/g)].map((pair) => [pair[1]!, Number(pair[2])]),
    );
  }
  return recap;
}

/** The lines of the evacuation summary task's msg list. */
function summaryLines(stdout: string): string[] {
  const start = stdout.indexOf('TASK [What moved and what did not]');
  assert.ok(start >= 0, `no evacuation summary in the output:\n${stdout.slice(-3000)}`);
  const block = stdout.slice(start, stdout.indexOf('TASK [', start + 10));
  return [...block.matchAll(/^\s+"(.+)",?$/gm)].map((match) => match[1]!);
}

/** What could change on a host, in one ssh session: its apps, databases and users, locks, the apps' run records. */
async function hostState(lab: Lab, host: string): Promise<string> {
  const { appsRoot, stateDir } = lab.host(host);
  return runOrThrow(
    labShell(lab, host),
    [
      `ls -A ${quoteWord(appsRoot)}`,
      `psql -X -At -c "SELECT datname FROM pg_database ORDER BY 1" -c "SELECT rolname FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%' ORDER BY 1"`,
      'mysql --batch --skip-column-names -e "SELECT schema_name FROM information_schema.schemata ORDER BY 1; SELECT CONCAT(User, \'@\', Host) FROM mysql.user ORDER BY 1"',
      `ls -A ${quoteWord(`${stateDir}/locks`)} 2>/dev/null || true`,
      `ls ${quoteWord(`${stateDir}/apps`)}/*/migrations ${quoteWord(`${stateDir}/apps`)}/*/incoming 2>/dev/null || true`,
    ].join('; echo --; '),
  );
}

/** `deploy health --json` of an app on a host; the failing checks' names, [] when healthy. */
async function failingChecks(lab: Lab, app: string, host: string): Promise<string[]> {
  const run = await runDeploy(['--config', lab.deployConfigPath, '--host', host, 'health', app, '--json']);
  const health = JSON.parse(run.stdout) as { ok: boolean; checks?: { name: string; status: string }[] };
  assert.ok(health.checks, `deploy health ${app} on ${host}: exit ${run.exitCode}\n${run.stdout}\n${run.stderr}`);
  return health.checks.filter((check) => check.status === 'failed').map((check) => check.name);
}

test('the Ansible collection evacuates host a to b and c: check mode, the run, a no-op re-run, a failure that stops the play', {
  timeout: 900_000,
}, async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'dk-fleet-'));
  try {
    await withLab({ hosts: 3, mariadb: true }, async (lab) => {
      const a = labShell(lab, 'a');
      await writeFile(join(work, 'ansible.cfg'), '[defaults]\ninterpreter_python = /usr/bin/python3\n');
      await writeFile(
        join(work, 'lab.deploykit.yml'),
        `plugin: deploykit.deploy.apps\nhosts: [a, b, c]\nssh_common_args: -F ${lab.sshConfigPath}\n`,
      );
      const evacuate = (...extra: string[]): Promise<AnsibleRun> =>
        runAnsible(work, [
          'ansible-playbook',
          '-i',
          'lab.deploykit.yml',
          join(PLAYBOOKS, 'evacuate-host.yml'),
          '-e',
          'evacuate_host=a',
          '-e',
          '{"evacuate_targets": ["b", "c"]}',
          ...extra,
        ]);
      const allStates = async (): Promise<Record<string, string>> => ({
        a: await hostState(lab, 'a'),
        b: await hostState(lab, 'b'),
        c: await hostState(lab, 'c'),
      });

      await t.test('set up notes and guestbook on a; the inventory plugin lists them as groups', async () => {
        assertExit(await deployOnA(lab, ['init', 'notes']), 0, 'init notes');
        await runOrThrow(a, `cp -a ${quoteWord(GUESTBOOK_DIR)} ${quoteWord(`${lab.host('a').appsRoot}/guestbook`)}`);
        for (const app of ['notes', 'guestbook']) {
          assertExit(await deployOnA(lab, ['install', app]), 0, `install ${app}`);
          assertExit(await deployOnA(lab, ['start', app]), 0, `start ${app}`);
        }
        const run = await runAnsible(work, ['ansible-inventory', '-i', 'lab.deploykit.yml', '--list']);
        assertAnsibleExit(run, 0, 'ansible-inventory');
        const inventory = JSON.parse(run.stdout) as Record<string, { hosts?: string[] }> & {
          _meta: { hostvars: Record<string, Record<string, unknown>> };
        };
        assert.deepEqual(inventory.apps_on_a?.hosts?.sort(), ['guestbook@a', 'notes@a']);
        assert.deepEqual(inventory.app_notes?.hosts, ['notes@a']);
        assert.deepEqual(inventory.deploy_hosts?.hosts, ['a', 'b', 'c']);
        assert.equal(inventory.apps_on_b?.hosts, undefined, 'b has no apps yet');
        assert.equal(inventory._meta.hostvars['guestbook@a']?.deploy_app_database, 'mariadb');
      });

      await t.test(
        'the setup module over deploy setup: check mode changes nothing, a run makes c ready, a second run reports no change',
        async () => {
          const c = labShell(lab, 'c');
          const modes = (): Promise<string> =>
            runOrThrow(c, `stat -c '%a %n' ${quoteWord(lab.host('c').appsRoot)} ${quoteWord(lab.host('c').stateDir)}`);
          // An ad-hoc task on a: its deploy reaches c over ssh, as deploy migrate does.
          const adHoc = async (
            extra: readonly string[],
          ): Promise<{ changed: boolean; changes: string[]; msg: string }> => {
            const run = await runAnsible(work, [
              'ansible',
              'a',
              '-i',
              'lab.deploykit.yml',
              '-m',
              'deploykit.deploy.setup',
              '-a',
              'host=c apps=notes,guestbook',
              ...extra,
            ]);
            assertAnsibleExit(run, 0, `setup ${extra.join(' ')}`);
            return JSON.parse(run.stdout.slice(run.stdout.indexOf('=>') + 2)) as {
              changed: boolean;
              changes: string[];
              msg: string;
            };
          };
          await runOrThrow(c, `chmod 0750 ${quoteWord(lab.host('c').stateDir)}`);
          const before = await modes();
          const planned = await adHoc(['--check']);
          assert.equal(planned.changed, true, JSON.stringify(planned));
          assert.ok(
            planned.changes.some((change) => change.includes(lab.host('c').stateDir)),
            JSON.stringify(planned.changes),
          );
          assert.equal(await modes(), before, 'check mode changed nothing on c');
          const made = await adHoc([]);
          assert.equal(made.changed, true, JSON.stringify(made));
          assert.match(await modes(), /^700 /m, 'the state dir is 0700 now');
          const again = await adHoc([]);
          assert.deepEqual(
            { changed: again.changed, changes: again.changes },
            { changed: false, changes: [] },
            JSON.stringify(again),
          );
        },
      );

      await t.test('check mode plans both moves (2 at a time) and changes nothing on any host', async () => {
        const before = await allStates();
        const run = await evacuate('--check', '-e', 'evacuate_serial=2', '--forks', '2');
        assertAnsibleExit(run, 0, 'evacuate --check');
        assert.deepEqual(summaryLines(run.stdout), ['guestbook@a: planned to b', 'notes@a: planned to c']);
        assert.deepEqual(await allStates(), before);
      });

      await t.test(
        'one run moves both apps (2 at a time, forks 2): healthy on their targets, the report in the output',
        async () => {
          const run = await evacuate('-e', 'evacuate_serial=2', '--forks', '2');
          assertAnsibleExit(run, 0, 'evacuate');
          t.diagnostic(`evacuation of 2 apps, serial 2, forks 2: ${run.seconds.toFixed(1)} s`);
          assert.deepEqual(summaryLines(run.stdout), ['guestbook@a: moved to b', 'notes@a: moved to c']);
          assert.match(run.stdout, /"guestbook moved to b in [\d.]+ s \(run \S+\)"/);
          assert.match(run.stdout, /"part database: sent, \d+ bytes"/);
          assert.match(run.stdout, /"verify database rows: ok"/);
          assert.match(run.stdout, /"verify health admin login: ok"/);
          const recap = parseRecap(run.stdout);
          assert.equal(recap['notes@a']?.changed, 1);
          assert.equal(recap['guestbook@a']?.changed, 1);
          assert.deepEqual(await failingChecks(lab, 'guestbook', 'b'), []);
          assert.deepEqual(await failingChecks(lab, 'notes', 'c'), []);
          const entries = await fetch(`http://${lab.host('b').address}:8090/entries`);
          assert.match(await entries.text(), /first entry/);
        },
      );

      await t.test('a second run (2 at a time) changes nothing', async () => {
        const run = await evacuate('-e', 'evacuate_serial=2', '--forks', '2');
        assertAnsibleExit(run, 0, 'second evacuate');
        assert.deepEqual(summaryLines(run.stdout), ['guestbook@a: already there to b', 'notes@a: already there to c']);
        for (const [host, counts] of Object.entries(parseRecap(run.stdout)))
          assert.equal(counts.changed, 0, `${host} changed: ${run.stdout.slice(-3000)}`);
      });

      await t.test(
        'guestbook fails its health on b: the play stops there, b is rolled back, notes on c and both apps on a untouched',
        async () => {
          // Take guestbook's copy off b again (the app module's state=absent, run on a through deploy --host b).
          const removal = await runAnsible(work, [
            'ansible',
            '-i',
            'lab.deploykit.yml',
            'guestbook@a',
            '-m',
            'deploykit.deploy.app',
            '-a',
            'name=guestbook host=b state=absent backup=false',
          ]);
          assertAnsibleExit(removal, 0, 'remove the copy on b');
          assert.match(removal.stdout, /guestbook@a \| CHANGED/);
          assert.equal(existsSync(`${lab.host('b').appsRoot}/guestbook`), false);
          const b = labShell(lab, 'b');
          const before = await allStates();
          // A fault only b's MariaDB has: every login of a user without SUPER (the app's own user) is cut, while deploy's
          // admin connection (root over the socket) works - the move verifies, the app starts, its entries page fails.
          await runOrThrow(b, `mysql -e "SET GLOBAL init_connect = 'SELECT deploykit_injected_fault()'"`);
          let run: AnsibleRun;
          try {
            run = await evacuate('--forks', '1');
          } finally {
            await runOrThrow(b, `mysql -e "SET GLOBAL init_connect = ''"`);
          }
          assertAnsibleExit(run, 2, 'evacuate with guestbook failing on b');
          const summary = summaryLines(run.stdout);
          assert.match(summary[0]!, /^guestbook@a: failed to b - guestbook to b: .*entries page/);
          assert.equal(summary[1], 'notes@a: not attempted', 'the play stopped at the first batch with a failure');
          assert.match(run.stdout, /"rolled back on the target: /);
          assert.match(run.stdout, /not evacuated: guestbook@a, notes@a/);
          assert.equal(parseRecap(run.stdout)['guestbook@a']?.rescued, 1);
          assert.equal(parseRecap(run.stdout)['notes@a'], undefined, 'no task ran for notes');
          // b as before the run - no folder, database, user, lock or staging of guestbook - but for the record of the
          // rolled-back run; c untouched; a the same but for the record of the failed migration (and its fresh archive).
          const after = await allStates();
          const withoutRunRecords = (state: string): string => state.slice(0, state.lastIndexOf('--\n'));
          assert.equal(withoutRunRecords(after.b!), withoutRunRecords(before.b!));
          assert.match(after.b!.slice(after.b!.lastIndexOf('--\n')), /guestbook\/incoming:\n\S+\.jsonl\n$/);
          assert.equal(after.c, before.c);
          assert.equal(withoutRunRecords(after.a!), withoutRunRecords(before.a!));
          assert.deepEqual(await failingChecks(lab, 'notes', 'c'), []);
          assert.deepEqual(await failingChecks(lab, 'notes', 'a'), []);
          assert.deepEqual(await failingChecks(lab, 'guestbook', 'a'), []);
        },
      );

      await t.test('backup-all and health-all run over every app of the fleet', async () => {
        const health = await runAnsible(work, [
          'ansible-playbook',
          '-i',
          'lab.deploykit.yml',
          join(PLAYBOOKS, 'health-all.yml'),
          '--forks',
          '3',
        ]);
        assertAnsibleExit(health, 0, 'health-all');
        assert.deepEqual(Object.keys(parseRecap(health.stdout)).sort(), ['guestbook@a', 'notes@a', 'notes@c']);
        const backup = await runAnsible(work, [
          'ansible-playbook',
          '-i',
          'lab.deploykit.yml',
          join(PLAYBOOKS, 'backup-all.yml'),
          '-e',
          'backup_apps=apps_on_c',
        ]);
        assertAnsibleExit(backup, 0, 'backup-all');
        assert.match(backup.stdout, /notes on c: ok/);
        assert.deepEqual(parseRecap(backup.stdout), {
          'notes@c': { ok: 2, changed: 1, unreachable: 0, failed: 0, skipped: 0, rescued: 0, ignored: 0 },
        });
      });
    });
    // Nothing of a remote run is left in Ansible's remote temp dir (the lab hosts share this disk).
    const remoteTmp = join(work, 'remote-tmp');
    assert.deepEqual(existsSync(remoteTmp) ? readdirSync(remoteTmp) : [], []);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});

/**
 * ansible-test sanity tests that need a virtualenv with packages from PyPI: ansible-test bootstraps pip into it
 * from ci-files.testing.ansible.com, which a machine without network cannot reach. ansible-doc, run below
 * for every plugin, parses the same documentation ansible-test's ansible-doc test does.
 */
const SANITY_NEEDING_PYPI = [
  'ansible-doc',
  'import',
  'pep8',
  'pylint',
  'runtime-metadata',
  'validate-modules',
  'yamllint',
];

test('the collection passes ansible-test sanity (the tests Debian ansible-core runs offline) and ansible-doc', {
  timeout: 300_000,
}, async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'dk-sanity-'));
  const collection = join(COLLECTION_ROOT, 'ansible_collections/deploykit/deploy');
  // ansible-test writes tests/output in the collection; the tree has no tests/ of its own.
  const testsDirExisted = existsSync(join(collection, 'tests'));
  try {
    await writeFile(join(work, 'ansible.cfg'), '');
    const skips = SANITY_NEEDING_PYPI.flatMap((name) => ['--skip-test', name]);
    const sanity = await new Promise<AnsibleRun>((resolve, reject) => {
      const started = Date.now();
      // ansible-test keeps its cache in ~/.ansible/test: HOME points into the temp dir.
      const child = spawn('ansible-test', ['sanity', '--python', '3.11', '--color', 'no', ...skips], {
        cwd: collection,
        env: { ...buildDeployEnv(), HOME: work, ANSIBLE_CONFIG: join(work, 'ansible.cfg') },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => out.push(chunk));
      child.on('error', reject);
      child.on('close', (code) =>
        resolve({
          exitCode: code ?? 1,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: '',
          seconds: (Date.now() - started) / 1000,
        }),
      );
    });
    assertAnsibleExit(sanity, 0, 'ansible-test sanity');
    const ran = [...sanity.stdout.matchAll(/Running sanity test "([^"]+)"/g)].map((match) => match[1]!);
    assert.ok(
      ran.includes('compile') && ran.includes('metaclass-boilerplate') && ran.includes('shebang'),
      ran.join(', '),
    );
    t.diagnostic(
      `ansible-test sanity: ${ran.length} tests passed in ${sanity.seconds.toFixed(1)} s; not run (they need PyPI): ${SANITY_NEEDING_PYPI.join(', ')}`,
    );
    for (const [type, name] of [
      ['module', 'app'],
      ['module', 'migrate'],
      ['module', 'health'],
      ['inventory', 'apps'],
    ] as const) {
      const doc = await runAnsible(work, ['ansible-doc', '-t', type, '--json', `deploykit.deploy.${name}`]);
      assertAnsibleExit(doc, 0, `ansible-doc ${name}`);
      const parsed = JSON.parse(doc.stdout) as Record<string, { doc: { options: Record<string, unknown> } }>;
      assert.ok(
        Object.keys(parsed[`deploykit.deploy.${name}`]?.doc.options ?? {}).length > 0,
        `${name} documents its options`,
      );
    }
  } finally {
    await rm(join(collection, testsDirExisted ? 'tests/output' : 'tests'), { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  }
});
