import { createHash, type Hash } from 'node:crypto';
import { accessSync, closeSync, constants, existsSync, openSync, statSync, writeSync } from 'node:fs';
import { request as requestHttp, STATUS_CODES, type IncomingMessage } from 'node:http';
import { request as requestHttps } from 'node:https';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cipher } from 'node:crypto';
import { createOffsetCipher } from './e2ee-stream.js';
import type { HookSink } from './hook-sink.js';
import { formatOops } from './messages.js';
import type { DownloadArguments } from './parse-argv.js';
import { readIntegerSwitch } from './standin-env.js';
import { resolveTiming } from './standin-timing.js';
import { ProgressBar } from './progress-bar.js';
import { exitFlushed } from './exit-flushed.js';
import { openShareDatabase, resolveStorageDirectory } from './storage.js';

const USER_AGENT = 'python-requests/2.28.1';

/** Where received payload goes: stdout (`--stdout`) or a file (`-o`). */
interface PayloadSink {
  position: number;
  write(chunk: Buffer): Promise<void>;
  close(): void;
}

function createStdoutSink(): PayloadSink {
  const sink: PayloadSink = {
    position: 0,
    write: async (chunk) => {
      sink.position += chunk.length;
      if (!process.stdout.write(chunk)) await new Promise<void>((resolve) => process.stdout.once('drain', resolve));
    },
    close: () => undefined,
  };
  return sink;
}

function createFileSink(path: string, resume: boolean): PayloadSink {
  const start = resume && existsSync(path) ? statSync(path).size : 0;
  const fd = openSync(path, resume ? 'a' : 'w');
  const sink: PayloadSink = {
    position: start,
    write: async (chunk) => {
      writeSync(fd, chunk);
      sink.position += chunk.length;
    },
    close: () => closeSync(fd),
  };
  return sink;
}

interface OpenedResponse {
  readonly response: IncomingMessage;
  readonly status: number;
}

function openRequest(
  method: string,
  url: URL,
  headers: Record<string, string>,
  readTimeoutMs: number,
  body?: string,
): Promise<OpenedResponse> {
  const send = url.protocol === 'https:' ? requestHttps : requestHttp;
  const allHeaders: Record<string, string> = { 'User-Agent': USER_AGENT, ...headers };
  if (body !== undefined) {
    allHeaders['Content-Type'] = 'application/json';
    allHeaders['Content-Length'] = String(Buffer.byteLength(body));
  }
  return new Promise((resolve, reject) => {
    const request = send(
      {
        hostname: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        method,
        headers: allHeaders,
        agent: false,
      },
      (response) => resolve({ response, status: response.statusCode ?? 0 }),
    );
    request.setTimeout(readTimeoutMs, () =>
      request.destroy(new Error(`Read timed out. (read timeout=${readTimeoutMs / 1000})`)),
    );
    request.on('error', reject);
    request.end(body);
  });
}

async function readText(response: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function describeStatus(status: number, url: URL): string {
  const kind = status >= 500 ? 'Server Error' : 'Client Error';
  return `${status} ${kind}: ${STATUS_CODES[status] ?? 'Unknown'} for url: ${url.href}`;
}

/**
 * What python-requests says when nothing listens at `url` any more, as ffl quotes it after
 * `Failed to get file metadata:` (reference §8).
 */
function describeRefusedConnection(url: URL): string {
  const scheme = url.protocol === 'https:' ? 'HTTPS' : 'HTTP';
  const port = url.port === '' ? (url.protocol === 'https:' ? '443' : '80') : url.port;
  const object = `<urllib3.connection.${scheme}Connection object at 0x7f${Math.floor(Math.random() * 0xffffffffff)
    .toString(16)
    .padStart(10, '0')}>`;
  return `${scheme}ConnectionPool(host='${url.hostname}', port=${port}): Max retries exceeded with url: ${url.pathname} (Caused by NewConnectionError('${object}: Failed to establish a new connection: [Errno 111] Connection refused'))`;
}

/**
 * True when nothing answers at the link's host and port any more (the sender process is gone). A
 * probe made while the killed sender's sockets are being torn down can be accepted by its listening
 * socket and then reset: only an answer means alive, and a reset is looked at again.
 */
async function isSenderGone(url: URL): Promise<boolean> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      const probe = await openRequest('HEAD', url, {}, 5000);
      probe.response.resume();
      return false;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ECONNREFUSED' || attempt === 3) return true;
      await sleep(100);
    }
  }
}

function describeNetworkError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === undefined || error.message.includes(code) ? error.message : `${code}: ${error.message}`;
  }
  return String(error);
}

/** Result of one leg: delivered to EOF, refused with a status, or broken on the network. */
type LegResult =
  | { readonly kind: 'complete'; readonly id: string }
  | { readonly kind: 'status'; readonly status: number; readonly text: string }
  | { readonly kind: 'network'; readonly text: string };

/**
 * Runs `ffl download URL` against the stand-in's share: simulated WebRTC first (unless relay-only),
 * HTTP fallback, `--stdout` payload, §2.2 output and exit codes. Emits no transfer events.
 */
export async function runDownload(args: DownloadArguments, hook: HookSink, env: NodeJS.ProcessEnv): Promise<number> {
  await hook.emit('/cli/arguments/global/options/get', { argPolicy: { exitCode: null } });
  hook.close();
  const timing = resolveTiming(env);
  // The receiving ffl keeps its history too (reference §8); -wal/-shm stay behind when it is killed.
  const history = openShareDatabase(resolveStorageDirectory(env));
  process.on('exit', () => history.close());
  process.on('SIGINT', () => {
    process.stdout.write('Exiting on user request (Ctrl+C)...\n');
    exitFlushed(0);
  });
  const status = (line: string): void => {
    (args.stdout ? process.stderr : process.stdout).write(`${line}\n`);
  };
  const fail = (reason: string): number => {
    // Printed on stdout even with --stdout, i.e. after any partial payload (reference §2.2).
    process.stdout.write(formatOops(`Download failed: ${reason}`));
    return 1;
  };
  const readTimeoutMs = readIntegerSwitch(env, 'HTTP_READ_TIMEOUT', 600) * 1000;
  const maxResumes = readIntegerSwitch(env, 'HTTP_STREAM_RESUME_MAX_ATTEMPTS', 8);

  let link: URL;
  try {
    link = new URL(args.url);
    link.hash = '';
    link.search = '';
    link.pathname = link.pathname.replace(/\/+$/, '');
  } catch {
    return fail(`Invalid download URL: ${args.url}`);
  }
  const at = (suffix: string): URL => new URL(`${link.href}/${suffix}`);

  // 4.0.6 sends this first HEAD without credentials, so Basic-auth shares fail here (reference §2, [?]).
  let head: OpenedResponse;
  try {
    head = await openRequest('HEAD', link, {}, readTimeoutMs);
    head.response.resume();
  } catch (error) {
    return fail(`Invalid download URL: ${describeNetworkError(error)}`);
  }
  if (head.status !== 200) return fail(`Invalid download URL: ${describeStatus(head.status, link)}`);
  const authHeaders: Record<string, string> = {};
  if (args.authPassword !== undefined) {
    authHeaders['Authorization'] = `Basic ${Buffer.from(`${args.authUser}:${args.authPassword}`).toString('base64')}`;
  }
  const pickupHeaders: Record<string, string> = { ...authHeaders };
  if (args.pickupCode !== undefined) pickupHeaders['X-FFL-Pickup'] = args.pickupCode;

  const mode = String(head.response.headers['ffl-mode'] ?? 'HTTP');
  const fileSize = Number(head.response.headers['ffl-filesize'] ?? '-1');
  const disposition = String(head.response.headers['content-disposition'] ?? '');
  const fileName = basename(/filename="([^"]+)"/.exec(disposition)?.[1] ?? (basename(link.pathname) || 'download.bin'));
  const e2ee = mode.includes('+E2EE');

  let key: Buffer | undefined;
  let nonce: Buffer | undefined;
  if (e2ee) {
    status('🔒 End-to-end encryption detected');
    try {
      const manifest = await openRequest('GET', at('e2ee/manifest'), authHeaders, readTimeoutMs);
      await readText(manifest.response);
      const init = await openRequest(
        'POST',
        at('e2ee/init'),
        authHeaders,
        readTimeoutMs,
        JSON.stringify({ publicKey: 'simulated' }),
      );
      const reply = JSON.parse(await readText(init.response)) as { key?: string; nonce?: string };
      if (init.status !== 200 || reply.key === undefined || reply.nonce === undefined)
        throw new Error(`E2EE init failed: ${init.status}`);
      key = Buffer.from(reply.key, 'base64');
      nonce = Buffer.from(reply.nonce, 'base64');
    } catch (error) {
      return fail(`E2EE key exchange failed: ${describeNetworkError(error)}`);
    }
  }

  let sink: PayloadSink;
  let outputPath: string | undefined;
  if (args.stdout) {
    sink = createStdoutSink();
    process.stdout.on('error', () => process.exit(1));
  } else {
    outputPath = args.output === undefined ? join(process.cwd(), fileName) : resolvePath(args.output);
    if (existsSync(outputPath) && statSync(outputPath).isDirectory()) outputPath = join(outputPath, fileName);
    try {
      accessSync(dirname(outputPath), constants.W_OK);
    } catch {
      return fail(`Output directory does not exist or is not writable: ${dirname(outputPath)}`);
    }
    sink = createFileSink(outputPath, args.resume);
  }
  const initialPosition = sink.position;

  /** Receives one leg into the sink, decrypting when needed and hashing the wire bytes of a from-zero leg. */
  const receiveLeg = async (url: URL, headers: Record<string, string>, hash: Hash | undefined): Promise<LegResult> => {
    let opened: OpenedResponse;
    try {
      opened = await openRequest('GET', url, headers, readTimeoutMs);
    } catch (error) {
      return { kind: 'network', text: describeNetworkError(error) };
    }
    if (opened.status !== 200 && opened.status !== 206) {
      opened.response.resume();
      return { kind: 'status', status: opened.status, text: describeStatus(opened.status, url) };
    }
    const id = String(opened.response.headers['ffl-download-id'] ?? opened.response.headers['ffl-peer-id'] ?? '');
    const decipher: Cipher | undefined =
      key !== undefined && nonce !== undefined ? createOffsetCipher(key, nonce, sink.position) : undefined;
    // tqdm's bar on stderr, `\r`-separated frames (reference §8), whatever goes to stdout.
    const bar = new ProgressBar(process.stderr);
    try {
      for await (const chunk of opened.response) {
        const wire = chunk as Buffer;
        hash?.update(wire);
        await sink.write(decipher === undefined ? wire : decipher.update(wire));
        bar.update(sink.position);
      }
    } catch (error) {
      return { kind: 'network', text: describeNetworkError(error) };
    } finally {
      bar.close();
    }
    if (!opened.response.complete) return { kind: 'network', text: 'Connection broken: response ended prematurely' };
    return { kind: 'complete', id };
  };

  const postReceipt = async (downloadId: string, connectionType: 'http' | 'webrtc'): Promise<void> => {
    try {
      const reply = await openRequest(
        'POST',
        at('complete'),
        authHeaders,
        5000,
        JSON.stringify({ downloadId, connectionType }),
      );
      reply.response.resume();
    } catch {
      // The ACK is best effort; the sender falls back to its own wait.
    }
  };

  /** Compares with GET /checksum, polling 10 x 0.2 s; silently skipped when never ready (bases/Download.py). */
  const verifyChecksum = async (hash: Hash, received: number): Promise<string | undefined> => {
    const local = hash.digest('hex');
    for (let attempt = 0; attempt < 10; attempt += 1) {
      try {
        const reply = await openRequest('GET', at('checksum'), authHeaders, 5000);
        const body = JSON.parse(await readText(reply.response)) as {
          ready?: boolean;
          checksum?: string;
          size?: number;
        };
        if (body.ready === true) {
          if (body.size !== received) return `Checksum size mismatch: local=${received}, remote=${String(body.size)}`;
          if (body.checksum !== local)
            return `Checksum verification failed: local=${local}, remote=${String(body.checksum)}`;
          status('Checksum verified');
          return undefined;
        }
      } catch {
        // Treated as "not ready".
      }
      await sleep(200);
    }
    return undefined;
  };

  const finishSuccess = (): number => {
    sink.close();
    status(args.stdout ? 'Download complete' : `Downloaded: ${outputPath ?? ''}`);
    return 0;
  };

  /** HTTP (relay) download from the sink position; retries broken streams only with -o. */
  const downloadOverHttp = async (resumed: boolean): Promise<{ ok: true } | { ok: false; reason: string }> => {
    let retries = 0;
    let anyResume = resumed || sink.position > 0;
    for (;;) {
      const start = sink.position;
      const hash = start === 0 && !anyResume ? createHash('blake2b512') : undefined;
      const headers = start > 0 ? { ...pickupHeaders, Range: `bytes=${start}-` } : pickupHeaders;
      const result = await receiveLeg(link, headers, hash);
      if (result.kind === 'complete') {
        if (hash !== undefined) {
          const mismatch = await verifyChecksum(hash, sink.position);
          if (mismatch !== undefined) return { ok: false, reason: mismatch };
        }
        await postReceipt(result.id, 'http');
        return { ok: true };
      }
      if (result.kind === 'status') return { ok: false, reason: `HTTP download failed: ${result.status}` };
      if (args.stdout || retries >= maxResumes)
        return { ok: false, reason: `Network error during HTTP download: ${result.text}` };
      retries += 1;
      anyResume = true;
      status(`Resuming HTTP download from ${sink.position} after connection error (${retries}/${maxResumes})`);
      await sleep(timing.resumeBackoffMs(retries));
    }
  };

  const relayOnly = mode.startsWith('HTTP') || (env['DISABLE_WEBRTC'] ?? '').toLowerCase() === 'true';
  if (relayOnly) {
    status('WebRTC not supported, using HTTP download...');
    const result = await downloadOverHttp(initialPosition > 0);
    if (!result.ok) return fail(result.reason);
    return finishSuccess();
  }

  status('Attempting WebRTC download...');
  status(`Downloading ${fileName} (${fileSize >= 0 ? `${fileSize} bytes` : 'unknown bytes'})`);
  let webrtcError = 'WebRTC offer failed';
  let offer: OpenedResponse | undefined;
  // Python start-up and ICE gathering before the offer: /webrtc/offer/create comes ~7 s in (reference §8).
  await sleep(timing.offerDelayMs());
  try {
    offer = await openRequest('POST', at('offer'), pickupHeaders, readTimeoutMs, JSON.stringify({ client: 'cli' }));
  } catch (error) {
    webrtcError = describeNetworkError(error);
  }
  if (offer !== undefined && offer.status === 200) {
    const { peerId } = JSON.parse(await readText(offer.response)) as { peerId: string };
    // ICE checks, DTLS and SCTP before the data channel opens: the first byte 8-13 s after start.
    await sleep(timing.connectDelayMs());
    const hash = initialPosition === 0 ? createHash('blake2b512') : undefined;
    const result = await receiveLeg(at(`webrtc/${peerId}?offset=${initialPosition}`), authHeaders, hash);
    if (result.kind === 'complete') {
      // tqdm's write() defaults to stdout: the known pollution of stdin shares over WebRTC (reference §2.2).
      if (fileSize < 0) process.stdout.write('File transfer completed\n');
      // Checked before the ACK: the stand-in sender exits promptly after it, unlike the real one's teardown stall.
      if (hash !== undefined) {
        const mismatch = await verifyChecksum(hash, sink.position);
        if (mismatch !== undefined) return fail(mismatch);
      }
      await postReceipt(peerId, 'webrtc');
      return finishSuccess();
    }
    // A sender that died sends no SCTP abort: the real receiver learns it only when the ICE consent
    // checks time out, 29-33 s later; a leg cut with the sender alive falls back at once.
    if (await isSenderGone(link)) await sleep(timing.senderGoneNoticeMs());
    webrtcError = 'WebRTC connection failed before download completed';
    status(webrtcError);
  } else if (offer !== undefined) {
    offer.response.resume();
    webrtcError = describeStatus(offer.status, at('offer'));
  }
  // The HTTP fallback starts with the metadata request; a vanished sender fails right there.
  try {
    const metadata = await openRequest('HEAD', link, {}, readTimeoutMs);
    metadata.response.resume();
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ECONNREFUSED'
        ? describeRefusedConnection(link)
        : describeNetworkError(error);
    return fail(
      `Both WebRTC and HTTP downloads failed. WebRTC: ${webrtcError}. HTTP: Failed to get file metadata: ${reason}`,
    );
  }
  const fallback = await downloadOverHttp(sink.position > initialPosition);
  if (!fallback.ok)
    return fail(
      `Both WebRTC and HTTP downloads failed. WebRTC: ${webrtcError}. HTTP: HTTP download failed: ${fallback.reason}`,
    );
  return finishSuccess();
}
