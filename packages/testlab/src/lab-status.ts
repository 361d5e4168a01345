import { readLabRecord } from './lab-record.js';
import { findLabProcesses, isLabProcess } from './lab-processes.js';
import type { LabHostPids, LabProcessStatus, LabStatus } from './lab-types.js';

/** Reads <dir>/lab.json and checks which recorded processes are alive; `absent` when there is no lab. */
export async function labStatus(dir: string): Promise<LabStatus> {
  const record = await readLabRecord(dir);
  if (record === undefined) return { state: 'absent', dir };
  const processes: LabProcessStatus[] = [];
  for (const host of record.hosts) {
    for (const [role, pid] of Object.entries(host.pids) as [keyof LabHostPids, number | undefined][]) {
      if (pid !== undefined) processes.push({ host: host.name, role, pid, alive: await isLabProcess(pid, record.id) });
    }
  }
  const recorded = new Set(processes.map((entry) => entry.pid));
  const otherPids = (await findLabProcesses(record.id)).filter((pid) => !recorded.has(pid));
  const alive = processes.filter((entry) => entry.alive).length;
  const state = alive === 0 ? 'stopped' : alive === processes.length ? 'running' : 'degraded';
  return { state, dir, record, processes, otherPids };
}
