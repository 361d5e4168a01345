import { readLabRecord } from './lab-record.js';
import { findLabProcesses, isSameProcess } from './lab-processes.js';
import type { LabHostPids, LabPid, LabProcessStatus, LabStatus } from './lab-types.js';

/** Reads <dir>/lab.json and checks which recorded processes are alive; `absent` when there is no lab. */
export async function labStatus(dir: string): Promise<LabStatus> {
  const record = await readLabRecord(dir);
  if (record === undefined) return { state: 'absent', dir };
  const processes: LabProcessStatus[] = [];
  for (const host of record.hosts) {
    for (const [role, ref] of Object.entries(host.pids) as [keyof LabHostPids, LabPid | undefined][]) {
      if (ref !== undefined) processes.push({ host: host.name, role, ...ref, alive: await isSameProcess(ref) });
    }
  }
  const recorded = new Set(processes.map((entry) => entry.pid));
  const otherPids = (await findLabProcesses(record.id, processes)).filter((pid) => !recorded.has(pid));
  const alive = processes.filter((entry) => entry.alive).length;
  const state = alive === 0 ? 'stopped' : alive === processes.length ? 'running' : 'degraded';
  return { state, dir, record, processes, otherPids };
}
