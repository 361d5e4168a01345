import { rm } from 'node:fs/promises';
import { DependencyError } from '@deploykit/core';
import { readLabRecord } from './lab-record.js';
import { stopLabProcesses, type LabStopTarget } from './lab-processes.js';
import type { LabHostPids, LabPid, LabRecord } from './lab-types.js';

/** The signal that stops each lab server cleanly: SIGINT is PostgreSQL's fast shutdown (pg_ctl stop -m fast). */
const STOP_SIGNALS: Record<keyof LabHostPids, NodeJS.Signals> = {
  sshd: 'SIGTERM',
  postgres: 'SIGINT',
  mariadb: 'SIGTERM',
};

/** The recorded server pids of a lab with the signal that stops each cleanly. */
export function listLabStopTargets(record: LabRecord): LabStopTarget[] {
  const targets: LabStopTarget[] = [];
  for (const host of record.hosts) {
    for (const [role, ref] of Object.entries(host.pids) as [keyof LabHostPids, LabPid | undefined][]) {
      if (ref !== undefined) targets.push({ ...ref, signal: STOP_SIGNALS[role] });
    }
  }
  return targets;
}

/**
 * Stops the lab recorded in <dir>/lab.json: its servers, then every process carrying its lab id, and
 * removes the dir when the lab was started with removeDir. Idempotent: a missing dir or record is a
 * no-op. Throws DependencyError when a process survives SIGKILL (the dir is kept then).
 */
export async function stopLab(dir: string): Promise<void> {
  const record = await readLabRecord(dir);
  if (record === undefined) return;
  await stopRecordedLab(record);
}

/** stopLab for a record already in hand (also used to clean up a half-started lab). */
export async function stopRecordedLab(record: LabRecord): Promise<void> {
  const survivors = await stopLabProcesses(record.id, listLabStopTargets(record));
  if (survivors.length > 0) {
    throw new DependencyError(
      'LAB_STOP_FAILED',
      `lab ${record.id}: processes ${survivors.map((ref) => ref.pid).join(', ')} survived SIGKILL`,
      {
        hint: `Look at them with \`ps -o pid,stat,cmd -p ${survivors.map((ref) => ref.pid).join(',')}\` (state D = stuck in the kernel), then run down again.`,
      },
    );
  }
  if (record.removeDir) await rm(record.dir, { recursive: true, force: true });
}
