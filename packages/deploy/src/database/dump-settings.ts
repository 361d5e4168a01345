import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DependencyError, describeExit, type Host } from '@deploykit/core';
import { tailLines } from '@deploykit/host';
import type { DatabaseSettingsSupport } from './engine.js';

/** A producer of a database dump on stdout (borg extract of the archived dump, or a live pg_dump). */
export interface DumpProducer {
  readonly argv: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

/** Pipes the producer's stdout into `consumer` and returns the consumer's stdout; the producer may be cut short. */
async function pipeInto(host: Host, producer: DumpProducer, consumer: readonly string[]): Promise<string> {
  const source = host.spawn({
    argv: producer.argv,
    ...(producer.env ? { env: producer.env } : {}),
    label: 'dump producer',
  });
  const sink = host.spawn({ argv: consumer, stdin: 'pipe', label: 'dump reader' });
  sink.stdin!.on('error', () => undefined);
  source.stdout.pipe(sink.stdin!);
  const chunks: Buffer[] = [];
  sink.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  const result = await sink.wait();
  // pg_restore -l stops after the table of contents: the rest of the dump is not needed.
  source.stdout.unpipe();
  source.kill('SIGTERM');
  const produced = await source.wait();
  if (result.exitCode !== 0) {
    const cause =
      produced.exitCode !== 0 && produced.signal === null
        ? ` (the producer ${String(producer.argv[0])} exited ${String(produced.exitCode)}: ${tailLines(produced.stderr, 2)})`
        : '';
    throw new DependencyError(
      'DUMP_SETTINGS_FAILED',
      `${consumer.join(' ')} failed on ${host.name} (${describeExit(result)}): ${tailLines(result.stderr, 3)}${cause}`,
      {
        hint: 'Check that the archive holds a custom-format dump (pg_dump -Fc) and that pg_restore is installed.',
      },
    );
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Reads the database-level settings of a dump (the SQL of its DATABASE, COMMENT, ACL and DATABASE
 * PROPERTIES entries) by reading its table of contents: two short passes over the dump's start.
 */
export async function readDumpSettings(
  host: Host,
  producer: DumpProducer,
  support: DatabaseSettingsSupport,
  tempDir: string,
): Promise<string> {
  const toc = await pipeInto(host, producer, support.tocArgv());
  const listFile = join(tempDir, 'database-settings.list');
  await writeFile(listFile, support.filterToc(toc), { mode: 0o600 });
  return pipeInto(host, producer, support.settingsArgv(listFile));
}
