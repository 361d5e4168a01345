import type { Arg } from '@deploykit/core';

/** Inputs of the ffl share (sender) command. */
export interface FflShareArgvOptions {
  readonly binary: string;
  readonly hookFile: string;
  readonly jsonFile: string;
  readonly name: string;
}

/**
 * Builds the ffl sender argv of reference/ffl.md §6: stdin, no disk cache, one download, E2EE,
 * pickup auth with a code ffl generates itself (read back from the hook's /share/link/create, so it
 * is never in this process's argv: ffl has no environment variable for it), file hook + --json,
 * foreground, no clipboard; no --timeout (absolute, it would kill a long transfer) - our stall
 * watchdog sends SIGINT instead.
 */
export function buildFflShareArgv(options: FflShareArgvOptions): Arg[] {
  return [
    options.binary,
    '-',
    '--stdin-cache',
    'off',
    '--max-downloads',
    '1',
    '--e2ee',
    '--recipient-auth',
    'pickup',
    '--hook',
    options.hookFile,
    '--json',
    options.jsonFile,
    '--foreground',
    '--disable-clipboard',
    '--name',
    options.name,
  ];
}

/** The environment ffl runs with: its own storage dir (no shared tunnels.json/.env) and English text. */
export function buildFflEnv(storageDir: string, extra: Readonly<Record<string, string>> = {}): Record<string, string> {
  return { ...extra, FFL_STORAGE_LOCATION: storageDir, FFL_LANGUAGE: 'en' };
}
