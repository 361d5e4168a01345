import { mkdir, readFile } from 'node:fs/promises';
import { LAB_TOOLS, SYSTEM_PATH } from './lab-paths.js';
import { runLabCommandChecked } from './lab-run.js';
import { probeConnect, spawnLabDaemon, waitForDaemon } from './lab-daemon.js';
import { LAB_ID_VARIABLE } from './lab-processes.js';
import type { LabPid } from './lab-types.js';

/** Creates a passphrase-less ed25519 key pair at path (and path.pub); resolves with the public key line. */
export async function generateSshKey(path: string, comment: string): Promise<string> {
  await runLabCommandChecked([LAB_TOOLS.sshKeygen, '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
  return (await readFile(`${path}.pub`, 'utf8')).trim();
}

/**
 * Starts `sshd -D -f <config>` detached and resolves with its pid and start time once it accepts TCP connections on
 * address:port. sshd insists on its privilege separation dir, which a fresh container may lack.
 */
export async function startLabSshd(
  configPath: string,
  host: { address: string; sshPort: number },
  logFile: string,
  labId: string,
): Promise<LabPid> {
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const daemon = spawnLabDaemon([LAB_TOOLS.sshd, '-D', '-f', configPath, '-E', logFile], {
    logFile,
    env: { PATH: SYSTEM_PATH, LANG: 'C.UTF-8', [LAB_ID_VARIABLE]: labId },
    cwd: '/',
  });
  await waitForDaemon(daemon, `sshd on ${host.address}:${host.sshPort}`, logFile, () =>
    probeConnect({ host: host.address, port: host.sshPort }),
  );
  return { pid: daemon.pid, startTime: daemon.startTime };
}
