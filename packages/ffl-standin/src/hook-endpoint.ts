import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FflHookEvent } from './read-hook-events.js';

/** Behaviour of a test HTTP hook receiver. */
export interface HookEndpointOptions {
  /** Status for event POSTs (ffl needs 200; the official bindings answer 204). Default 200. */
  readonly status?: number;
  /** Reply to `/hook/server/endpoints/register`. Default `{"status":"ok"}` with 200. */
  readonly registrationBody?: string;
}

/** A running loopback hook receiver; dispose to stop it. */
export interface HookEndpoint extends AsyncDisposable {
  readonly url: string;
  readonly events: FflHookEvent[];
  close(): Promise<void>;
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Starts an HTTP hook endpoint on 127.0.0.1 that records every POSTed event and answers with `options.status`. */
export async function startHookEndpoint(options: HookEndpointOptions = {}): Promise<HookEndpoint> {
  const events: FflHookEvent[] = [];
  const server = createServer((request, response) => {
    readBody(request).then(
      (body) => {
        const event = JSON.parse(body) as FflHookEvent;
        events.push(event);
        if (event.event === '/hook/server/endpoints/register') {
          response.writeHead(200, { 'Content-Type': 'application/json' });
          response.end(options.registrationBody ?? '{"status": "ok"}');
          return;
        }
        response.writeHead(options.status ?? 200, { 'Content-Type': 'application/json' });
        response.end('{"status": "ok"}');
      },
      () => response.destroy(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const close = async (): Promise<void> => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { url: `http://127.0.0.1:${port}/hook`, events, close, [Symbol.asyncDispose]: close };
}
