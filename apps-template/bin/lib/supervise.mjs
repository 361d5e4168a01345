// A small supervisor for bin/start: runs one command, restarts it when it crashes (with backoff,
// giving up after too many crashes in a minute), and passes TERM/INT on to it. bin/start runs it
// under setsid, so it leads its own process group and bin/stop can signal the whole group.
//
// usage: node supervise.mjs --pid-file FILE --child-pid-file FILE -- COMMAND [ARGS...]
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';

const args = process.argv.slice(2);
const separator = args.indexOf('--');
const options = new Map();
for (let index = 0; index < separator; index += 2) options.set(args[index], args[index + 1]);
const command = args.slice(separator + 1);
const pidFile = options.get('--pid-file');
const childPidFile = options.get('--child-pid-file');
if (separator < 0 || command.length === 0 || !pidFile || !childPidFile) {
  process.stderr.write('usage: supervise.mjs --pid-file FILE --child-pid-file FILE -- COMMAND [ARGS...]\n');
  process.exit(64);
}

const MAX_CRASHES_PER_MINUTE = 5;
// Exit 78 (EX_CONFIG) means the app cannot start with this configuration: restarting cannot help.
const NO_RESTART_CODES = new Set([78]);
const say = (message) => process.stdout.write(`${new Date().toISOString()} supervisor: ${message}\n`);

let child;
let stopping = false;
const crashes = [];

writeFileSync(pidFile, `${process.pid}\n`);

function startChild() {
  child = spawn(command[0], command.slice(1), { stdio: 'inherit' });
  writeFileSync(childPidFile, `${child.pid}\n`);
  say(`started ${command.join(' ')} as pid ${child.pid}`);
  child.on('error', (error) => {
    say(`cannot start ${command[0]}: ${error.message}`);
    finish(127);
  });
  child.on('exit', (code, signal) => {
    rmSync(childPidFile, { force: true });
    if (stopping) return finish(0);
    say(`child exited with ${signal ?? `code ${code}`}`);
    if (code !== null && NO_RESTART_CODES.has(code)) return finish(code);
    const now = Date.now();
    crashes.push(now);
    while (crashes.length > 0 && now - crashes[0] > 60_000) crashes.shift();
    if (crashes.length > MAX_CRASHES_PER_MINUTE) {
      say(`giving up: ${crashes.length} crashes within a minute`);
      return finish(1);
    }
    const delay = Math.min(250 * 2 ** (crashes.length - 1), 5000);
    say(`restarting in ${delay} ms`);
    setTimeout(() => (stopping ? finish(0) : startChild()), delay);
  });
}

function finish(code) {
  rmSync(pidFile, { force: true });
  rmSync(childPidFile, { force: true });
  process.exit(code);
}

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    stopping = true;
    say(`${signal}: stopping child`);
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    else finish(0);
  });
}
process.on('SIGHUP', () => child?.kill('SIGHUP'));

startChild();
