import { UsageError } from '@deploykit/core';
import { LAB_TOOLS } from './lab-paths.js';
import { runLabCommand } from './lab-run.js';
import { stopRecordedLab } from './lab-stop.js';
import type { Lab, LabCommandResult, LabRecord } from './lab-types.js';

/** Wraps a lab record in the Lab API: host lookup, ssh, and an idempotent down(). */
export function createLabHandle(record: LabRecord): Lab {
  let stopping: Promise<void> | undefined;
  const hosts = record.hosts.map(({ pids: _pids, ...host }) => host);
  const lab: Lab = {
    id: record.id,
    dir: record.dir,
    hosts,
    sshConfigPath: record.sshConfigPath,
    deployConfigPath: record.deployConfigPath,
    host(name: string) {
      const found = hosts.find((host) => host.name === name);
      if (found === undefined) {
        throw new UsageError('LAB_UNKNOWN_HOST', `lab ${record.id} has no host ${name}`, {
          hint: `Known hosts: ${hosts.map((host) => host.name).join(', ')}.`,
        });
      }
      return found;
    },
    ssh(
      hostName: string,
      command: string,
      opts: { input?: string; identity?: string } = {},
    ): Promise<LabCommandResult> {
      lab.host(hostName);
      return runLabCommand(
        [
          LAB_TOOLS.ssh,
          '-F',
          record.sshConfigPath,
          ...(opts.identity === undefined ? [] : ['-i', opts.identity]),
          hostName,
          '--',
          command,
        ],
        {
          ...(opts.input === undefined ? {} : { input: opts.input }),
          timeoutMs: 120_000,
        },
      );
    },
    down() {
      // Several callers (an explicit down() and `await using`) share one teardown.
      stopping ??= stopRecordedLab(record);
      return stopping;
    },
    [Symbol.asyncDispose]() {
      return lab.down();
    },
  };
  return lab;
}
