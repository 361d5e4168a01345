import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { DependencyError, describeExit, type Host } from '@deploykit/core';
import { tailLines } from '@deploykit/host';

/**
 * Writes what `argv` prints (a database dump) to `file` (0600), through a temporary name renamed
 * into place only when the dump ended well: a file at `file` is always a whole dump.
 */
export async function dumpToFile(host: Host, argv: readonly string[], file: string): Promise<void> {
  const partial = `${file}.partial`;
  const dump = host.spawn({ argv, label: 'database dump' });
  const written = pipeline(dump.stdout, createWriteStream(partial, { mode: 0o600 }));
  const [result] = await Promise.all([dump.wait(), written.catch((error: unknown) => error)]);
  if (result.exitCode !== 0) {
    await rm(partial, { force: true });
    throw new DependencyError(
      'DUMP_FAILED',
      `${argv[0]} failed on ${host.name} (${describeExit(result)}): ${tailLines(result.stderr, 3)}`,
      { hint: 'Check the database server and the admin connection, then run the migration again.' },
    );
  }
  await written;
  await rename(partial, file);
}

/** Feeds a dump file into the client `argv` (the dump names its database). */
export async function restoreFromFile(host: Host, argv: readonly string[], file: string): Promise<void> {
  const client = host.spawn({ argv, stdin: 'pipe', label: 'database restore' });
  client.stdout.resume();
  client.stdin!.on('error', () => undefined);
  const fed = pipeline(createReadStream(file), client.stdin!).catch((error: unknown) => error);
  const result = await client.wait();
  await fed;
  if (result.exitCode !== 0) {
    throw new DependencyError(
      'RESTORE_FAILED',
      `${argv[0]} failed on ${host.name} restoring ${file} (${describeExit(result)}): ${tailLines(result.stderr, 3).replace(/\n/g, ' | ')}`,
      {
        hint: 'See the client error; fix its cause on this host, then run the migration again.',
      },
    );
  }
}
