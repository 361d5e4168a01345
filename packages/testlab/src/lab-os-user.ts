import { readFileSync } from 'node:fs';
import { DependencyError } from '@deploykit/core';

/** uid and gid of a system user. */
export interface OsUser {
  uid: number;
  gid: number;
}

/** Looks `name` up in /etc/passwd; throws DependencyError when it does not exist. */
export function lookupOsUser(name: string): OsUser {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name && fields[2] !== undefined && fields[3] !== undefined)
      return { uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  throw new DependencyError('LAB_NO_OS_USER', `the system user ${name} does not exist`, {
    hint: 'It comes with the Debian package; run `bash scripts/setup-system.sh` as root.',
  });
}
