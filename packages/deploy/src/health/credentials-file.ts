import { readFile } from 'node:fs/promises';

/** A login check's credentials; the password never leaves this object in results or logs. */
export interface LoginCredentials {
  readonly username: string;
  readonly password: string;
}

/** Parses KEY=value lines (comments, `export`, quotes allowed) into a map with lower-case keys. */
export function parseKeyValueLines(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!match) continue;
    values.set(match[1]!.toLowerCase(), match[2]!.replace(/^(['"])(.*)\1$/, '$2'));
  }
  return values;
}

/**
 * Reads a credentials file: `username=`/`password=` (the sample app's keys), or the upper-case
 * USERNAME=/PASSWORD= (and user=/USER=) many apps use. Throws an Error naming the missing key.
 */
export async function readCredentialsFile(path: string): Promise<LoginCredentials> {
  const values = parseKeyValueLines(await readFile(path, 'utf8'));
  const username = values.get('username') ?? values.get('user');
  const password = values.get('password');
  if (!username) throw new Error(`no username= line in ${path}`);
  if (!password) throw new Error(`no password= line in ${path}`);
  return { username, password };
}
