import { accessSync, chmodSync, constants, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DependencyError } from '@deploykit/core';
import { buildControlPath } from './ssh-argv.js';

/** Longest path a Unix domain socket can have on Linux (sun_path is 108 bytes with its NUL). */
export const UNIX_SOCKET_PATH_MAX = 107;

/** ssh binds the ControlMaster socket at `<ControlPath>.<16 random chars>` first, then renames it. */
const SSH_SOCKET_TEMP_SUFFIX = '.XXXXXXXXXXXXXXXX'.length;

/** Characters mkdtemp appends to a prefix. */
const MKDTEMP_SUFFIX = 6;

/** True when ssh can create its ControlMaster socket in `dir` (the longest path it binds fits). */
export function controlDirFits(dir: string): boolean {
  return Buffer.byteLength(buildControlPath(dir)) + SSH_SOCKET_TEMP_SUFFIX <= UNIX_SOCKET_PATH_MAX;
}

/**
 * Where control dirs may go, in order: TMPDIR (os.tmpdir()), then /tmp, then /run/user/<uid>; only
 * existing directories, each once. TMPDIR can be any length (a CI job's or a per-user dir); the
 * others are short, so one of them almost always fits.
 */
export function controlDirParents(): string[] {
  const candidates = [
    tmpdir(),
    '/tmp',
    ...(typeof process.getuid === 'function' ? [`/run/user/${process.getuid()}`] : []),
  ];
  return [...new Set(candidates)].filter((dir) => {
    try {
      return statSync(dir).isDirectory();
    } catch {
      return false;
    }
  });
}

/**
 * Makes a fresh private (0700) directory for ssh ControlMaster sockets, named `<prefix>XXXXXX`, under
 * the first parent of controlDirParents() where the socket path fits and that is writable: a long
 * TMPDIR no longer makes every ssh fail ("unix_listener: path ... too long for Unix domain socket").
 * The caller removes it (SshHost.close does for its own).
 */
export function makeControlDir(prefix = 'dk-cm-'): string {
  const tried: string[] = [];
  for (const parent of controlDirParents()) {
    tried.push(parent);
    if (!controlDirFits(join(parent, `${prefix}${'X'.repeat(MKDTEMP_SUFFIX)}`))) continue;
    try {
      accessSync(parent, constants.W_OK);
      const dir = mkdtempSync(join(parent, prefix));
      chmodSync(dir, 0o700);
      return dir;
    } catch {
      // Not writable here: try the next one.
    }
  }
  throw new DependencyError(
    'SSH_CONTROL_DIR',
    `no directory for the ssh control socket: a socket path may have at most ${UNIX_SOCKET_PATH_MAX} bytes, and none of ${tried.join(', ')} is short enough and writable`,
    {
      hint: 'Set TMPDIR to a short writable directory (for example /tmp).',
    },
  );
}
