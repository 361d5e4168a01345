// lab-apt-get: the package manager of lab hosts (DEPLOY_SETUP_APT_GET), for `deploy setup --install`.
// All lab hosts are one machine, so it never installs anything: it records each call in
// $DEPLOY_LAB_APT_LOG (one JSON line: argv, time) and, for `install`, checks with the real dpkg that
// each package is installed on this machine and links the package's programs (from `dpkg -L`) into
// the host's own system bin folder ($DEPLOY_LAB_SYSBIN, where the lab hid them), so they appear on
// that host's PATH exactly as an apt-get install would make them appear. See docs/lab.md.
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, statSync, symlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

const BIN_DIRS = new Set(['/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/local/bin', '/usr/local/sbin']);

function main(argv: readonly string[]): number {
  const log = process.env.DEPLOY_LAB_APT_LOG;
  if (log) appendFileSync(log, `${JSON.stringify({ argv, time: new Date().toISOString() })}\n`);
  const command = argv.find((arg) => !arg.startsWith('-'));
  if (command !== 'install') return 0; // update and the like: nothing to do on a lab host
  const packages = argv.slice(argv.indexOf('install') + 1).filter((arg) => !arg.startsWith('-'));
  const sysbin = process.env.DEPLOY_LAB_SYSBIN;
  for (const name of packages) {
    let files: string[];
    try {
      files = execFileSync('dpkg-query', ['-L', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split(
        '\n',
      );
    } catch {
      process.stderr.write(
        `E: Unable to locate package ${name} (lab-apt-get: it is not installed on this machine, and the lab installs nothing)\n`,
      );
      return 100;
    }
    const linked: string[] = [];
    for (const file of files) {
      if (!BIN_DIRS.has(dirname(file)) || !existsSync(file) || statSync(file).isDirectory()) continue;
      if (sysbin === undefined || existsSync(join(sysbin, basename(file)))) continue;
      symlinkSync(file, join(sysbin, basename(file)));
      linked.push(basename(file));
    }
    process.stdout.write(
      `lab-apt-get: ${name} is installed on this machine (dpkg)${linked.length > 0 ? `; linked ${linked.join(', ')} into ${sysbin}` : ''}\n`,
    );
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
