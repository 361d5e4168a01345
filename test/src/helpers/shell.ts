import { spawn } from 'node:child_process';
import type { Lab, LabCommandResult } from '@deploykit/testlab';

/** Somewhere to run a bash command line: a lab host over ssh, or this machine. */
export interface Shell {
  /** Where the commands run, for messages (`host a`, `local`). */
  readonly where: string;
  /** Runs `command` with bash; never rejects for a non-zero exit. */
  run(command: string, input?: string): Promise<LabCommandResult>;
}

/** A Shell on lab host `host` (ssh, with the host's environment: PGHOST, DEPLOY_*, PATH with deploy). */
export function labShell(lab: Lab, host: string): Shell {
  lab.host(host); // throws for an unknown host name, before any command runs
  return {
    where: `host ${host}`,
    run: (command, input) => lab.ssh(host, command, input === undefined ? undefined : { input }),
  };
}

/** A Shell on this machine (bash -c). */
export const localShell: Shell = {
  where: 'local',
  run: (command, input) =>
    new Promise((resolve, reject) => {
      const child = spawn('bash', ['-c', command], { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
      child.on('error', reject);
      child.on('close', (code) =>
        resolve({
          exitCode: code ?? 1,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
        }),
      );
      // A command that never reads its stdin may exit first: that EPIPE is not the test's failure.
      child.stdin.on('error', () => undefined);
      child.stdin.end(input ?? '');
    }),
};

/** Runs `command` and returns its stdout; throws with the stderr when it exits non-zero. */
export async function runOrThrow(shell: Shell, command: string, input?: string): Promise<string> {
  const result = await shell.run(command, input);
  if (result.exitCode !== 0) {
    throw new Error(`command failed on ${shell.where} (exit ${result.exitCode}): ${command}\n${result.stderr.trim()}`);
  }
  return result.stdout;
}
