import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkBasicAuth } from './share-access.js';
import { serveDataChannel, serveOffer } from './share-direct.js';
import { buildMetadataHeaders, readJsonBody, sendJson } from './share-http.js';
import { serveReceipt } from './share-receipts.js';
import { serveRelayDownload } from './share-relay.js';
import type { ShareSession } from './share-session.js';

/** Routes one request to the share's server: the link, offer, data channel, receipt, checksum, status, E2EE (§2). */
export async function routeShareRequest(
  session: ShareSession,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const { args, uid, state, server } = session;
  await session.hook.registerEndpoints({
    uid,
    domain: session.domain,
    port: server === undefined ? null : (server.address() as AddressInfo).port,
    fileName: session.contentName,
    fileSize: null,
    authEnabled: session.authEnabled,
    defaultWebRTC: session.webrtcEnabled,
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
  if (!(await checkBasicAuth(session, request, response))) return;
  const route = segments.slice(1).join('/');
  const method = request.method ?? 'GET';
  if (route === '' && method === 'HEAD') {
    response.writeHead(200, buildMetadataHeaders(session));
    response.end();
  } else if (route === '' && method === 'GET') {
    await serveRelayDownload(session, request, response);
  } else if (route === 'offer' && method === 'POST') {
    await serveOffer(session, request, response);
  } else if (segments[1] === 'webrtc' && segments[2] !== undefined && method === 'GET') {
    await serveDataChannel(session, request, response, segments[2]);
  } else if (route === 'complete' && method === 'POST') {
    await serveReceipt(session, request, response);
  } else if (route === 'checksum' && method === 'GET') {
    sendJson(
      response,
      200,
      state.checksum === undefined
        ? { ready: false }
        : {
            ready: true,
            algorithm: 'blake2b',
            checksum: state.checksum.checksum,
            encoding: 'hex',
            size: state.checksum.size,
            transport: state.checksum.transport,
            e2ee: args.e2ee,
            updatedAt: state.checksum.updatedAt,
          },
    );
  } else if (route === 'status' && method === 'GET') {
    sendJson(response, 200, { status: 'ok', uid, downloadCount: state.downloadCount });
  } else if (route === 'e2ee/manifest' && method === 'GET' && args.e2ee) {
    sendJson(response, 200, {
      algorithm: 'AES-256-GCM',
      simulatedWith: 'aes-256-ctr',
      chunkSize: 262144,
      fileName: session.contentName,
      fileSize: -1,
    });
  } else if (route === 'e2ee/init' && method === 'POST' && args.e2ee) {
    await readJsonBody(request);
    sendJson(response, 200, { key: session.e2eeKey.toString('base64'), nonce: session.e2eeNonce.toString('base64') });
  } else {
    sendJson(response, 404, { error: 'Not found' });
  }
}
