import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ShareSession } from './share-session.js';

/** Body of the 410 answer once a `--stdin-cache off` stream left the replay window (reference §5). */
export const GONE_BODY = 'This resource has already been downloaded and is no longer available (single-use only).';

/** Answers with a JSON body. */
export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'Content-Type': 'application/json' });
  response.end(JSON.stringify(body));
}

/** Answers 410 with GONE_BODY. */
export function sendGone(response: ServerResponse): void {
  response.writeHead(410, { 'Content-Type': 'text/plain' });
  response.end(GONE_BODY);
}

/** Reads a JSON object body; `{}` for anything else. */
export async function readJsonBody(request: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  try {
    const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** The start of a `Range: bytes=N-` header, 0 without one. */
export function parseRangeStart(request: IncomingMessage): number {
  const match = /^bytes=(\d+)-$/.exec(request.headers.range ?? '');
  return match?.[1] === undefined ? 0 : Number(match[1]);
}

/** The headers of a download answer (HEAD, relay GET, data channel). */
export function buildMetadataHeaders(session: ShareSession): Record<string, string> {
  return {
    'Content-Type': 'application/octet-stream',
    'Content-Disposition': `attachment; filename="${session.contentName}"`,
    'FFL-Mode': `${session.webrtcEnabled ? 'P2P' : 'HTTP'}${session.args.e2ee ? '+E2EE' : ''}`,
    'FFL-FileSize': '-1',
  };
}

/** Resolves once the response drained or closed. */
export function waitForDrainOrClose(response: ServerResponse): Promise<void> {
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
