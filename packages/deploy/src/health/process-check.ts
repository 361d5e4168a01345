import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { isAbsolute, join } from 'node:path';
import type { ProcessCheck } from '@deploykit/core';
import { isProcessRunning } from '@deploykit/host';
import { findRunFile } from './app-run-files.js';
import { failCheck, passCheck, type CheckRunner } from './check-types.js';

/** Resolves when a TCP connect to host:port succeeds; rejects with the socket error or a timeout. */
export function probeTcp(host: string, port: number, timeoutMs = 3000): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.end();
      resolve();
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/**
 * Process check: the pid in the pid file (check.pid_file relative to the app folder, else run/app.pid
 * in the app's state dir) is a live, non-zombie process, and the app's port accepts a TCP connect.
 */
export const runProcessCheck: CheckRunner<ProcessCheck> = async (check, environment) => {
  const started = Date.now();
  const { app, hostContext } = environment;
  const pidFile = check.pid_file
    ? isAbsolute(check.pid_file)
      ? check.pid_file
      : join(app.dir, check.pid_file)
    : await findRunFile(app, hostContext, 'app.pid');
  if (pidFile === undefined)
    return failCheck(
      check,
      started,
      'a pid file (run/app.pid in the app state dir)',
      `none: the app is not running (start it with \`deploy start ${app.name}\`)`,
    );
  let text: string;
  try {
    text = await readFile(pidFile, 'utf8');
  } catch (error) {
    return failCheck(
      check,
      started,
      `pid file ${pidFile}`,
      `${(error as NodeJS.ErrnoException).code ?? String(error)}: the app is not running`,
    );
  }
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid < 1)
    return failCheck(check, started, `a pid in ${pidFile}`, JSON.stringify(text.slice(0, 40)));
  if (!isProcessRunning(pid))
    return failCheck(check, started, `process ${pid} (from ${pidFile}) running`, 'no such process (or a zombie)');
  const url = new URL(environment.baseUrl);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const address = url.hostname.replace(/^\[(.*)\]$/, '$1');
  try {
    await probeTcp(address, port);
  } catch (error) {
    return failCheck(
      check,
      started,
      `port ${address}:${port} accepting connections`,
      (error as NodeJS.ErrnoException).code ?? (error as Error).message,
      '',
      { pid },
    );
  }
  return passCheck(check, started, { pid, port }, `pid ${pid} alive, ${address}:${port} answers`);
};
