import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { DependencyError } from '@deploykit/core';
import type { LabCommandResult } from './lab-types.js';

/** Options of runLabCommand. */
export interface RunLabCommandOptions {
  input?: string;
  env?: Record<string, string>;
  cwd?: string;
  uid?: number;
  gid?: number;
  timeoutMs?: number;
}

/**
 * Runs argv to completion and returns exit code and output; throws DependencyError only when the
 * program cannot be started or outlives the timeout (then it is killed).
 */
export function runLabCommand(argv: readonly string[], options: RunLabCommandOptions = {}): Promise<LabCommandResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new DependencyError('LAB_EMPTY_ARGV', 'runLabCommand got an empty argv');
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      ...(options.uid === undefined ? {} : { uid: options.uid }),
      ...(options.gid === undefined ? {} : { gid: options.gid }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new DependencyError('LAB_COMMAND_TIMEOUT', `${argv.join(' ')} did not finish within ${options.timeoutMs} ms`, {
          hint: 'The lab machine may be overloaded; see the host logs in the lab dir.',
          details: { stdout, stderr },
        }),
      );
    }, options.timeoutMs ?? 60_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(
        new DependencyError('LAB_COMMAND_NOT_STARTED', `cannot run ${file}: ${error.message}`, {
          hint: 'Run `bash scripts/setup-system.sh` as root to install the lab tools.',
          cause: error,
        }),
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ exitCode: code ?? (signal === null ? 1 : 128 + (constants.signals[signal] ?? 0)), stdout, stderr });
    });
    // A child that exits without reading its stdin must not crash us with EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

/** Runs argv and throws DependencyError (with the stderr tail) when it exits non-zero. */
export async function runLabCommandChecked(
  argv: readonly string[],
  options: RunLabCommandOptions = {},
): Promise<LabCommandResult> {
  const result = await runLabCommand(argv, options);
  if (result.exitCode !== 0) {
    throw new DependencyError(
      'LAB_COMMAND_FAILED',
      `${argv.join(' ')} exited ${result.exitCode}: ${result.stderr.trim().slice(-800)}`,
      {
        hint: 'See the message above; the lab tools may be missing (bash scripts/setup-system.sh) or misconfigured.',
        details: { ...result },
      },
    );
  }
  return result;
}
