// Password hashes are scrypt with a per-user salt, stored as scrypt$N$r$p$salt$hash (base64).
// Sessions are random tokens; the database keeps only an HMAC of each (keyed by SESSION_SECRET),
// so a leaked dump does not hand out live sessions.
import { createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

const PARAMS = { N: 16384, r: 8, p: 1 };
const KEY_LENGTH = 32;

function scryptAsync(password, salt, params) {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, KEY_LENGTH, { ...params, maxmem: 64 * 1024 * 1024 }, (error, key) =>
      error ? reject(error) : resolve(key),
    ),
  );
}

/** Hashes a password into the stored string form. */
export async function hashPassword(password) {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, PARAMS);
  return ['scrypt', PARAMS.N, PARAMS.r, PARAMS.p, salt.toString('base64'), key.toString('base64')].join('$');
}

/** Checks a password against a stored hash in constant time; false for malformed hashes. */
export async function verifyPassword(password, stored) {
  const parts = String(stored ?? '').split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [, n, r, p, salt, hash] = parts;
  const expected = Buffer.from(hash, 'base64');
  const key = await scryptAsync(password, Buffer.from(salt, 'base64'), { N: Number(n), r: Number(r), p: Number(p) });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** Returns a fresh session token for the cookie. */
export function createSessionToken() {
  return randomBytes(32).toString('base64url');
}

/** Returns the value stored in the sessions table for a token. */
export function hashSessionToken(secret, token) {
  return createHmac('sha256', secret).update(token).digest('hex');
}
