import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatLocalIso, formatSize } from './format-time.js';
import { ProgressBar } from './progress-bar.js';
import { checkPickup } from './share-access.js';
import { buildMetadataHeaders, sendGone, sendJson } from './share-http.js';
import { completeDownload } from './share-lifecycle.js';
import { waitForReceipt } from './share-receipts.js';
import { say, type ShareSession } from './share-session.js';
import { streamLeg } from './share-stream.js';

/** POST /<uid>/offer: the simulated WebRTC offer, a peer id the data channel is fetched with. */
export async function serveOffer(
  session: ShareSession,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  if (!session.webrtcEnabled) {
    sendJson(response, 403, { error: 'WebRTC disabled' });
    return;
  }
  if (!checkPickup(session, request, response)) return;
  const peerId = randomBytes(16).toString('hex');
  session.state.peers.add(peerId);
  await session.hook.emit('/webrtc/offer/create', { peerId, sessionId: null, timestamp: formatLocalIso() });
  sendJson(response, 200, { peerId, type: 'offer', sdp: 'v=0 (simulated by the deploykit ffl stand-in)' });
}

/**
 * GET /<uid>/webrtc/<peer>: one download over the simulated direct (WebRTC) path, with the real
 * tool's send-buffer stall when the receiver goes away and its teardown stall after completion (§8).
 */
export async function serveDataChannel(
  session: ShareSession,
  request: IncomingMessage,
  response: ServerResponse,
  peerId: string,
): Promise<void> {
  const { args, hook, uid, contentName, state, switches, timing } = session;
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
  if (!session.source.canServe(offset)) {
    await hook.emit('/download/fail', {
      shareId: uid,
      downloadId: peerId,
      reason: 'unknown',
      error: 'Stdin has already been consumed and caching failed',
      bytesTransferred: 0,
      totalBytes: null,
      duration: 0,
    });
    sendGone(response);
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
  response.writeHead(200, { ...buildMetadataHeaders(session), 'FFL-Peer-Id': peerId });
  const legStart = Date.now();
  const dropAfter = !state.webrtcDropUsed && switches.webrtcDropAfterBytes > 0 ? switches.webrtcDropAfterBytes : 0;
  if (dropAfter > 0) state.webrtcDropUsed = true;
  let plainBytes = offset;
  const bar = new ProgressBar(process.stderr, ' P2P direct');
  const outcome = await streamLeg(
    session,
    response,
    offset,
    dropAfter,
    bar,
    (bytes, speed) => {
      plainBytes = bytes;
      return hook.emit('/webrtc/transfer/progress', {
        shareId: uid,
        peerId,
        bytesTransferred: bytes,
        totalBytes: null,
        percentage: 0,
        speed,
      });
    },
    'webrtc',
  );
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
  say(
    `Finish transfer ${formatSize(plainBytes)} for [#${peerId.slice(0, 5)}], please wait for the recipient to finish downloading before you close the application..`,
  );
  await waitForReceipt(session, peerId, 'webrtc', false);
  // The WebRTC teardown stall: the real sender exits 4-6 s after /webrtc/transfer/complete.
  await sleep(timing.teardownMs());
  if (state.shuttingDown) return;
  completeDownload(session);
}
