import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { formatLocalIso } from './format-time.js';
import type { ShareSession } from './share-session.js';

const PICKUP_MAX_FAILURES = 5;

/** Checks the pickup code header (X-FFL-Pickup); answers 401, or 429 while locked after 5 failures. */
export function checkPickup(session: ShareSession, request: IncomingMessage, response: ServerResponse): boolean {
  const { pickupCode, state, switches } = session;
  if (pickupCode === undefined) return true;
  if (Date.now() < state.pickupLockedUntil) {
    response.writeHead(429, {
      'Retry-After': String(Math.ceil(switches.pickupLockMs / 1000)),
      'Content-Type': 'text/plain',
    });
    response.end('Too many failed pickup attempts');
    return false;
  }
  const supplied = request.headers['x-ffl-pickup'];
  if (
    typeof supplied === 'string' &&
    supplied.length === pickupCode.length &&
    timingSafeEqual(Buffer.from(supplied), Buffer.from(pickupCode))
  ) {
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
}

/** Checks --auth-user/--auth-password (HTTP basic), emitting the /auth/* events; answers 401. */
export async function checkBasicAuth(
  session: ShareSession,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<boolean> {
  const { args, hook } = session;
  if (!session.authEnabled) return true;
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
}
