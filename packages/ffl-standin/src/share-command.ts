import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatUtcIso } from './format-time.js';
import type { HookSink } from './hook-sink.js';
import { formatOops } from './messages.js';
import type { ShareArguments } from './parse-argv.js';
import { sendJson } from './share-http.js';
import {
  announceShareStart,
  emitArgumentEvents,
  emitTunnelFailure,
  handleInterrupts,
  publishShare,
} from './share-lifecycle.js';
import { routeShareRequest } from './share-routes.js';
import { createShareSession, type ShareSession } from './share-session.js';
import { ensureTunnelsFile, openShareDatabase, resolveStorageDirectory } from './storage.js';

/**
 * Runs `ffl share -` against loopback: prints §1.1, emits §3 events, serves the simulated direct
 * (WebRTC) and relay (HTTP) paths, and resolves with the exit code once the share ends.
 *
 * The parts: share-session.ts (arguments, switches, state), share-lifecycle.ts (start, link,
 * shutdown and their events and lines), share-routes.ts with share-relay.ts, share-direct.ts and
 * share-receipts.ts (download serving), share-stream.ts (one paced leg and its progress),
 * share-access.ts (pickup code, basic auth), share-http.ts (HTTP helpers).
 */
export async function runShare(args: ShareArguments, hook: HookSink, env: NodeJS.ProcessEnv): Promise<number> {
  const session = createShareSession(args, hook, env);
  await emitArgumentEvents(session);
  openHistory(session);
  handleInterrupts(session);
  try {
    await announceShareStart(session);
    const linkDelay = session.timing.linkDelayMs();
    if (linkDelay > 0) await sleep(linkDelay);
    if (session.state.shuttingDown) return await session.exitCode;
    if (session.switches.tunnelFail) {
      await emitTunnelFailure(session);
      process.stdout.write(formatOops('Failed to connect server'));
      hook.close();
      return 1;
    }
    const port = await listen(session);
    session.domain = `127.0.0.1:${port}`;
    session.link = `http://${session.domain}/${session.uid}`;
    await publishShare(session, port);
  } catch (error) {
    if (session.state.shuttingDown) return await session.exitCode;
    const message = error instanceof Error ? error.message : String(error);
    await hook.emit('/share/fail', { uid: session.uid, error: message, occurredAt: formatUtcIso() });
    process.stdout.write(formatOops(message));
    session.server?.close();
    hook.close();
    return 1;
  }
  return await session.exitCode;
}

/** Opens the storage folder's tunnels file and share database, closed on a clean exit. */
function openHistory(session: ShareSession): void {
  const storage = resolveStorageDirectory(session.env);
  ensureTunnelsFile(storage, session.args.preferredTunnel);
  const history = openShareDatabase(storage);
  // A clean exit closes the database (SQLite removes -wal/-shm); SIGTERM/SIGKILL and the second
  // Ctrl+C (os._exit) leave them, as reference §8 observed after SIGKILL.
  process.on('exit', () => {
    if (!session.state.hardExit) history.close();
  });
}

/** Starts the share's HTTP server on 127.0.0.1 (--port or any) and resolves with its port. */
async function listen(session: ShareSession): Promise<number> {
  const httpServer = createServer((request, response) => {
    routeShareRequest(session, request, response).catch((error: unknown) => {
      if (!response.headersSent)
        sendJson(response, 500, { error: error instanceof Error ? error.message : String(error) });
      else response.destroy();
    });
  });
  session.server = httpServer;
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(session.args.port ?? 0, '127.0.0.1', () => resolve());
  });
  return (httpServer.address() as AddressInfo).port;
}
