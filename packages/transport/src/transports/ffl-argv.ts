import type { Arg, Secret } from '@deploykit/core';

/** Inputs of the ffl share (sender) command. */
export interface FflShareArgvOptions {
  readonly binary: string;
  readonly pickupCode: Secret;
  readonly hookFile: string;
  readonly jsonFile: string;
  readonly name: string;
}

/**
 * Builds the ffl sender argv of reference/ffl.md §6: stdin, no disk cache, one download, E2EE,
 * our pickup code, file hook + --json, foreground, no clipboard; no --timeout (absolute, it would
 * kill a long transfer) - our stall watchdog sends SIGINT instead.
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
    '--pickup-code',
    options.pickupCode,
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
