// Shared fixtures of the transport end-to-end tests: a Borg archive and a database on host a, sends
// through the built CLI on host a, and the "nothing left behind" checks on both hosts.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { quoteArgv, quoteWord } from '@deploykit/core';
import type { Lab } from '@deploykit/testlab';
import { dbFingerprint, diffTreeFingerprints, runOrThrow, labShell, treeFingerprint } from './helpers/index.js';

/** The throttling filter (`node THROTTLE BYTES_PER_SECOND`), so mid-stream faults hit mid-stream. */
export const THROTTLE = fileURLToPath(new URL('./fixtures/throttle.js', import.meta.url));

/** Paths of the fixtures built on host a. */
export interface TransportFixtures {
  /** The data folder archived into Borg. */
  dataDir: string;
  repo: string;
  archive: string;
  database: string;
}

/** Makes a data folder (modes, symlinks, nested dirs, a 3 MB file), a Borg repo + archive of it, and a database on host a. */
export async function createFixtures(lab: Lab): Promise<TransportFixtures> {
  const a = lab.host('a');
  const dataDir = `${a.root}/fixture-data`;
  const repo = `${a.root}/fixture-repo`;
  const shell = labShell(lab, 'a');
  await runOrThrow(
    shell,
    `set -e
mkdir -p ${dataDir}/uploads/2026 ${dataDir}/config ${dataDir}/empty
head -c 3000000 /dev/urandom > ${dataDir}/uploads/2026/big.bin
for i in $(seq 1 40); do echo "note $i $RANDOM" > ${dataDir}/uploads/2026/n$i.txt; done
printf 'secret=1\\n' > ${dataDir}/config/app.env; chmod 600 ${dataDir}/config/app.env
printf '#!/bin/sh\\necho hi\\n' > ${dataDir}/run.sh; chmod 755 ${dataDir}/run.sh
chmod 2750 ${dataDir}/config
ln -s uploads/2026/n1.txt ${dataDir}/latest
ln -s ../config ${dataDir}/uploads/cfg
export BORG_PASSPHRASE='' BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
borg init -e none ${repo}
cd ${dataDir} && borg create ${repo}::one .
createdb src
psql -X -q -v ON_ERROR_STOP=1 -d src -c "create table notes(id serial primary key, body text, at timestamptz default now()); insert into notes(body) select md5(g::text) || repeat('x', g % 50) from generate_series(1, 20000) g; create index on notes(body);"`,
  );
  return { dataDir, repo, archive: `${repo}::one`, database: 'src' };
}

/** The producer argv of the Borg stream, optionally throttled to `rate` bytes/s. */
export function borgProducer(fixtures: TransportFixtures, rate?: number): string[] {
  const exportArgv = ['borg', 'export-tar', fixtures.archive, '-'];
  if (rate === undefined) return exportArgv;
  return ['sh', '-c', `${quoteArgv(exportArgv)} | node ${quoteWord(THROTTLE)} ${rate}`];
}

/** What one `deploy stream send` run on host a returned. */
export interface SendRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The --json StreamResult (or the error object on failure). */
  json: Record<string, unknown> | undefined;
}

/** Runs `deploy stream send --json ...args` on host a through ssh. */
export async function sendFromA(lab: Lab, args: readonly string[], env: Record<string, string> = {}): Promise<SendRun> {
  const prefix = Object.entries(env)
    .map(([k, v]) => `${k}=${quoteWord(v)}`)
    .join(' ');
  const result = await lab.ssh('a', `${prefix} deploy stream send --json ${quoteArgv(args)}`);
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(result.stdout) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr, json };
}

/** Asserts the folder on host b is byte-identical (content, modes, symlinks) to the fixture data on host a. */
export async function assertSameTree(lab: Lab, sourceDir: string, targetDir: string): Promise<void> {
  const [source, target] = await Promise.all([
    treeFingerprint(lab, 'a', sourceDir),
    treeFingerprint(lab, 'b', targetDir),
  ]);
  assert.ok(source.entries.length > 40, `fixture tree has ${source.entries.length} entries`);
  assert.deepEqual(diffTreeFingerprints(source, target), []);
}

/** Asserts database `target` on host b has the same content as `source` on host a. */
export async function assertSameDatabase(lab: Lab, source: string, target: string): Promise<void> {
  const [a, b] = await Promise.all([dbFingerprint(lab, 'a', source), dbFingerprint(lab, 'b', target)]);
  assert.ok(Object.keys(a.tables).length > 0);
  assert.deepEqual({ ...b, database: source }, a);
}

/** Processes of the lab that a stream may have started (not its sshd/postgres servers), with their command lines. */
export async function listStreamProcesses(lab: Lab): Promise<string[]> {
  const found: string[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let environ: string;
    let cmdline: string;
    try {
      [environ, cmdline] = await Promise.all([
        readFile(`/proc/${name}/environ`, 'utf8'),
        readFile(`/proc/${name}/cmdline`, 'utf8'),
      ]);
    } catch {
      continue;
    }
    const command = cmdline.split('\0').join(' ').trim();
    const inLab = environ.includes(`DEPLOY_LAB_ID=${lab.id}`) || command.includes(lab.dir);
    if (
      inLab &&
      /stream (send|receive)|ffl|borg|pg_dump|pg_restore|throttle|dd of=|tar -x|\bssh\b.*deploy/.test(command) &&
      !/^sshd|postgres:/.test(command)
    ) {
      found.push(`${name}: ${command}`);
    }
  }
  return found;
}

/** Waits up to `ms` for every stream process of the lab to be gone; asserts none is left. */
export async function assertNoStreamProcesses(lab: Lab, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms;
  let left = await listStreamProcesses(lab);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(200);
    left = await listStreamProcesses(lab);
  }
  assert.deepEqual(left, [], 'processes left behind');
}

/** Asserts no staging dir beside `dir` on host b and no stream temp files in either host's TMPDIR. */
export async function assertNoLeftovers(lab: Lab, dir?: string): Promise<void> {
  const checks = [
    // Also a send's ssh control dir and attempt dir, named with its run id (dk-<run>-send<pid>-cm-*, dk-<run>-stream<pid>-*).
    lab.ssh('a', 'ls -A "$TMPDIR" | grep -E "^dk-(stream|scp|cm-)|^dk-.*-(stream|send)[0-9]+-" || true'),
    lab.ssh('b', 'ls -A "$TMPDIR" | grep -E "^dk-(stream|scp)|dkstream" || true'),
    dir === undefined
      ? Promise.resolve({ stdout: '' })
      : lab.ssh('b', `ls -A ${quoteWord(dir.replace(/\/[^/]+$/, ''))} | grep -E "\\.(staging|old)-" || true`),
  ];
  const [a, b, staging] = await Promise.all(checks);
  assert.equal(a!.stdout.trim(), '', 'temp files left on host a');
  assert.equal(b!.stdout.trim(), '', 'temp files left on host b');
  assert.equal(staging!.stdout.trim(), '', 'staging left beside the target dir');
}

/** Puts "previous" data into `dir` on host b, returns a check that it is still exactly there. */
export async function seedPreviousData(lab: Lab, dir: string): Promise<() => Promise<void>> {
  await runOrThrow(
    labShell(lab, 'b'),
    `rm -rf ${quoteWord(dir)} && mkdir -p ${quoteWord(dir)} && echo previous > ${quoteWord(dir)}/keep.txt`,
  );
  return async () => {
    const content = await runOrThrow(labShell(lab, 'b'), `ls -A ${quoteWord(dir)}; cat ${quoteWord(dir)}/keep.txt`);
    assert.equal(content, 'keep.txt\nprevious\n', 'previous target data changed');
  };
}

/** Finds the pid of a lab process whose command line matches `pattern`, waiting up to `ms`. */
export async function waitForLabProcess(lab: Lab, pattern: RegExp, ms = 15000): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    for (const line of await listAllLabProcesses(lab)) {
      if (pattern.test(line.command)) return line.pid;
    }
    if (Date.now() > deadline) throw new Error(`no lab process matching ${pattern} within ${ms} ms`);
    await sleep(100);
  }
}

async function listAllLabProcesses(lab: Lab): Promise<{ pid: number; command: string }[]> {
  const out: { pid: number; command: string }[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const [environ, cmdline] = await Promise.all([
        readFile(`/proc/${name}/environ`, 'utf8'),
        readFile(`/proc/${name}/cmdline`, 'utf8'),
      ]);
      const command = cmdline.split('\0').join(' ').trim();
      if (environ.includes(`DEPLOY_LAB_ID=${lab.id}`) || command.includes(lab.dir))
        out.push({ pid: Number(name), command });
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * What a run left on this machine (both lab hosts live on it): processes carrying its run id in
 * their environment (DEPLOY_RUN_ID) or command line, and entries named with it in both hosts'
 * TMPDIR and in the parents an ssh control dir may fall back to (/tmp, /run/user/<uid>).
 */
export async function findRunTraces(lab: Lab, runId: string): Promise<string[]> {
  const found: string[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const [environ, cmdline] = await Promise.all([
        readFile(`/proc/${name}/environ`, 'utf8'),
        readFile(`/proc/${name}/cmdline`, 'utf8'),
      ]);
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      if (/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3))) continue;
      if (environ.split('\0').includes(`DEPLOY_RUN_ID=${runId}`) || cmdline.includes(runId))
        found.push(`process ${name}: ${cmdline.split('\0').join(' ').trim()}`);
    } catch {
      // gone
    }
  }
  const dirs = [
    `${lab.host('a').root}/tmp`,
    `${lab.host('b').root}/tmp`,
    '/tmp',
    ...(typeof process.getuid === 'function' ? [`/run/user/${process.getuid()}`] : []),
  ];
  for (const dir of dirs) {
    for (const entry of await readdir(dir).catch(() => [] as string[]))
      if (entry.includes(runId)) found.push(`${dir}/${entry}`);
  }
  return found;
}

/** Waits up to `ms` for `check` to return an empty list; returns the last list. */
export async function settleEmpty(check: () => Promise<string[]>, ms = 10_000): Promise<string[]> {
  const deadline = Date.now() + ms;
  let left = await check();
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(200);
    left = await check();
  }
  return left;
}
