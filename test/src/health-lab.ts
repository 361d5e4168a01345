// Shared by the health, verify and update end-to-end tests: a lab whose hosts run the sample app.
import assert from 'node:assert/strict';
import { quoteArgv } from '@deploykit/core';
import { startLab, type Lab, type LabCommandResult } from '@deploykit/testlab';

/** Runs `deploy <args>` on a lab host (its own PATH, apps root, state dir and PostgreSQL). */
export function runDeployOnHost(
  lab: Lab,
  host: string,
  args: readonly string[],
  input?: string,
): Promise<LabCommandResult> {
  return lab.ssh(host, quoteArgv(['deploy', ...args]), input === undefined ? {} : { input });
}

/** Runs `deploy <args> --json` on a lab host and parses stdout. */
export async function runDeployJsonOnHost<T = Record<string, unknown>>(
  lab: Lab,
  host: string,
  args: readonly string[],
  input?: string,
): Promise<{ exitCode: number; json: T; stderr: string }> {
  const result = await runDeployOnHost(lab, host, [...args, '--json', '--quiet'], input);
  let json: T;
  try {
    json = JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(
      `deploy ${args.join(' ')} on ${host} printed no JSON (exit ${result.exitCode}):\n${result.stdout}\n${result.stderr}`,
    );
  }
  return { exitCode: result.exitCode, json, stderr: result.stderr };
}

/** Runs a shell command on a lab host and fails the test when it fails. */
export async function shOk(lab: Lab, host: string, command: string): Promise<string> {
  const result = await lab.ssh(host, command);
  assert.equal(result.exitCode, 0, `${command} on ${host}: ${result.stderr}`);
  return result.stdout;
}

/** The sample app's upload files used by the tests (name -> content). */
export const UPLOADS: Readonly<Record<string, string>> = {
  'a-first.txt': 'first upload\n',
  'b-photo.json': '{"photo": 1}\n',
  'c-report.txt': 'x'.repeat(70_000),
  'd-notes.txt': 'fourth\n',
};

/** Starts a lab of `hosts` hosts and, on each, init + install + start the notes app with the UPLOADS in its volume. */
export async function startNotesLab(hosts: number): Promise<Lab> {
  const lab = await startLab({ hosts });
  try {
    await Promise.all(
      lab.hosts.map(async (host) => {
        // deploy init validates before bin/install has generated the secrets and exits 3 for
        // that alone; anything else is a real failure.
        const init = await runDeployOnHost(lab, host.name, ['init', 'notes']);
        const initErrors = init.stdout.split('\n').filter((line) => line.trim().startsWith('error:'));
        assert.ok(
          init.exitCode === 0 ||
            (init.exitCode === 3 && initErrors.every((line) => /secret file \S+ does not exist/.test(line))),
          `deploy init: ${init.stdout}${init.stderr}`,
        );
        for (const phase of [
          ['install', 'notes'],
          ['start', 'notes'],
        ]) {
          const result = await runDeployOnHost(lab, host.name, phase);
          assert.equal(
            result.exitCode,
            0,
            `deploy ${phase.join(' ')} on ${host.name}: ${result.stdout}\n${result.stderr}`,
          );
        }
        const uploads = `${host.appsRoot}/notes/data/uploads`;
        for (const [name, content] of Object.entries(UPLOADS))
          await lab.ssh(host.name, `cat > ${quoteArgv([`${uploads}/${name}`])}`, { input: content });
        // A dotfile (an upload in flight) must never be sampled.
        await shOk(lab, host.name, `echo partial > ${quoteArgv([`${uploads}/.upload-123`])}`);
      }),
    );
    return lab;
  } catch (error) {
    await lab.down();
    throw error;
  }
}

/** One check's result out of a `deploy health --json` output. */
export interface CheckJson {
  name: string;
  type: string;
  status: 'ok' | 'failed' | 'skipped';
  reason?: string;
  facts?: Record<string, unknown>;
}

/** Picks one check by name from a health JSON; fails the test when absent. */
export function pickCheck(json: { checks: CheckJson[] }, name: string): CheckJson {
  const found = json.checks.find((check) => check.name === name);
  assert.ok(found, `no check ${name} in ${JSON.stringify(json.checks.map((c) => c.name))}`);
  return found;
}
