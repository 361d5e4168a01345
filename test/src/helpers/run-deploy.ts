import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root (test/dist/helpers -> ../../..). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The built `deploy` CLI entry (run `npx tsc -b` first). */
export const DEPLOY_BIN = fileURLToPath(new URL('../../../packages/deploy/bin/deploy.js', import.meta.url));

/** What one `deploy` run gave back. */
export interface DeployRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Options of runDeploy. */
export interface RunDeployOptions {
  /** Extra environment; DEPLOY_* variables of the calling process are never inherited (tests must not see the caller's config). */
  env?: Record<string, string>;
  cwd?: string;
  /** Written to stdin, which is then closed. */
  input?: string;
  /** Also copy stdout/stderr to this process's streams as they arrive (the demo streams every command). */
  echo?: boolean;
  /** Kill the run (SIGTERM to the child) after this many ms; default 120000. */
  timeoutMs?: number;
}

/** Builds the environment for a deploy run: the caller's, minus DEPLOY_*, plus `extra`. */
export function buildDeployEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('DEPLOY_')) env[key] = value;
  return { ...env, ...extra };
}

/** Runs the built `deploy` CLI with `args`; resolves with its exit code and output, never rejects on a non-zero exit. */
export function runDeploy(args: readonly string[], options: RunDeployOptions = {}): Promise<DeployRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DEPLOY_BIN, ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: buildDeployEnv(options.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => {
      stdout.push(chunk);
      if (options.echo) process.stdout.write(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr.push(chunk);
      if (options.echo) process.stderr.write(chunk);
    });
    const timer = setTimeout(() => child.kill('SIGTERM'), options.timeoutMs ?? 120_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        // A killed run reports 128 + signal number like a shell would, so it never looks like success.
        exitCode: code ?? 128 + (signal === 'SIGKILL' ? 9 : 15),
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      });
    });
    child.stdin.on('error', () => undefined); // deploy may exit without reading stdin (EPIPE)
    child.stdin.end(options.input ?? '');
  });
}
