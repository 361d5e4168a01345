import { readFileSync } from 'node:fs';
import { isSecret, quoteArgv, quoteWord, type Arg, type CommandSpec } from '@deploykit/core';

/** How to reach a host with the OpenSSH client. */
export interface SshTarget {
  /** Destination for ssh: an ssh_config alias or user@host. */
  readonly destination: string;
  /** ssh_config file (-F). */
  readonly sshConfig?: string;
  /** Directory for ControlMaster sockets (short path: socket paths are limited to ~100 bytes). */
  readonly controlDir?: string;
  /** Seconds to wait for the TCP connection. */
  readonly connectTimeoutSeconds?: number;
  /**
   * The `Ciphers` list ssh offers, in order of preference (the server takes the first it supports);
   * null leaves it to ssh and its config. Default: `preferredSshCiphers()`.
   */
  readonly ciphers?: string | null;
}

/** OpenSSH's default cipher set (9.x) with AES-GCM first: every entry is in every OpenSSH since 6.5. */
export const AES_FIRST_CIPHERS =
  'aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr';

let cpuHasAes: boolean | undefined;

/** Whether this CPU has AES instructions (x86 `aes` flag, arm64 `aes` feature), from /proc/cpuinfo; false when unknown. */
function localCpuHasAes(): boolean {
  if (cpuHasAes === undefined) {
    try {
      cpuHasAes = /^(flags|Features)\s*:.*\baes\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
    } catch {
      cpuHasAes = false;
    }
  }
  return cpuHasAes;
}

/**
 * The cipher list deploy's own ssh sessions offer (docs/decisions/0012-ssh-cipher-and-data-path.md):
 * `DEPLOY_SSH_CIPHERS` when set (empty: ssh's own choice), else AES-GCM first when this CPU has AES
 * instructions (AES-GCM then costs a fraction of ChaCha20-Poly1305, ssh's default), else ssh's own choice.
 * A server without AES-GCM picks the next entry it supports, so the list never fails a connection ssh's
 * default would make.
 */
export function preferredSshCiphers(env: NodeJS.ProcessEnv = process.env): string | null {
  const chosen = env.DEPLOY_SSH_CIPHERS;
  if (chosen !== undefined) return chosen.trim() === '' ? null : chosen.trim();
  return localCpuHasAes() ? AES_FIRST_CIPHERS : null;
}

/** First stderr line of every remote command: lets us signal the remote process group later. */
export const REMOTE_PID_MARKER = '@@deploykit-pid ';

/**
 * The ControlMaster socket of a control dir. One dir serves one destination, so a one-letter name
 * does (not `%C`, 40 hex characters): ssh adds a 17-character suffix while it creates the socket,
 * and a Unix socket path may not exceed 107 bytes, so every byte of a long TMPDIR counts.
 */
export function buildControlPath(controlDir: string): string {
  return `${controlDir}/m`;
}

/** Builds the ssh client argv (without the remote command) for a target. */
export function buildSshBaseArgv(target: SshTarget): string[] {
  const argv = ['ssh'];
  if (target.sshConfig) argv.push('-F', target.sshConfig);
  argv.push('-o', 'BatchMode=yes', '-o', `ConnectTimeout=${target.connectTimeoutSeconds ?? 10}`);
  argv.push('-o', 'ServerAliveInterval=5', '-o', 'ServerAliveCountMax=3');
  const ciphers = target.ciphers === undefined ? preferredSshCiphers() : target.ciphers;
  if (ciphers !== null) argv.push('-o', `Ciphers=${ciphers}`);
  if (target.controlDir) {
    argv.push(
      '-o',
      'ControlMaster=auto',
      '-o',
      `ControlPath=${buildControlPath(target.controlDir)}`,
      '-o',
      'ControlPersist=60',
    );
  }
  argv.push('-T', target.destination);
  return argv;
}

/** Splits an env map into plain values (safe in the remote command line) and secret values (sent on stdin). */
export function splitEnv(env: CommandSpec['env']): { plain: [string, string][]; secret: [string, string][] } {
  const plain: [string, string][] = [];
  const secret: [string, string][] = [];
  for (const [key, value] of Object.entries(env ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new TypeError(`invalid environment variable name: ${key}`);
    if (isSecret(value)) secret.push([key, value.reveal()]);
    else plain.push([key, value]);
  }
  return { plain, secret };
}

/**
 * Builds the remote shell command for a spec. The remote login shell runs it; sshd made that shell a
 * session and process-group leader, and `exec` keeps its pid, so the printed pid is the remote
 * process group id. Secret env values are read from the first stdin lines (never in argv), then the
 * command gets the rest of stdin. Secret argv elements are refused: use env or stdin instead.
 */
export function buildRemoteCommand(spec: CommandSpec): string {
  for (const arg of spec.argv) {
    if (isSecret(arg)) throw new TypeError('a secret cannot travel in a remote argv; pass it by env or stdin');
  }
  const { plain, secret } = splitEnv(spec.env);
  const parts: string[] = [`echo "${REMOTE_PID_MARKER}$$" >&2`];
  for (const [key] of secret) parts.push(`IFS= read -r ${key} && export ${key}`);
  if (spec.cwd) parts.push(`cd ${quoteWord(spec.cwd)}`);
  const envPrefix = plain.length > 0 ? `env ${plain.map(([k, v]) => quoteWord(`${k}=${v}`)).join(' ')} ` : '';
  parts.push(`exec ${envPrefix}${quoteArgv(spec.argv as readonly Arg[])}`);
  return parts.join(' && ');
}

/** The stdin preamble carrying secret env values, one per line, in the order buildRemoteCommand reads them. */
export function buildSecretPreamble(spec: CommandSpec): string {
  const { secret } = splitEnv(spec.env);
  for (const [key, value] of secret) {
    if (value.includes('\n')) throw new TypeError(`secret environment value ${key} must not contain a newline`);
  }
  return secret.map(([, value]) => `${value}\n`).join('');
}
