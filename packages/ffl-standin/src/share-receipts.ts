import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { readJsonBody, sendJson } from './share-http.js';
import type { ShareSession } from './share-session.js';

/**
 * Waits for the receiver's POST /complete for download `id`, at most the ack wait of its path (§8);
 * with `fullWait` (--force-relay, where POST /complete is forbidden) always the whole wait.
 */
export async function waitForReceipt(
  session: ShareSession,
  id: string,
  path: 'webrtc' | 'http',
  fullWait: boolean,
): Promise<void> {
  const { state, timing } = session;
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
}

/** POST /<uid>/complete: the receiver's receipt (/receipt/create), which ends a waitForReceipt early. */
export async function serveReceipt(
  session: ShareSession,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const body = await readJsonBody(request);
  // --force-relay forbids POST /complete, which is why the real tool waits its full ~5 s per download.
  if (session.args.forceRelay) {
    sendJson(response, 403, { error: 'Forbidden' });
    return;
  }
  const id = typeof body['downloadId'] === 'string' ? body['downloadId'] : '';
  const connectionType = body['connectionType'] === 'webrtc' ? 'webrtc' : 'http';
  await session.hook.emit('/receipt/create', {
    downloadId: id,
    connectionType,
    clientInfo: { userAgent: request.headers['user-agent'] ?? '', domain: request.headers.host ?? session.domain },
  });
  session.state.receiptsSeen.add(id);
  session.state.receipts.get(id)?.();
  sendJson(response, 200, { status: 'ok' });
}
