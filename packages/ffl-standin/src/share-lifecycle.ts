import { randomBytes } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { formatUtcIso } from './format-time.js';
import { say, type ShareSession } from './share-session.js';

/** Why a share ends without failing. */
export type ShutdownReason = 'max' | 'timeout' | 'interrupt';

function pythonRepr(className: string): string {
  return `<${className} object at 0x7f${randomBytes(5).toString('hex')}>`;
}

function writeJsonAtomically(path: string, content: Record<string, unknown>): void {
  const temporary = `${path}.tmp${process.pid}`;
  writeFileSync(temporary, `${JSON.stringify(content, null, 2)}\n`);
  renameSync(temporary, path);
}

/** The argument events every run emits first (§3). */
export async function emitArgumentEvents(session: ShareSession): Promise<void> {
  const { args, hook } = session;
  await hook.emit('/cli/arguments/global/options/get', { argPolicy: { exitCode: null } });
  await hook.emit('/cli/arguments/get', {
    argPolicy: { exitCode: null },
    proxyConfig: args.proxy === undefined ? null : { proxy: args.proxy },
    shareSubparser:
      "ArgumentParser(prog='FFL.py share', usage=None, description=None, formatter_class=<class 'argparse.HelpFormatter'>, conflict_handler='error', add_help=True)",
  });
}

/** The share's first events and lines, up to `Establishing tunnel connection...` (§1.1, §3). */
export async function announceShareStart(session: ShareSession): Promise<void> {
  const { args, hook, uid, contentName } = session;
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
  await hook.emit('/share/create', {
    uid,
    name: contentName,
    fileSize: 0,
    shareMode: 'p2p',
    occurredAt: formatUtcIso(),
  });
  if (args.e2ee) {
    say('🔐 End-to-end encryption enabled');
    say('');
  }
  await hook.emit('/share/start', { uid, occurredAt: formatUtcIso() });
  say(
    args.proxy === undefined
      ? 'Establishing tunnel connection...'
      : `Establishing tunnel connection via proxy ${args.proxy}...`,
  );
  say('');
  await hook.emit('/tunnel/start', { tunnelType: 'default', proxyInfo: args.proxy ?? null });
}

/** The tunnel could not be opened (FFL_STANDIN_TUNNEL_FAIL): events only; the caller prints the Oops block. */
export async function emitTunnelFailure(session: ShareSession): Promise<void> {
  await session.hook.emit('/tunnel/fail', {
    tunnelType: 'default',
    error: 'Cannot connect to any FastFileLink server.',
    willRetry: false,
    retryCount: 0,
  });
  await session.hook.emit('/share/fail', {
    uid: session.uid,
    error: 'Failed to connect server',
    occurredAt: formatUtcIso(),
  });
}

/**
 * Once the server listens on `port`: the tunnel and link events, the --json file, the link lines,
 * the session and server events, the --timeout deadline and the closing lines (§1.1, §3, §4).
 */
export async function publishShare(session: ShareSession, port: number): Promise<void> {
  const { args, hook, uid, contentName, pickupCode, authEnabled, webrtcEnabled, domain, link } = session;
  await hook.emit('/tunnel/create', {
    tunnelType: 'default',
    domain,
    tunnelLink: `http://${domain}/`,
    proxyInfo: args.proxy ?? null,
  });

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
  if (args.e2ee)
    await hook.emit('/e2ee/create', { e2eeEnabled: true, mode: 'p2p', algorithm: 'AES-256-GCM', chunkSize: 262144 });
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
    session.timeoutTimer = setTimeout(() => void shutdownShare(session, 'timeout'), args.timeoutSeconds * 1000);
  }
  say('Please keep the application running so the recipient can download the file.');
  say('Press Ctrl+C to terminate the program when done.');
  if (authEnabled) say(`Authentication enabled - Username: ${args.authUser}`);
  if (pickupCode !== undefined) say(`Pickup code: ${pickupCode}`);
  await hook.emit('/share/available', {
    uid,
    name: contentName,
    fileSize: -1,
    shareMode: 'p2p',
    link,
    occurredAt: formatUtcIso(),
  });
}

/** Ends the share once: closes the server, prints the reason's line, emits its events, exits 0. */
export async function shutdownShare(session: ShareSession, reason: ShutdownReason): Promise<void> {
  const { args, hook, uid, state, server } = session;
  if (state.shuttingDown) return;
  state.shuttingDown = true;
  if (session.timeoutTimer !== undefined) clearTimeout(session.timeoutTimer);
  server?.closeAllConnections();
  server?.close();
  const serverShutdown = {
    reason: 'normal',
    downloadCount: state.downloadCount,
    uptime: (Date.now() - session.startedAt) / 1000,
  };
  if (reason === 'max') {
    say(`Maximum downloads (${args.maxDownloads}) reached. Shutting down server.`);
    await hook.emit('/download/limit/reach', {
      uid,
      maxDownloads: args.maxDownloads,
      downloadCount: state.downloadCount,
    });
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
  session.source.removeCache();
  hook.close();
  session.resolveExit(0);
}

/** Ctrl+C shuts the share down; a second one exits at once, like FFL.py setupGracefulShutdown's os._exit(0). */
export function handleInterrupts(session: ShareSession): void {
  process.on('SIGINT', () => {
    if (session.state.interrupted) {
      session.state.hardExit = true;
      process.exit(0);
    }
    session.state.interrupted = true;
    void shutdownShare(session, 'interrupt');
  });
}

/** Counts a finished download; the last one --max-downloads allows ends the share. */
export function completeDownload(session: ShareSession): void {
  const { args, state } = session;
  state.downloadCount += 1;
  if (args.maxDownloads > 0 && state.downloadCount >= args.maxDownloads) void shutdownShare(session, 'max');
}
