#!/usr/bin/env node
// The deploykit demo (`npm run demo`, which builds first): a two-host lab on loopback, the notes sample app
// installed, used, backed up, damaged and restored on host a, then migrated to host b by streaming and
// verified there, cut over (the writes made on a since then follow, a is marked moved), then once more in pairing mode (b no longer trusts a's ssh key) - every step through the
// real `deploy` CLI.
//
// Structure: STEPS is a list of small async functions sharing one `demo` object. To extend the demo (e.g. a
// migration from host a to host b), write another step and add it to STEPS; `deploy(host, ...args)` runs a
// command the way a user would type it and `say()` narrates.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { labStatus, startLab } from '@deploykit/testlab';
import {
  NotesClient,
  REPO_ROOT,
  parseCredentials,
  labShell,
  runDeploy,
  runOrThrow,
} from '../test/dist/helpers/index.js';
import { openTerminal } from '../test/dist/migrate-lab.js';

// The lab lives in <repo>/.lab like `npm run lab -- up`'s; DEPLOY_DEMO_LAB_DIR picks another dir (e.g. while a lab runs there).
const LAB_DIR = process.env.DEPLOY_DEMO_LAB_DIR ?? join(REPO_ROOT, '.lab');
const color = process.stdout.isTTY ? (code, text) => `\x1b[${code}m${text}\x1b[0m` : (_code, text) => text;

/** Narration for the reader. */
function say(text) {
  process.stdout.write(`${color('36', `  ${text}`)}\n`);
}

/** Shared state of the demo run; steps read and add to it. */
const demo = {
  lab: undefined,
  /** Set by the "use the app" step: what we uploaded and its checksum. */
  upload: undefined,
  notes: [],
  credentials: undefined,
  /** Set by the cutover step: the upload made on a after the migration. */
  lateUpload: undefined,
};

function sha256(data) {
  return createHash('sha256').update(data).digest('hex');
}

/** Runs `deploy --host HOST ARGS...` with the lab's config, printing the command and streaming its output; throws unless it exits `expect`. */
async function deploy(host, ...args) {
  const shown = ['deploy', ...args, '--host', host].join(' ');
  process.stdout.write(`\n${color('1', `$ ${shown}`)}\n`);
  const run = await runDeploy(['--config', demo.lab.deployConfigPath, '--host', host, ...args], {
    echo: true,
    timeoutMs: 300_000,
  });
  if (run.exitCode !== 0) throw new Error(`\`${shown}\` exited with ${run.exitCode}`);
  return run;
}

/** Where the notes app answers on a lab host. */
function appUrl(host) {
  return `http://${demo.lab.host(host).address}:8080`;
}

/** Runs a shell command on a lab host, printing it first (for the direct "damage" the demo does by hand). */
async function onHost(host, command, input) {
  process.stdout.write(`\n${color('1', `[host ${host}]$ ${command}`)}\n`);
  return runOrThrow(labShell(demo.lab, host), command, input);
}

// ---- steps ------------------------------------------------------------------------------------------

async function startTheLab() {
  const status = await labStatus(LAB_DIR);
  if (status.state === 'running' || status.state === 'degraded') {
    throw new Error(
      `a lab is already running in ${LAB_DIR}; stop it with \`npm run lab -- down\` (or set DEPLOY_DEMO_LAB_DIR to another dir) and run the demo again`,
    );
  }
  say('Two "servers" on this machine: each lab host is its own sshd on a loopback address, with its own');
  say('PostgreSQL 15 cluster, apps root and state dir. deploy reaches them over ssh, like real hosts.');
  // removeDir false: on failure the lab's logs stay for a look; tearDown removes the dir after a clean run.
  demo.lab = await startLab({ hosts: 2, dir: LAB_DIR, removeDir: false });
  for (const host of demo.lab.hosts) say(`host ${host.name}: ${host.address}  apps in ${host.appsRoot}`);
}

async function createTheApp() {
  say('Create the notes app on host a from the sample app folder (apps-template/): manifest, bin/ scripts, app code.');
  await deploy('a', 'init', 'notes');
  say("bin/install creates the secrets, installs the app's npm packages, its database role, database and schema.");
  await deploy('a', 'install', 'notes');
  await deploy('a', 'start', 'notes');
  await deploy('a', 'list');
}

async function useTheApp() {
  const shell = labShell(demo.lab, 'a');
  demo.credentials = parseCredentials(
    await runOrThrow(shell, `cat ${demo.lab.host('a').appsRoot}/notes/secrets/admin.credentials`),
  );
  const client = new NotesClient(appUrl('a'));
  say(
    `Open ${appUrl('a')} and log in as "${demo.credentials.username}" (password from secrets/admin.credentials, made by bin/install).`,
  );
  await client.login(demo.credentials.username, demo.credentials.password);
  for (const [title, body] of [
    ['Shopping list', 'milk, eggs, coffee'],
    ['Meeting notes', 'migrate notes to host b next week'],
  ]) {
    await client.addNote(title, body);
    demo.notes.push(title);
    say(`added note "${title}"`);
  }
  const content = randomBytes(256 * 1024);
  const answer = await client.upload('quarterly-report.bin', content);
  demo.upload = { name: answer.name, sha256: sha256(content), bytes: content.length };
  say(`uploaded ${answer.name} (${answer.bytes} bytes), sha256 ${demo.upload.sha256.slice(0, 16)}...`);
  const page = (await client.get('/notes')).body.toString('utf8');
  say(
    `GET /notes shows: ${demo.notes
      .filter((title) => page.includes(title))
      .map((t) => `"${t}"`)
      .join(', ')}`,
  );
  await deploy('a', 'health', 'notes');
}

async function backUp() {
  say('One Borg archive holds both volumes (uploads, logs) and a pg_dump of the database, streamed through a FIFO.');
  await deploy('a', 'backup', 'notes');
}

async function damageIt() {
  const uploads = `${demo.lab.host('a').appsRoot}/notes/data/uploads`;
  say('Now something goes wrong: an upload is deleted and the notes table is dropped.');
  await onHost('a', `rm ${uploads}/${demo.upload.name}`);
  await onHost('a', 'psql -X -q -d notes -c "DROP TABLE notes"');
  const client = new NotesClient(appUrl('a'));
  await client.login(demo.credentials.username, demo.credentials.password);
  const upload = await client.get(`/uploads/${demo.upload.name}`);
  const page = await client.get('/notes');
  say(`GET /uploads/${demo.upload.name} -> HTTP ${upload.status}; GET /notes -> HTTP ${page.status}`);
  say('deploy health notices:');
  const run = await runDeploy(['--config', demo.lab.deployConfigPath, '--host', 'a', 'health', 'notes'], {
    echo: true,
  });
  say(`(deploy health exited ${run.exitCode}: a failing check is exit 1)`);
  if (run.exitCode === 0) throw new Error('deploy health passed on a damaged app');
}

async function restoreIt() {
  say('Restore from the latest archive: volumes are extracted next to the live ones and swapped in,');
  say('the database is restored in one transaction, the app is restarted.');
  await deploy('a', 'restore', 'notes');
  await deploy('a', 'health', 'notes');
}

async function showTheResult() {
  const client = new NotesClient(appUrl('a'));
  await client.login(demo.credentials.username, demo.credentials.password);
  const upload = await client.get(`/uploads/${demo.upload.name}`);
  const checksum = sha256(upload.body);
  const same = upload.status === 200 && checksum === demo.upload.sha256;
  say(
    `GET /uploads/${demo.upload.name} -> HTTP ${upload.status}, ${upload.body.length} bytes, sha256 ${checksum.slice(0, 16)}... ${same ? 'matches the upload' : 'DOES NOT MATCH'}`,
  );
  const page = (await client.get('/notes')).body.toString('utf8');
  const back = demo.notes.filter((title) => page.includes(title));
  say(`notes back on the page: ${back.map((t) => `"${t}"`).join(', ') || 'none'}`);
  if (!same || back.length !== demo.notes.length)
    throw new Error('the restored app does not match what was there before the damage');
}

async function planTheMigration() {
  say('Host a is "full": move notes to host b. First the plan: every step and the exact command it runs,');
  say('on a (the producers of the bundle) and on b (`deploy receive notes`, which b answered from the header).');
  say('No archive is staged on either disk: borg export-tar, the dump and tar stream straight into staging on b.');
  await deploy('a', 'migrate', 'notes', '--to', 'b', '--plan');
}

async function migrateIt() {
  say('Now for real, over ONE ssh session: a starts `deploy receive notes` on b and streams one bundle into it');
  say('(header, the archive listings, then the app folder, each volume, the roles and the database as framed parts).');
  say('b checks it can take the app before a even backs up, restores everything under staging names, verifies every');
  say('file and row, then swaps it into place, installs, starts and health-checks it. A failure is rolled back on b.');
  await deploy('a', 'migrate', 'notes', '--to', 'b');
}

async function checkOnB() {
  const client = new NotesClient(appUrl('b'));
  say(`The app now answers on host b at ${appUrl('b')}; log in there with the same credentials.`);
  await client.login(demo.credentials.username, demo.credentials.password);
  const upload = await client.get(`/uploads/${demo.upload.name}`);
  const checksum = sha256(upload.body);
  const same = upload.status === 200 && checksum === demo.upload.sha256;
  say(
    `b: GET /uploads/${demo.upload.name} -> HTTP ${upload.status}, sha256 ${checksum.slice(0, 16)}... ${same ? 'same bytes as uploaded on a' : 'DIFFERENT'}`,
  );
  const page = (await client.get('/notes')).body.toString('utf8');
  const there = demo.notes.filter((title) => page.includes(title));
  say(`b: notes on the page: ${there.map((t) => `"${t}"`).join(', ') || 'none'}`);
  if (!same || there.length !== demo.notes.length) throw new Error('the migrated app on b does not match host a');
}

async function cutItOver() {
  say(
    'b holds notes as of the migration, but a still serves and takes writes until DNS moves. Users keep working on a:',
  );
  const client = new NotesClient(appUrl('a'));
  await client.login(demo.credentials.username, demo.credentials.password);
  await client.addNote('Written after the migration', 'this note must not be lost at the cutover');
  demo.notes.push('Written after the migration');
  const content = randomBytes(128 * 1024);
  const answer = await client.upload('after-the-migration.bin', content);
  demo.lateUpload = { name: answer.name, sha256: sha256(content) };
  say(`a: added a note and uploaded ${answer.name} - neither is on b yet.`);
  say('The cutover stops writes on a (its bin/maintenance serves a 503 page), makes a final Borg archive, and sends');
  say("only what changed since the migration's archive plus the database again; b applies it (every change undoable),");
  say('verifies, starts and health-checks the app. On any failure b undoes it and a serves again.');
  await deploy('a', 'cutover', 'notes', '--to', 'b');
  const onB = new NotesClient(appUrl('b'));
  await onB.login(demo.credentials.username, demo.credentials.password);
  const late = await onB.get(`/uploads/${demo.lateUpload.name}`);
  const sameLate = late.status === 200 && sha256(late.body) === demo.lateUpload.sha256;
  const page = (await onB.get('/notes')).body.toString('utf8');
  say(
    `b: GET /uploads/${demo.lateUpload.name} -> HTTP ${late.status} ${sameLate ? '(same bytes)' : '(DIFFERENT)'}; the late note is ${page.includes('Written after the migration') ? 'there' : 'MISSING'}`,
  );
  if (!sameLate || !page.includes('Written after the migration'))
    throw new Error('the cutover lost a write made on a after the migration');
  const onA = await new NotesClient(appUrl('a')).get('/notes');
  say(
    `a: GET /notes -> HTTP ${onA.status} (maintenance page); \`deploy list\` on a marks it moved, and \`deploy start\` there refuses:`,
  );
  await deploy('a', 'list');
  process.stdout.write(`\n${color('1', '$ deploy start notes --host a')}\n`);
  const start = await runDeploy(['--config', demo.lab.deployConfigPath, '--host', 'a', 'start', 'notes'], {
    echo: true,
  });
  say(`(exit ${start.exitCode}: it would split the data between two hosts; --force overrides)`);
  if (start.exitCode !== 7) throw new Error(`deploy start of a moved app exited ${start.exitCode}, not 7`);
  say('Now point DNS at b.');
}

/** Prints a terminal's output line by line, each line marked with the host it came from. */
function terminalEcho(host) {
  let rest = '';
  return (chunk) => {
    const lines = (rest + chunk.replace(/\r/g, '')).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) process.stdout.write(`${color('2', `[${host}]`)} ${line}\n`);
    // A prompt waits without a newline: show it at once.
    if (/: $/.test(rest)) {
      process.stdout.write(`${color('2', `[${host}]`)} ${rest}\n`);
      rest = '';
    }
  };
}

async function pairIt() {
  const lab = demo.lab;
  say('Pairing mode is for a fresh host that a cannot SSH into. To show it, notes goes to b once more (--replace;');
  say("a's copy is marked moved but still holds the data). First b stops trusting a's key:");
  say("only b's own operator (a key of their own) logs in there from now on.");
  const operatorKey = join(lab.dir, 'operator_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'operator-of-b', '-f', operatorKey]);
  writeFileSync(lab.host('b').authorizedKeysPath, readFileSync(`${operatorKey}.pub`, 'utf8'), { mode: 0o600 });
  const probe = await labShell(lab, 'a').run(`ssh -F ${lab.sshConfigPath} b true`);
  process.stdout.write(`\n${color('1', '[host a]$ ssh b true')}\n${probe.stderr.trim()} (exit ${probe.exitCode})\n`);
  if (probe.exitCode === 0) throw new Error('a can still ssh into b');

  say("On a's terminal: back up, share the bundle with ffl (the stand-in here, with ffl's real delays),");
  say('print the command for b and the pickup code - the code only on this terminal, never in a log.');
  process.stdout.write(`\n${color('1', '[host a]$ deploy migrate notes --pair')}\n`);
  const source = openTerminal(lab, 'a', 'deploy migrate notes --pair --wait 600', { echo: terminalEcho('a') });
  const [, link] = await source.waitFor(/Link:\s+(\S+)/);
  const [, code] = await source.waitFor(/Pickup code:\s+(\d{6})/);

  say("On b's terminal, its operator runs the printed command (with --replace: b runs notes already) and");
  say("types the code from a's screen at the prompt (no echo). b pulls the bundle and does every step itself.");
  process.stdout.write(`\n${color('1', `[host b]$ deploy receive notes --from ${link} --replace`)}\n`);
  const target = openTerminal(lab, 'b', `deploy receive notes --from ${link} --replace`, {
    identity: operatorKey,
    echo: terminalEcho('b'),
  });
  await target.waitFor(/Pickup code \(shown on the source's terminal\): /);
  target.type(`${code}\r`);
  const [targetExit, sourceExit] = [await target.done, await source.done];
  if (targetExit !== 0 || sourceExit !== 0)
    throw new Error(
      `pairing failed: deploy receive on b exited ${targetExit}, deploy migrate --pair on a ${sourceExit}`,
    );
  say("a exits once ffl reports the bundle delivered; b's report above is the verdict. Same app on b:");
  await checkOnB();
}

/** The demo, in order. Add steps here. */
const STEPS = [
  ['Start a two-host lab', startTheLab],
  ['Create, install and start the notes app on host a', createTheApp],
  ['Use the app: log in, add notes, upload a file', useTheApp],
  ['Back it up', backUp],
  ['Damage it', damageIt],
  ['Restore it', restoreIt],
  ['Check what came back', showTheResult],
  ['Plan the migration of notes from host a to host b', planTheMigration],
  ['Migrate notes to host b', migrateIt],
  ['Use the app on host b', checkOnB],
  ['Cut over: the writes made on a since the migration, then a stops for good', cutItOver],
  ['Pairing mode: migrate again to b, which a cannot SSH into', pairIt],
];

// ---- runner -----------------------------------------------------------------------------------------

let stopping;
let interrupted = false;
/** Stops the lab once, whatever happened; removes its dir on success, keeps it (logs) on failure. */
function tearDown(keepDir) {
  stopping ??= (async () => {
    if (!demo.lab) return;
    process.stdout.write(`\n${color('1', '== Tearing down the lab')}\n`);
    await demo.lab.down();
    if (keepDir) say(`lab logs kept in ${LAB_DIR} (the next run replaces them)`);
    else await rm(LAB_DIR, { recursive: true, force: true });
    say('lab stopped: every sshd, PostgreSQL and app process it started is gone');
  })();
  return stopping;
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    process.stdout.write(`\n${signal}: stopping the demo\n`);
    tearDown(true).finally(() => process.exit(130));
  });
}

const started = Date.now();
let failed = false;
try {
  for (const [index, [title, step]] of STEPS.entries()) {
    process.stdout.write(`\n${color('1;33', `== Step ${index + 1}/${STEPS.length}: ${title}`)}\n`);
    await step();
  }
} catch (error) {
  failed = true;
  if (!interrupted)
    process.stderr.write(
      `\n${color('31', `demo failed: ${error instanceof Error ? error.message : String(error)}`)}\n`,
    );
} finally {
  await tearDown(failed);
}
const seconds = ((Date.now() - started) / 1000).toFixed(1);
process.stdout.write(
  `\n${failed ? color('31', `demo FAILED after ${seconds} s`) : color('32', `demo done in ${seconds} s`)}\n`,
);
process.exitCode = failed ? 1 : 0;
