import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { quoteArgv } from '@deploykit/core';
import {
  findLabProcesses,
  isLabProcess,
  isSameProcess,
  labStatus,
  startLab,
  stopLab,
  type LabRecord,
} from './index.js';

test('a two-host lab: identity by SetEnv, PostgreSQL by socket and password, the ffl time scale, nothing left after down', async () => {
  const lab = await startLab({ hosts: 2, fflTimeScale: 0.25 });
  const record = JSON.parse(readFileSync(`${lab.dir}/lab.json`, 'utf8')) as LabRecord;
  try {
    assert.deepEqual(
      lab.hosts.map((host) => host.name),
      ['a', 'b'],
    );
    assert.notEqual(lab.host('a').address, lab.host('b').address);
    assert.match(lab.host('a').address, /^127\.\d+\.\d+\.2$/);
    assert.throws(() => lab.host('z'), /no host z/);

    for (const host of lab.hosts) {
      const result = await lab.ssh(
        host.name,
        'printf "%s|%s|%s|%s|%s\\n" "$DEPLOY_HOST_NAME" "$DEPLOY_HOST_ADDRESS" "$DEPLOY_APPS_ROOT" "$DEPLOY_LAB_ID" "$PATH"; command -v psql; psql -Atc "select 1"; echo "$FFL_STANDIN_TIME_SCALE"',
      );
      assert.equal(result.exitCode, 0, result.stderr);
      const [identity, psqlPath, selectOne, fflTimeScale] = result.stdout.trim().split('\n');
      assert.equal(fflTimeScale, '0.25', 'every session gets the ffl stand-in time scale');
      assert.equal(identity, [host.name, host.address, host.appsRoot, lab.id, host.env.PATH].join('|'));
      assert.match(host.env.PATH ?? '', /packages\/deploy\/bin:.*packages\/ffl-standin\/bin:/);
      assert.equal(psqlPath, '/usr/bin/psql');
      assert.equal(selectOne, '1');
    }

    // A real password login over TCP: from host b to host a's cluster, wrong password refused.
    const a = lab.host('a');
    const created = await lab.ssh(
      'a',
      quoteArgv(['psql', '-v', 'ON_ERROR_STOP=1', '-c', "create role app login password 'pw-lab-1'"]),
    );
    assert.equal(created.exitCode, 0, created.stderr);
    const login = (password: string) =>
      lab.ssh(
        'b',
        `PGPASSWORD=${password} ${quoteArgv(['psql', `host=${a.address} port=${a.pgPort} user=app dbname=postgres`, '-Atc', 'select current_user'])}`,
      );
    const good = await login('pw-lab-1');
    assert.equal(good.exitCode, 0, good.stderr);
    assert.equal(good.stdout.trim(), 'app');
    const bad = await login('wrong');
    assert.notEqual(bad.exitCode, 0);
    assert.match(bad.stderr, /password authentication failed/);

    // ssh_config works for a plain ssh client, with strict host key checking.
    assert.match(readFileSync(lab.sshConfigPath, 'utf8'), /Host b\n {2}HostName 127\./);
    assert.match(readFileSync(lab.deployConfigPath, 'utf8'), new RegExp(`address: ${a.address.replace(/\./g, '\\.')}`));
    // The local transport runs deploy for a host with its deploy.yaml env: the scale travels there too.
    assert.match(readFileSync(lab.deployConfigPath, 'utf8'), /FFL_STANDIN_TIME_SCALE: "0\.25"/);

    // An app-like process started over ssh outlives its session; down must still find and stop it.
    const started = await lab.ssh('b', 'nohup sleep 300 >/dev/null 2>&1 & echo $!');
    const strayPid = Number(started.stdout.trim());
    assert.ok(strayPid > 1);
    assert.ok(await isLabProcess(strayPid, lab.id));
    assert.ok((await findLabProcesses(lab.id)).includes(strayPid));

    // A second lab cannot take a dir that holds a live one.
    await assert.rejects(startLab({ dir: lab.dir }), /already up/);
    const status = await labStatus(lab.dir);
    assert.equal(status.state, 'running');
  } finally {
    const started = Date.now();
    await lab.down();
    console.log(`lab down in ${Date.now() - started} ms`);
  }
  for (const host of record.hosts) {
    assert.ok(host.pids.sshd !== undefined && host.pids.postgres !== undefined);
    for (const ref of Object.values(host.pids))
      assert.equal(await isSameProcess(ref), false, `pid ${ref.pid} of ${host.name} survived`);
  }
  assert.deepEqual(
    await findLabProcesses(
      lab.id,
      record.hosts.flatMap((host) => Object.values(host.pids)),
    ),
    [],
  );
  assert.equal(existsSync(lab.dir), false);
  // Idempotent: again through the handle and through the (now gone) dir.
  await lab.down();
  await stopLab(lab.dir);
  assert.equal((await labStatus(lab.dir)).state, 'absent');
});

test('a lab with MariaDB: a real password user over TCP, root through the socket', async () => {
  await using lab = await startLab({ hosts: 1, mariadb: true, postgres: false });
  const host = lab.host('a');
  assert.ok(host.mysqlSocket !== undefined);
  assert.equal(host.env.MYSQL_UNIX_PORT, host.mysqlSocket);
  assert.equal(host.env.PGHOST, undefined);
  const created = await lab.ssh('a', 'mysql -u root', {
    input: "CREATE USER 'app'@'%' IDENTIFIED BY 'pw-my-1'; CREATE DATABASE appdb; GRANT ALL ON appdb.* TO 'app'@'%';\n",
  });
  assert.equal(created.exitCode, 0, created.stderr);
  const login = (password: string) =>
    lab.ssh(
      'a',
      quoteArgv([
        'mysql',
        '-h',
        host.address,
        '-P',
        String(host.mysqlPort),
        '-u',
        'app',
        `-p${password}`,
        '-N',
        '-e',
        'select current_user(), database()',
        'appdb',
      ]),
    );
  const good = await login('pw-my-1');
  assert.equal(good.exitCode, 0, good.stderr);
  assert.equal(good.stdout.trim(), 'app@%\tappdb');
  const bad = await login('wrong');
  assert.notEqual(bad.exitCode, 0);
  assert.match(bad.stderr, /Access denied/);
});
