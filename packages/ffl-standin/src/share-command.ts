import { createHash, randomBytes, randomInt, randomUUID, timingSafeEqual } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createOffsetCipher } from './e2ee-stream.js';
import { formatLocalIso, formatLocalSeconds, formatSize, formatStdinName, formatUtcIso } from './format-time.js';
import type { HookSink } from './hook-sink.js';
import { formatOops } from './messages.js';
import type { ShareArguments } from './parse-argv.js';
import { SourceGoneError, StdinSource } from './stdin-source.js';
import { FFL_STANDIN_ENV, readIntegerSwitch } from './standin-env.js';
import { resolveTiming, type StandinTiming } from './standin-timing.js';
import { ProgressBar } from './progress-bar.js';
import { ensureTunnelsFile, openShareDatabase, resolveStorageDirectory } from './storage.js';

/** Body of the 410 answer once a `--stdin-cache off` stream left the replay window (reference §5). */
export const GONE_BODY = 'This resource has already been downloaded and is no longer available (single-use only).';

const PICKUP_MAX_FAILURES = 5;
const PROGRESS_INTERVAL_MS = 1000;
const UID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** Switch values read once at start. */
interface ShareSwitches {
  readonly killAfterBytes: number;
  readonly httpDropAfterBytes: number;
  readonly webrtcDropAfterBytes: number;
  readonly tunnelFail: boolean;
  readonly pickupLockMs: number;
  readonly windowBytes: number;
  readonly timing: StandinTiming;
}

function readSwitches(env: NodeJS.ProcessEnv): ShareSwitches {
  return {
    killAfterBytes: readIntegerSwitch(env, FFL_STANDIN_ENV.killAfterBytes, 0),
    httpDropAfterBytes: readIntegerSwitch(env, FFL_STANDIN_ENV.httpDropAfterBytes, 0),
    webrtcDropAfterBytes: readIntegerSwitch(env, FFL_STANDIN_ENV.webrtcDropAfterBytes, 0),
    tunnelFail: ['1', 'true', 'yes'].includes((env[FFL_STANDIN_ENV.tunnelFail] ?? '').toLowerCase()),
    pickupLockMs: readIntegerSwitch(env, FFL_STANDIN_ENV.pickupLockSeconds, 300) * 1000,
    windowBytes: readIntegerSwitch(env, 'READER_STDIN_HANDOFF_WINDOW_MB', 32) * 1024 * 1024,
    timing: resolveTiming(env),
  };
}

function generateUid(): string {
  let uid = '';
  for (let index = 0; index < 8; index += 1) uid += UID_ALPHABET[randomInt(UID_ALPHABET.length)];
  return uid;
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function pythonRepr(className: string): string {
  return `<${className} object at 0x7f${randomBytes(5).toString('hex')}>`;
}

function writeJsonAtomically(path: string, content: Record<string, unknown>): void {
  const temporary = `${path}.tmp${process.pid}`;
  writeFileSync(temporary, `${JSON.stringify(content, null, 2)}\n`);
  renameSync(temporary, path);
}

function waitForDrainOrClose(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      response.off('drain', done);
      response.off('close', done);
      resolve();
    };
    response.on('drain', done);
    response.on('close', done);
  });
}

/** How one leg (HTTP download or simulated data channel) ended. */
type LegOutcome =
  | { readonly kind: 'complete'; readonly sent: number; readonly checksum: string | undefined }
  | { readonly kind: 'broken'; readonly sent: number }
  | { readonly kind: 'dropped'; readonly sent: number }
  | { readonly kind: 'read-error'; readonly sent: number; readonly error: string };

/**
 * Runs `ffl share -` against loopback: prints §1.1, emits §3 events, serves the simulated direct
 * (WebRTC) and relay (HTTP) paths, and resolves with the exit code once the share ends.
 */
export async function runShare(args: ShareArguments, hook: HookSink, env: NodeJS.ProcessEnv): Promise<number> {
  const switches = readSwitches(env);
  const { timing } = switches;
  const uid = generateUid();
  const contentName = args.name ?? formatStdinName();
  const pickupCode = args.pickupCode ?? (args.recipientAuth === 'pickup' ? String(randomInt(1_000_000)).padStart(6, '0') : undefined);
  const authEnabled = args.authPassword !== undefined;
  const webrtcEnabled = !args.forceRelay;
  const e2eeKey = randomBytes(32);
  const e2eeNonce = randomBytes(16);
  const startedAt = Date.now();

  const state = {
    shuttingDown: false,
    interrupted: false,
    hardExit: false,
    downloadCount: 0,
    totalWireBytes: 0,
    httpDropUsed: false,
    webrtcDropUsed: false,
    /** Counts HTTP legs started, so a stalled direct leg knows whether the receiver handed off. */
    httpLegs: 0,
    pickupFailures: 0,
    pickupLockedUntil: 0,
    checksum: undefined as { checksum: string; size: number; transport: string; updatedAt: string } | undefined,
    peers: new Set<string>(),
    receipts: new Map<string, () => void>(),
    receiptsSeen: new Set<string>(),
  };

  let resolveExit: (code: number) => void = () => undefined;
  const exitCode = new Promise<number>((resolve) => {
    resolveExit = resolve;
  });
  let server: Server | undefined;
  let timeoutTimer: NodeJS.Timeout | undefined;
  let domain = '';
  let link = '';

  await hook.emit('/cli/arguments/global/options/get', { argPolicy: { exitCode: null } });
  await hook.emit('/cli/arguments/get', {
    argPolicy: { exitCode: null },
    proxyConfig: args.proxy === undefined ? null : { proxy: args.proxy },
    shareSubparser: "ArgumentParser(prog='FFL.py share', usage=None, description=None, formatter_class=<class 'argparse.HelpFormatter'>, conflict_handler='error', add_help=True)",
  });
  const storage = resolveStorageDirectory(env);
  ensureTunnelsFile(storage, args.preferredTunnel);
  const history = openShareDatabase(storage);
  // A clean exit closes the database (SQLite removes -wal/-shm); SIGTERM/SIGKILL and the second
  // Ctrl+C (os._exit) leave them, as reference §8 observed after SIGKILL.
  process.on('exit', () => {
    if (!state.hardExit) history.close();
  });

  const source = new StdinSource({
    cache: args.stdinCache,
    windowBytes: switches.windowBytes,
    openInput: () => process.stdin[Symbol.asyncIterator]() as AsyncIterator<Buffer>,
  });

  const shutdown = async (reason: 'max' | 'timeout' | 'interrupt'): Promise<void> => {
    if (state.shuttingDown) return;
    state.shuttingDown = true;
    if (timeoutTimer !== undefined) clearTimeout(timeoutTimer);
    server?.closeAllConnections();
    server?.close();
    const serverShutdown = { reason: 'normal', downloadCount: state.downloadCount, uptime: (Date.now() - startedAt) / 1000 };
    if (reason === 'max') {
      say(`Maximum downloads (${args.maxDownloads}) reached. Shutting down server.`);
      await hook.emit('/download/limit/reach', { uid, maxDownloads: args.maxDownloads, downloadCount: state.downloadCount });
      await hook.emit('/session/delete', { uid, downloadCount: state.downloadCount, status: 3 });
      await hook.emit('/server/shutdown', serverShutdown);
      await hook.emit('/share/complete', { uid, occurredAt: formatUtcIso() });
    } else if (reason === 'timeout') {
      say(`Timeout (${args.timeoutSeconds} seconds) reached. Shutting down server.`);
      await hook.emit('/session/timeout', { uid, timeout: args.timeoutSeconds, downloadCount: state.downloadCount });
      await hook.emit('/session/delete', { uid, downloadCount: state.downloadCount, status: 4 });
      await hook.emit('/server/shutdown', serverShutdown);
      await hook.emit('/share/complete', { uid, occurredAt: formatUtcIso() });
    } else {
      say('Exiting on user request (Ctrl+C)...');
      if (server !== undefined) {
        await hook.emit('/session/delete', { uid, downloadCount: state.downloadCount, status: 4 });
        await hook.emit('/server/shutdown', serverShutdown);
      }
      await hook.emit('/share/stop', { uid, downloads: state.downloadCount, occurredAt: formatUtcIso() });
    }
    source.removeCache();
    hook.close();
    resolveExit(0);
  };

  process.on('SIGINT', () => {
    // A second Ctrl+C exits at once, like FFL.py setupGracefulShutdown's os._exit(0).
    if (state.interrupted) {
      state.hardExit = true;
      process.exit(0);
    }
    state.interrupted = true;
    void shutdown('interrupt');
  });

  const completeDownload = (): void => {
    state.downloadCount += 1;
    if (args.maxDownloads > 0 && state.downloadCount >= args.maxDownloads) void shutdown('max');
  };

  const waitForReceipt = async (id: string, path: 'webrtc' | 'http', fullWait: boolean): Promise<void> => {
    if (fullWait) {
      await sleep(timing.ackWaitMs(path));
      return;
    }
    if (state.receiptsSeen.has(id)) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timing.ackWaitMs(path));
      state.receipts.set(id, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  };

  const streamLeg = async (
    response: ServerResponse,
    offset: number,
    dropAfter: number,
    bar: ProgressBar,
    reportProgress: (sentIncludingOffset: number, speed: number, elapsedSeconds: number) => Promise<void>,
    transport: 'http' | 'webrtc',
  ): Promise<LegOutcome> => {
    const cipher = args.e2ee ? createOffsetCipher(e2eeKey, e2eeNonce, offset) : undefined;
    const hash = offset === 0 ? createHash('blake2b512') : undefined;
    const legStart = Date.now();
    let sent = 0;
    let lastProgress = 0;
    const rate = timing.bytesPerSecond;
    const sliceSize = rate > 0 ? Math.max(1024, Math.floor(rate / 10)) : Number.MAX_SAFE_INTEGER;
    try {
      for await (const plain of source.readFrom(offset)) {
        const wire = cipher === undefined ? plain : cipher.update(plain);
        for (let start = 0; start < wire.length; start += sliceSize) {
          if (response.destroyed || state.shuttingDown) return { kind: 'broken', sent };
          let slice = wire.subarray(start, Math.min(wire.length, start + sliceSize));
          const killNow = switches.killAfterBytes > 0 && state.totalWireBytes + slice.length >= switches.killAfterBytes;
          if (killNow) slice = slice.subarray(0, switches.killAfterBytes - state.totalWireBytes);
          const dropNow = dropAfter > 0 && sent + slice.length >= dropAfter;
          if (dropNow) slice = slice.subarray(0, dropAfter - sent);
          hash?.update(slice);
          let flowing = true;
          if (killNow || dropNow) {
            // Wait until the partial bytes are in the kernel, so the receiver sees exactly N bytes before the break.
            await new Promise<void>((resolve) => response.write(slice, () => resolve()));
          } else {
            flowing = response.write(slice);
          }
          sent += slice.length;
          state.totalWireBytes += slice.length;
          bar.update(offset + sent);
          if (killNow) {
            // Die like a crashed sender: no events, no cleanup, stdin cache left behind.
            await sleep(50);
            process.kill(process.pid, 'SIGKILL');
          }
          if (dropNow) {
            response.destroy();
            return { kind: 'dropped', sent };
          }
          if (!flowing) await waitForDrainOrClose(response);
          if (rate > 0) {
            const due = legStart + (sent / rate) * 1000;
            if (due > Date.now()) await sleep(due - Date.now());
          }
          const now = Date.now();
          if (lastProgress === 0 || now - lastProgress >= PROGRESS_INTERVAL_MS) {
            lastProgress = now;
            const elapsed = Math.max((now - legStart) / 1000, 0.0001);
            await reportProgress(offset + sent, Math.round(sent / elapsed), elapsed);
          }
        }
      }
    } catch (error) {
      if (error instanceof SourceGoneError) return { kind: 'read-error', sent, error: error.message };
      return { kind: 'read-error', sent, error: error instanceof Error ? error.message : String(error) };
    }
    if (response.destroyed || state.shuttingDown) return { kind: 'broken', sent };
    // Published with the last byte, before the end of the response: the receiver polls /checksum
    // for only 2 s after its EOF and skips the check silently when it is not ready (§2.3), so a
    // checksum published after our own end callback went unchecked on a loaded machine.
    const outcome: LegOutcome = { kind: 'complete', sent, checksum: hash?.digest('hex') };
    publishChecksum(outcome, offset, transport);
    await new Promise<void>((resolve) => response.end(resolve));
    return outcome;
  };

  const publishChecksum = (outcome: LegOutcome, offset: number, transport: string): void => {
    if (outcome.kind === 'complete' && offset === 0 && outcome.checksum !== undefined) {
      state.checksum = { checksum: outcome.checksum, size: outcome.sent, transport, updatedAt: formatLocalIso() };
    }
  };

  const checkPickup = (request: IncomingMessage, response: ServerResponse): boolean => {
    if (pickupCode === undefined) return true;
    if (Date.now() < state.pickupLockedUntil) {
      response.writeHead(429, { 'Retry-After': String(Math.ceil(switches.pickupLockMs / 1000)), 'Content-Type': 'text/plain' });
      response.end('Too many failed pickup attempts');
      return false;
    }
    const supplied = request.headers['x-ffl-pickup'];
    if (typeof supplied === 'string' && supplied.length === pickupCode.length && timingSafeEqual(Buffer.from(supplied), Buffer.from(pickupCode))) {
      state.pickupFailures = 0;
      return true;
    }
    state.pickupFailures += 1;
    if (state.pickupFailures >= PICKUP_MAX_FAILURES) {
      state.pickupLockedUntil = Date.now() + switches.pickupLockMs;
      state.pickupFailures = 0;
    }
    response.writeHead(401, { 'Content-Type': 'text/plain' });
    response.end('Pickup code required');
    return false;
  };

  const checkBasicAuth = async (request: IncomingMessage, response: ServerResponse): Promise<boolean> => {
    if (!authEnabled) return true;
    const header = request.headers.authorization;
    const clientIp = request.socket.remoteAddress ?? '';
    if (header === undefined || !header.startsWith('Basic ')) {
      await hook.emit('/auth/require', { realm: 'FastFileLink', timestamp: formatLocalIso() });
    } else {
      const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
      const username = decoded.slice(0, decoded.indexOf(':'));
      if (decoded === `${args.authUser}:${args.authPassword ?? ''}`) {
        await hook.emit('/auth/success', { username, timestamp: formatLocalIso(), clientIp });
        return true;
      }
      await hook.emit('/auth/fail', { username, timestamp: formatLocalIso(), clientIp });
    }
    response.writeHead(401, { 'WWW-Authenticate': 'Basic realm="FastFileLink"', 'Content-Type': 'text/plain' });
    response.end('Unauthorized');
    return false;
  };

  const metadataHeaders = (): Record<string, string> => ({
    'Content-Type': 'application/octet-stream',
    'Content-Disposition': `attachment; filename="${contentName}"`,
    'FFL-Mode': `${webrtcEnabled ? 'P2P' : 'HTTP'}${args.e2ee ? '+E2EE' : ''}`,
    'FFL-FileSize': '-1',
  });

  const sendJson = (response: ServerResponse, status: number, body: unknown): void => {
    response.writeHead(status, { 'Content-Type': 'application/json' });
    response.end(JSON.stringify(body));
  };

  const readBody = async (request: IncomingMessage): Promise<Record<string, unknown>> => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    try {
      const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
      return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
    } catch {
      return {};
    }
  };

  const parseRangeStart = (request: IncomingMessage): number => {
    const match = /^bytes=(\d+)-$/.exec(request.headers.range ?? '');
    return match?.[1] === undefined ? 0 : Number(match[1]);
  };

  const handleRelayDownload = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    if (!checkPickup(request, response)) return;
    const offset = parseRangeStart(request);
    if (!source.canServe(offset)) {
      response.writeHead(410, { 'Content-Type': 'text/plain' });
      response.end(GONE_BODY);
      return;
    }
    say(`[${formatLocalSeconds()}] Downloading by user`);
    state.httpLegs += 1;
    const downloadId = randomUUID();
    const clientInfo = { userAgent: request.headers['user-agent'] ?? '', domain: request.headers.host ?? domain };
    await hook.emit('/download/create', {
      timestamp: formatLocalSeconds(),
      shareId: uid,
      downloadId,
      connectionType: 'http',
      clientInfo,
      resumeOffset: offset,
      fileSize: null,
      fileName: contentName,
    });
    response.writeHead(offset > 0 ? 206 : 200, { ...metadataHeaders(), 'FFL-Download-Id': downloadId });
    const legStart = Date.now();
    const dropAfter = !state.httpDropUsed && switches.httpDropAfterBytes > 0 ? switches.httpDropAfterBytes : 0;
    if (dropAfter > 0) state.httpDropUsed = true;
    const bar = new ProgressBar(process.stderr);
    const outcome = await streamLeg(response, offset, dropAfter, bar, (bytes, speed, elapsed) =>
      hook.emit('/download/progress', {
        shareId: uid,
        downloadId,
        bytesTransferred: bytes,
        totalBytes: null,
        percentage: 0,
        speed,
        connectionType: 'http',
        elapsedTime: elapsed,
        estimatedRemaining: null,
      }),
      'http',
    );
    bar.close();
    if (state.shuttingDown) return;
    const duration = (Date.now() - legStart) / 1000;
    if (outcome.kind !== 'complete') {
      const lost = outcome.kind === 'broken' || outcome.kind === 'dropped';
      await hook.emit('/download/fail', {
        shareId: uid,
        downloadId,
        reason: lost ? 'connection-lost' : 'unknown',
        error: outcome.kind === 'read-error' ? outcome.error : 'Connection lost',
        bytesTransferred: 0,
        totalBytes: null,
        duration,
      });
      if (lost) say('Connection disconnected, wait retrying.');
      if (!response.destroyed) response.destroy();
      return;
    }
    say('File sending is complete. Please wait for the recipient to finish downloading before you close the application.');
    await waitForReceipt(downloadId, 'http', args.forceRelay);
    if (state.shuttingDown) return;
    await hook.emit('/download/complete', {
      shareId: uid,
      downloadId,
      bytesTransferred: 0,
      duration: (Date.now() - legStart) / 1000,
      averageSpeed: 0,
      connectionType: 'http',
      clientInfo,
    });
    completeDownload();
  };

  const handleOffer = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    if (!webrtcEnabled) {
      sendJson(response, 403, { error: 'WebRTC disabled' });
      return;
    }
    if (!checkPickup(request, response)) return;
    const peerId = randomBytes(16).toString('hex');
    state.peers.add(peerId);
    await hook.emit('/webrtc/offer/create', { peerId, sessionId: null, timestamp: formatLocalIso() });
    sendJson(response, 200, { peerId, type: 'offer', sdp: 'v=0 (simulated by the deploykit ffl stand-in)' });
  };

  const handleDataChannel = async (request: IncomingMessage, response: ServerResponse, peerId: string): Promise<void> => {
    if (!state.peers.has(peerId)) {
      sendJson(response, 404, { error: 'Unknown peer' });
      return;
    }
    const offset = Number(new URL(request.url ?? '/', 'http://x').searchParams.get('offset') ?? '0') || 0;
    await hook.emit('/webrtc/connect/complete', {
      peerId,
      connectionType: 'remote',
      clientInfo: { browser: 'cli', domain: 'cli', platform: 'fastfilelink-cli' },
    });
    if (!source.canServe(offset)) {
      await hook.emit('/download/fail', {
        shareId: uid,
        downloadId: peerId,
        reason: 'unknown',
        error: 'Stdin has already been consumed and caching failed',
        bytesTransferred: 0,
        totalBytes: null,
        duration: 0,
      });
      response.writeHead(410, { 'Content-Type': 'text/plain' });
      response.end(GONE_BODY);
      return;
    }
    await hook.emit('/webrtc/transfer/create', {
      shareId: uid,
      peerId,
      fileName: contentName,
      fileSize: null,
      resumeOffset: offset,
      e2eeEnabled: args.e2ee,
    });
    response.writeHead(200, { ...metadataHeaders(), 'FFL-Peer-Id': peerId });
    const legStart = Date.now();
    const dropAfter = !state.webrtcDropUsed && switches.webrtcDropAfterBytes > 0 ? switches.webrtcDropAfterBytes : 0;
    if (dropAfter > 0) state.webrtcDropUsed = true;
    let plainBytes = offset;
    const bar = new ProgressBar(process.stderr, ' P2P direct');
    const outcome = await streamLeg(response, offset, dropAfter, bar, (bytes, speed) => {
      plainBytes = bytes;
      return hook.emit('/webrtc/transfer/progress', {
        shareId: uid,
        peerId,
        bytesTransferred: bytes,
        totalBytes: null,
        percentage: 0,
        speed,
      });
    }, 'webrtc');
    bar.close();
    if (state.shuttingDown) return;
    if (outcome.kind === 'read-error') {
      await hook.emit('/download/fail', {
        shareId: uid,
        downloadId: peerId,
        reason: 'unknown',
        error: outcome.error,
        bytesTransferred: 0,
        totalBytes: null,
        duration: (Date.now() - legStart) / 1000,
      });
      if (!response.destroyed) response.destroy();
      return;
    }
    // A dropped data channel emits nothing; the receiver hands off to HTTP (sequence C).
    if (outcome.kind === 'dropped') return;
    if (outcome.kind === 'broken') {
      // The receiver went away: the real sender's data channel send buffer stops draining and
      // sendFile raises after WEBRTC_SEND_BUFFER_DRAIN_TIMEOUT (bases/WebRTC.py); the share itself
      // keeps waiting for another receiver (reference §8). A handoff to HTTP emits nothing.
      const legsBefore = state.httpLegs;
      const sentBefore = offset + outcome.sent;
      await sleep(timing.sendBufferStallMs);
      if (state.shuttingDown || state.httpLegs !== legsBefore) return;
      await hook.emit('/download/fail', {
        shareId: uid,
        downloadId: peerId,
        reason: 'unknown',
        error: `WebRTC send buffer stalled during chunk send after sending ${sentBefore} bytes for peer ${peerId} (waited ${timing.sendBufferStallSeconds}s)`,
        bytesTransferred: 0,
        totalBytes: null,
        duration: (Date.now() - legStart) / 1000,
      });
      return;
    }
    plainBytes = offset + outcome.sent;
    const duration = Math.max((Date.now() - legStart) / 1000, 0.0001);
    await hook.emit('/webrtc/transfer/complete', {
      shareId: uid,
      peerId,
      bytesTransferred: plainBytes,
      duration,
      averageSpeed: Math.round(outcome.sent / duration),
    });
    say(`Finish transfer ${formatSize(plainBytes)} for [#${peerId.slice(0, 5)}], please wait for the recipient to finish downloading before you close the application..`);
    await waitForReceipt(peerId, 'webrtc', false);
    // The WebRTC teardown stall: the real sender exits 4-6 s after /webrtc/transfer/complete.
    await sleep(timing.teardownMs());
    if (state.shuttingDown) return;
    completeDownload();
  };

  const handleReceipt = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const body = await readBody(request);
    // --force-relay forbids POST /complete, which is why the real tool waits its full ~5 s per download.
    if (args.forceRelay) {
      sendJson(response, 403, { error: 'Forbidden' });
      return;
    }
    const id = typeof body['downloadId'] === 'string' ? body['downloadId'] : '';
    const connectionType = body['connectionType'] === 'webrtc' ? 'webrtc' : 'http';
    await hook.emit('/receipt/create', {
      downloadId: id,
      connectionType,
      clientInfo: { userAgent: request.headers['user-agent'] ?? '', domain: request.headers.host ?? domain },
    });
    state.receiptsSeen.add(id);
    state.receipts.get(id)?.();
    sendJson(response, 200, { status: 'ok' });
  };

  const handleRequest = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    await hook.registerEndpoints({
      uid,
      domain,
      port: server === undefined ? null : (server.address() as AddressInfo).port,
      fileName: contentName,
      fileSize: null,
      authEnabled,
      defaultWebRTC: webrtcEnabled,
      e2eeEnabled: args.e2ee,
      torEnabled: false,
      sessionCount: 1,
    });
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    const segments = path.split('/').filter((segment) => segment !== '');
    if (segments[0] !== uid) {
      sendJson(response, 404, { error: 'Not found' });
      return;
    }
    if (!(await checkBasicAuth(request, response))) return;
    const route = segments.slice(1).join('/');
    const method = request.method ?? 'GET';
    if (route === '' && method === 'HEAD') {
      response.writeHead(200, metadataHeaders());
      response.end();
    } else if (route === '' && method === 'GET') {
      await handleRelayDownload(request, response);
    } else if (route === 'offer' && method === 'POST') {
      await handleOffer(request, response);
    } else if (segments[1] === 'webrtc' && segments[2] !== undefined && method === 'GET') {
      await handleDataChannel(request, response, segments[2]);
    } else if (route === 'complete' && method === 'POST') {
      await handleReceipt(request, response);
    } else if (route === 'checksum' && method === 'GET') {
      sendJson(response, 200, state.checksum === undefined
        ? { ready: false }
        : { ready: true, algorithm: 'blake2b', checksum: state.checksum.checksum, encoding: 'hex', size: state.checksum.size, transport: state.checksum.transport, e2ee: args.e2ee, updatedAt: state.checksum.updatedAt });
    } else if (route === 'status' && method === 'GET') {
      sendJson(response, 200, { status: 'ok', uid, downloadCount: state.downloadCount });
    } else if (route === 'e2ee/manifest' && method === 'GET' && args.e2ee) {
      sendJson(response, 200, { algorithm: 'AES-256-GCM', simulatedWith: 'aes-256-ctr', chunkSize: 262144, fileName: contentName, fileSize: -1 });
    } else if (route === 'e2ee/init' && method === 'POST' && args.e2ee) {
      await readBody(request);
      sendJson(response, 200, { key: e2eeKey.toString('base64'), nonce: e2eeNonce.toString('base64') });
    } else {
      sendJson(response, 404, { error: 'Not found' });
    }
  };

  try {
    await hook.emit('/source/reader/create', {
      path: '-',
      fileName: contentName,
      compression: null,
      excludeFilter: null,
      progressReporter: pythonRepr('bases.Progress.CLIProgressReporter'),
      stdinCache: args.stdinCache,
      // An object in the real events (reference §8); its fields were not recorded.
      readerPolicy: {},
    });
    await hook.emit('/share/create', { uid, name: contentName, fileSize: 0, shareMode: 'p2p', occurredAt: formatUtcIso() });
    if (args.e2ee) {
      say('🔐 End-to-end encryption enabled');
      say('');
    }
    await hook.emit('/share/start', { uid, occurredAt: formatUtcIso() });
    say(args.proxy === undefined ? 'Establishing tunnel connection...' : `Establishing tunnel connection via proxy ${args.proxy}...`);
    say('');
    await hook.emit('/tunnel/start', { tunnelType: 'default', proxyInfo: args.proxy ?? null });
    const linkDelay = timing.linkDelayMs();
    if (linkDelay > 0) await sleep(linkDelay);
    if (state.shuttingDown) return await exitCode;
    if (switches.tunnelFail) {
      await hook.emit('/tunnel/fail', { tunnelType: 'default', error: 'Cannot connect to any FastFileLink server.', willRetry: false, retryCount: 0 });
      await hook.emit('/share/fail', { uid, error: 'Failed to connect server', occurredAt: formatUtcIso() });
      process.stdout.write(formatOops('Failed to connect server'));
      hook.close();
      return 1;
    }

    const httpServer = createServer((request, response) => {
      handleRequest(request, response).catch((error: unknown) => {
        if (!response.headersSent) sendJson(response, 500, { error: error instanceof Error ? error.message : String(error) });
        else response.destroy();
      });
    });
    server = httpServer;
    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', reject);
      httpServer.listen(args.port ?? 0, '127.0.0.1', () => resolve());
    });
    const port = (httpServer.address() as AddressInfo).port;
    domain = `127.0.0.1:${port}`;
    link = `http://${domain}/${uid}`;
    await hook.emit('/tunnel/create', { tunnelType: 'default', domain, tunnelLink: `http://${domain}/`, proxyInfo: args.proxy ?? null });

    const user = { serialNumber: null, name: null, email: null, points: 0, level: null };
    if (args.jsonPath !== undefined) {
      writeJsonAtomically(args.jsonPath, {
        file: '-',
        content_name: contentName,
        file_size: -1,
        upload_mode: 'p2p',
        tunnel_type: 'default',
        link,
        e2ee: args.e2ee,
        pickup_code: pickupCode ?? null,
        pubkey_enabled: false,
        user: { serial_number: null, name: null, email: null, points: 0, level: null },
      });
    }
    await hook.emit('/share/link/create', {
      uid,
      upload: false,
      file: '-',
      contentName,
      fileSize: -1,
      uploadMode: 'p2p',
      tunnelType: 'default',
      link,
      e2ee: args.e2ee,
      pickupCode: pickupCode ?? null,
      pubkeyEnabled: false,
      user,
      filePath: '-',
    });
    say("Please share the link below with the person you'd like to share the file with.");
    say(link);
    say('');
    if (args.jsonPath !== undefined) say(`Sharing information saved to ${args.jsonPath}`);
    if (args.e2ee) await hook.emit('/e2ee/create', { e2eeEnabled: true, mode: 'p2p', algorithm: 'AES-256-GCM', chunkSize: 262144 });
    await hook.emit('/session/create', {
      uid,
      domain,
      maxDownloads: args.maxDownloads,
      timeout: args.timeoutSeconds,
      authEnabled,
      e2eeEnabled: args.e2ee,
      torEnabled: false,
      webrtcEnabled,
    });
    await hook.emit('/server/create', {
      uid,
      port,
      domain,
      maxDownloads: args.maxDownloads,
      timeout: args.timeoutSeconds,
      authUser: authEnabled ? args.authUser : null,
      authEnabled,
      e2eeEnabled: args.e2ee,
      torEnabled: false,
      webrtcEnabled,
      receipt: false,
      receiptConfirm: false,
      recipientAuth: {
        mode: pickupCode === undefined ? 'none' : 'pickup',
        pickupCode: pickupCode ?? null,
        publicKeyPems: [],
        challenges: {},
        challengeCiphertexts: {},
        recipientEmails: [],
        otpRequestUrl: null,
        otpVerifyUrl: null,
      },
    });
    if (args.timeoutSeconds > 0) {
      // Absolute deadline from server start; the real _startTimeoutChecker never resets it.
      timeoutTimer = setTimeout(() => void shutdown('timeout'), args.timeoutSeconds * 1000);
    }
    say('Please keep the application running so the recipient can download the file.');
    say('Press Ctrl+C to terminate the program when done.');
    if (authEnabled) say(`Authentication enabled - Username: ${args.authUser}`);
    if (pickupCode !== undefined) say(`Pickup code: ${pickupCode}`);
    await hook.emit('/share/available', { uid, name: contentName, fileSize: -1, shareMode: 'p2p', link, occurredAt: formatUtcIso() });
  } catch (error) {
    if (state.shuttingDown) return await exitCode;
    const message = error instanceof Error ? error.message : String(error);
    await hook.emit('/share/fail', { uid, error: message, occurredAt: formatUtcIso() });
    process.stdout.write(formatOops(message));
    server?.close();
    hook.close();
    return 1;
  }
  return await exitCode;
}
