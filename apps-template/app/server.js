// The notes sample app: plain node:http, PostgreSQL via `pg`, files in the uploads volume,
// logs in the logs volume. Started by bin/start (through bin/lib/supervise.mjs), cwd = app folder.
import { createServer } from 'node:http';
import { access, constants, mkdir, readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSessionToken, hashSessionToken, verifyPassword } from './lib/auth.js';
import { loadConfig, MissingEnvironmentError } from './lib/config.js';
import * as db from './lib/db.js';
import { checkUploadName, resolveInside, sendFile, storeUpload } from './lib/files.js';
import { HttpError, parseCookies, readForm, redirect, send, sendHtml, sendJson } from './lib/http.js';
import { createLogger } from './lib/log.js';
import { createMaintenance } from './lib/maintenance.js';
import { renderHome, renderLogin, renderNotes, renderPublicNotes } from './lib/pages.js';

const appDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

let config;
try {
  config = loadConfig(appDir);
} catch (error) {
  // No logger yet if the config is unusable; still leave a line in the logs volume for the log scan.
  const fallback = createLogger(join(appDir, 'data', 'logs'));
  fallback.error(error instanceof MissingEnvironmentError ? error.message : `config error: ${error.message}`);
  await fallback.close();
  process.exit(78);
}

const log = createLogger(config.logDir, config.logLevel);
const pool = db.createPool(config.db);
pool.on('error', (error) => log.error(`database pool: ${error.message}`));
const cookieName = 'notes_session';
// bin/maintenance on|off flips this file; bin/start passes its path (outside the app folder).
const maintenance = createMaintenance({
  file: process.env.MAINTENANCE_FILE || join(appDir, '.state', 'maintenance'),
  log,
});

await mkdir(config.uploadsDir, { recursive: true }).catch((error) =>
  log.error(`uploads volume ${config.uploadsDir}: ${error.message}`),
);

/** Returns the signed-in user for the request, or undefined. */
async function currentUser(request) {
  const token = parseCookies(request).get(cookieName);
  if (!token) return undefined;
  return db.findSessionUser(pool, hashSessionToken(config.sessionSecret, token));
}

async function requireUser(request, response) {
  const user = await currentUser(request);
  if (!user) redirect(response, '/login');
  return user;
}

async function listUploads() {
  const names = await readdir(config.uploadsDir);
  return names.filter((name) => !name.startsWith('.')).sort();
}

async function handleHealth(response) {
  const problems = [];
  try {
    await db.pingDatabase(pool);
  } catch (error) {
    problems.push(`database: ${error.message}`);
  }
  try {
    await access(config.uploadsDir, constants.W_OK);
  } catch (error) {
    problems.push(`uploads: ${error.message}`);
  }
  if (problems.length > 0) {
    for (const problem of problems) log.error(`healthz: ${problem}`);
    sendJson(response, 503, { status: 'failing', problems, maintenance: maintenance.on });
  } else {
    sendJson(response, 200, { status: 'ok', database: 'ok', uploads: 'ok', maintenance: maintenance.on });
  }
}

/** Decodes a URL path segment; a malformed escape is the client's error, not ours. */
function decodePath(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new HttpError(400, 'malformed URL escape');
  }
}

async function route(request, response) {
  const url = new URL(request.url ?? '/', 'http://app.invalid');
  const path = url.pathname;
  const method = request.method ?? 'GET';

  if (path === '/healthz' && method === 'GET') return handleHealth(response);
  if (path === '/' && method === 'GET') return sendHtml(response, 200, renderHome(await currentUser(request)));
  if (path === '/notes-public' && method === 'GET')
    return sendHtml(response, 200, renderPublicNotes(await db.listNoteTitles(pool)));
  if (path.startsWith('/static/') && (method === 'GET' || method === 'HEAD')) {
    return sendFile(response, resolveInside(config.publicDir, decodePath(path.slice('/static/'.length))));
  }
  if (path.startsWith('/uploads/') && (method === 'GET' || method === 'HEAD')) {
    const name = checkUploadName(decodePath(path.slice('/uploads/'.length)));
    return sendFile(response, resolveInside(config.uploadsDir, name), { uploads: true });
  }
  if (path === '/login' && method === 'GET') return sendHtml(response, 200, renderLogin());
  if (path === '/login' && method === 'POST') {
    const form = await readForm(request);
    const username = form.get('username') ?? '';
    const user = await db.findUser(pool, username);
    // Verify against a dummy hash for unknown users too, so timing does not reveal which names exist.
    const stored =
      user?.password_hash ?? 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
    if (!(await verifyPassword(form.get('password') ?? '', stored)) || !user) {
      log.warn(`login failed for user ${JSON.stringify(username.slice(0, 64))} from ${request.socket.remoteAddress}`);
      return sendHtml(response, 401, renderLogin('Wrong username or password.'));
    }
    const token = createSessionToken();
    await db.createSession(pool, hashSessionToken(config.sessionSecret, token), user.id, config.sessionHours);
    log.info(`login ok for user ${user.username}`);
    return redirect(response, '/notes', {
      'Set-Cookie': `${cookieName}=${token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${config.sessionHours * 3600}`,
    });
  }
  if (path === '/logout' && method === 'POST') {
    const token = parseCookies(request).get(cookieName);
    if (token) await db.deleteSession(pool, hashSessionToken(config.sessionSecret, token));
    return redirect(response, '/login', { 'Set-Cookie': `${cookieName}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0` });
  }
  if (path === '/notes' && method === 'GET') {
    const user = await requireUser(request, response);
    if (!user) return;
    return sendHtml(response, 200, renderNotes(user, await db.listNotes(pool), await listUploads()));
  }
  if (path === '/notes' && method === 'POST') {
    const user = await requireUser(request, response);
    if (!user) return;
    const form = await readForm(request);
    const title = (form.get('title') ?? '').trim();
    if (title === '' || title.length > 200) throw new HttpError(400, 'a note needs a title of 1 to 200 characters');
    await db.addNote(pool, user.id, title, (form.get('body') ?? '').slice(0, 10000));
    return redirect(response, '/notes');
  }
  if (path === '/upload' && (method === 'POST' || method === 'PUT')) {
    const user = await currentUser(request);
    if (!user) throw new HttpError(401, 'log in first');
    const name = checkUploadName(String(request.headers['x-filename'] ?? url.searchParams.get('name') ?? ''));
    const bytes = await storeUpload(request, config.uploadsDir, name, config.maxUploadBytes);
    log.info(`upload ${name} (${bytes} bytes) by ${user.username}`);
    return sendJson(response, 201, { name, bytes, url: `/uploads/${encodeURIComponent(name)}` });
  }
  throw new HttpError(404, 'not found');
}

const server = createServer((request, response) => {
  const started = Date.now();
  response.on('finish', () => {
    log.access(request, response.statusCode, Date.now() - started, Number(response.getHeader('content-length') ?? 0));
  });
  if (!maintenance.admit(request, response)) return;
  route(request, response).catch((error) => {
    if (error instanceof HttpError) {
      if (!response.headersSent)
        send(response, error.status, `${error.message}\n`, { 'Content-Type': 'text/plain; charset=utf-8' });
      else response.destroy();
      if (request.readableEnded === false) request.resume();
      return;
    }
    // Real failures (EACCES on the volume, database down...) go to error.log with their code.
    log.error(`${request.method} ${request.url}: ${error.code ? `${error.code} ` : ''}${error.message}`);
    if (!response.headersSent) send(response, 500, 'internal error\n', { 'Content-Type': 'text/plain; charset=utf-8' });
    else response.destroy();
  });
});

server.on('error', (error) => {
  log.error(`cannot listen on ${config.bindAddress}:${config.port}: ${error.code ?? ''} ${error.message}`);
  process.exitCode = 1;
  shutdown('listen error');
});

let stopping = false;
async function shutdown(reason) {
  if (stopping) return;
  stopping = true;
  log.info(`stopping (${reason})`);
  const force = setTimeout(() => process.exit(1), 5000);
  force.unref();
  maintenance.stop();
  server.close();
  server.closeIdleConnections?.();
  await pool.end().catch(() => {});
  await log.close();
  process.exit();
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGHUP', () => log.reopen());

server.listen(config.port, config.bindAddress, () => {
  log.info(
    `listening on http://${config.bindAddress}:${config.port} (pid ${process.pid}, db ${config.db.user}@${config.db.host}:${config.db.port}/${config.db.database})`,
  );
});
