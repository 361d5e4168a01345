import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { formatLocalSeconds } from './format-time.js';
import { ProgressBar } from './progress-bar.js';
import { checkPickup } from './share-access.js';
import { buildMetadataHeaders, parseRangeStart, sendGone } from './share-http.js';
import { completeDownload } from './share-lifecycle.js';
import { waitForReceipt } from './share-receipts.js';
import { say, type ShareSession } from './share-session.js';
import { streamLeg } from './share-stream.js';

/** GET /<uid>: one download over the relay (HTTP) path, from a Range offset for a resume (§2, §3). */
export async function serveRelayDownload(
  session: ShareSession,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const { args, hook, uid, contentName, state, switches } = session;
  if (!checkPickup(session, request, response)) return;
  const offset = parseRangeStart(request);
  if (!session.source.canServe(offset)) {
    sendGone(response);
    return;
  }
  say(`[${formatLocalSeconds()}] Downloading by user`);
  state.httpLegs += 1;
  const downloadId = randomUUID();
  const clientInfo = { userAgent: request.headers['user-agent'] ?? '', domain: request.headers.host ?? session.domain };
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
  response.writeHead(offset > 0 ? 206 : 200, { ...buildMetadataHeaders(session), 'FFL-Download-Id': downloadId });
  const legStart = Date.now();
  const dropAfter = !state.httpDropUsed && switches.httpDropAfterBytes > 0 ? switches.httpDropAfterBytes : 0;
  if (dropAfter > 0) state.httpDropUsed = true;
  const bar = new ProgressBar(process.stderr);
  const outcome = await streamLeg(
    session,
    response,
    offset,
    dropAfter,
    bar,
    (bytes, speed, elapsed) =>
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
  say(
    'File sending is complete. Please wait for the recipient to finish downloading before you close the application.',
  );
  await waitForReceipt(session, downloadId, 'http', args.forceRelay);
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
  completeDownload(session);
}
