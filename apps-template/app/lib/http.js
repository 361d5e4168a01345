// Small request/response helpers for plain node:http.

/** Thrown by handlers to answer with a status and a short text. */
export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Escapes text for HTML element and attribute content. */
export function escapeHtml(value) {
  return String(value).replace(
    /[&<>"']/g,
    (char) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[char],
  );
}

/** Sends a complete response body. */
export function send(response, status, body, headers = {}) {
  const buffer = Buffer.isBuffer(body) ? body : Buffer.from(String(body));
  response.writeHead(status, { 'Content-Length': buffer.length, 'X-Content-Type-Options': 'nosniff', ...headers });
  response.end(buffer);
}

/** Sends an HTML page. */
export function sendHtml(response, status, html, headers = {}) {
  send(response, status, html, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
}

/** Sends a JSON document. */
export function sendJson(response, status, value) {
  send(response, status, `${JSON.stringify(value)}\n`, {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
  });
}

/** Redirects with 303 (after a form POST the browser follows with GET). */
export function redirect(response, location, headers = {}) {
  send(response, 303, '', { Location: location, ...headers });
}

/** Reads a small request body into a string; 413 beyond `limit` bytes. */
export async function readSmallBody(request, limit = 64 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of request) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, 'request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads an application/x-www-form-urlencoded body into a URLSearchParams. */
export async function readForm(request) {
  const type = String(request.headers['content-type'] ?? '');
  if (!type.startsWith('application/x-www-form-urlencoded')) throw new HttpError(415, 'expected a form post');
  return new URLSearchParams(await readSmallBody(request));
}

/** Parses the Cookie header into a Map. */
export function parseCookies(request) {
  const cookies = new Map();
  for (const part of String(request.headers.cookie ?? '').split(';')) {
    const equals = part.indexOf('=');
    if (equals > 0) cookies.set(part.slice(0, equals).trim(), decodeURIComponent(part.slice(equals + 1).trim()));
  }
  return cookies;
}
