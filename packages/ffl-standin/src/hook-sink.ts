import { closeSync, openSync, writeSync } from 'node:fs';
import { request as requestHttp } from 'node:http';
import { request as requestHttps } from 'node:https';
import { formatLocalIso } from './format-time.js';
import { dumpPythonJson } from './python-json.js';

/** Where ffl's events go (`--hook`, reference §3.1). */
export interface HookSink {
  /** Delivers one event; resolves once it was written or given up on (ffl posts synchronously). */
  emit(event: string, data: Record<string, unknown>): Promise<void>;
  /** Sends `/hook/server/endpoints/register` until one call succeeds (HTTP hooks only; a no-op for files). */
  registerEndpoints(data: Record<string, unknown>): Promise<void>;
  /** Releases the file handle. */
  close(): void;
}

/** Builds the `{"event","timestamp","data"}` envelope in ffl's key order. */
export function formatHookEnvelope(event: string, data: Record<string, unknown>): string {
  return dumpPythonJson({ event, timestamp: formatLocalIso(), data });
}

/** A sink that drops everything (no `--hook`). */
export function createNullHookSink(): HookSink {
  return { emit: async () => undefined, registerEndpoints: async () => undefined, close: () => undefined };
}

/** Opens `path` in append mode like ffl; throws the fs error (ENOENT for a missing directory). */
export function createFileHookSink(path: string): HookSink {
  let fd: number | undefined = openSync(path, 'a');
  return {
    emit: async (event, data) => {
      if (fd !== undefined) writeSync(fd, `${formatHookEnvelope(event, data)}\n`);
    },
    registerEndpoints: async () => undefined,
    close: () => {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}

interface PostResult {
  readonly status: number;
  readonly body: string;
}

function postJson(url: URL, body: string, timeoutMs: number): Promise<PostResult> {
  const headers: Record<string, string> = {
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(body)),
  };
  if (url.username !== '' || url.password !== '') {
    const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    headers['Authorization'] = `Basic ${Buffer.from(credentials).toString('base64')}`;
  }
  const send = url.protocol === 'https:' ? requestHttps : requestHttp;
  return new Promise((resolve, reject) => {
    const request = send(
      {
        hostname: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        method: 'POST',
        headers,
        timeout: timeoutMs,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new Error('hook request timed out')));
    request.on('error', reject);
    request.end(body);
  });
}

/** Tuning of the HTTP forwarder (`HOOK_FORWARDER_*` in the real tool). */
export interface HttpHookOptions {
  readonly failureThreshold: number;
  readonly cooldownMs: number;
}

/**
 * POSTs each event; non-200 is a failure, 401 disables the hook, and after `failureThreshold`
 * consecutive failures non-registration events are dropped for `cooldownMs` (reference §3.1).
 */
export function createHttpHookSink(rawUrl: string, options: HttpHookOptions): HookSink {
  const url = new URL(rawUrl);
  let queue: Promise<unknown> = Promise.resolve();
  let failures = 0;
  let cooldownUntil = 0;
  let disabled = false;
  let registered = false;

  const deliver = async (event: string, data: Record<string, unknown>, registration: boolean): Promise<boolean> => {
    if (disabled) return false;
    if (!registration && Date.now() < cooldownUntil) return false;
    try {
      const result = await postJson(url, formatHookEnvelope(event, data), registration ? 5000 : 10000);
      if (result.status === 200) {
        failures = 0;
        if (registration) JSON.parse(result.body);
        return true;
      }
      if (result.status === 401) disabled = true;
    } catch {
      // Network errors and non-JSON registration replies count as failures, as in HookForwarder.
    }
    failures += 1;
    if (failures >= options.failureThreshold) {
      cooldownUntil = Date.now() + options.cooldownMs;
      failures = 0;
    }
    return false;
  };

  const enqueue = (task: () => Promise<unknown>): Promise<void> => {
    const next = queue.then(task, task);
    queue = next;
    return next.then(
      () => undefined,
      () => undefined,
    );
  };

  return {
    emit: (event, data) => enqueue(() => deliver(event, data, false)),
    registerEndpoints: (data) =>
      enqueue(async () => {
        if (registered) return;
        registered = await deliver('/hook/server/endpoints/register', data, true);
      }),
    close: () => undefined,
  };
}
