// Static files and uploads. Names are checked against a strict pattern and paths are resolved
// and re-checked against their root, so `..`, absolute paths and dotfiles never leave the folder.
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, stat, unlink } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { HttpError } from './http.js';

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

// Only types a browser cannot execute are served as themselves; everything else is a download.
const TYPES = {
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.pdf': 'application/pdf',
  '.json': 'application/json',
  '.ico': 'image/x-icon',
};
const UPLOAD_TYPES = new Set(['.txt', '.png', '.jpg', '.jpeg', '.gif', '.pdf', '.json']);

/** Returns the upload name if it is safe to use as a file name, else throws 400. */
export function checkUploadName(name) {
  if (typeof name !== 'string' || !SAFE_NAME.test(name) || name.includes('..')) {
    throw new HttpError(
      400,
      'bad file name: use letters, digits, dot, dash, underscore (max 128), not starting with a dot',
    );
  }
  return name;
}

/** Resolves `relative` under `root`; throws 404 if it escapes the root or names a dotfile. */
export function resolveInside(root, relative) {
  const segments = relative.split('/').filter((segment) => segment !== '');
  if (segments.length === 0 || segments.some((segment) => segment.startsWith('.') || !SAFE_NAME.test(segment))) {
    throw new HttpError(404, 'not found');
  }
  const rootPath = resolve(root);
  const full = resolve(rootPath, ...segments);
  if (!full.startsWith(rootPath + sep)) throw new HttpError(404, 'not found');
  return full;
}

/** Streams a regular file; 404 when absent or not a regular file. */
export async function sendFile(response, path, { download = false, uploads = false } = {}) {
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') throw new HttpError(404, 'not found');
    throw error;
  }
  if (!info.isFile()) throw new HttpError(404, 'not found');
  const extension = extname(path).toLowerCase();
  const allowed = uploads ? UPLOAD_TYPES.has(extension) : extension in TYPES;
  const headers = {
    'Content-Type': allowed ? TYPES[extension] : 'application/octet-stream',
    'Content-Length': info.size,
    'Last-Modified': info.mtime.toUTCString(),
    'X-Content-Type-Options': 'nosniff',
  };
  if (download || !allowed) headers['Content-Disposition'] = 'attachment';
  // Open before writing the head so a permission error becomes a 500, not a truncated 200.
  const stream = createReadStream(path);
  await new Promise((resolveOpen, rejectOpen) => {
    stream.once('open', resolveOpen);
    stream.once('error', rejectOpen);
  });
  for (const [name, value] of Object.entries(headers)) response.setHeader(name, value);
  response.writeHead(200);
  await pipeline(stream, response);
  return info.size;
}

/** Streams a request body into uploads/<name> via a temp file and rename; returns bytes stored. */
export async function storeUpload(request, uploadsDir, name, maxBytes) {
  const declared = Number(request.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes)
    throw new HttpError(413, `upload larger than ${maxBytes} bytes`);
  const target = join(uploadsDir, checkUploadName(name));
  const temp = join(uploadsDir, `.upload-${randomBytes(6).toString('hex')}`);
  let size = 0;
  const counter = async function* (source) {
    for await (const chunk of source) {
      size += chunk.length;
      if (size > maxBytes) throw new HttpError(413, `upload larger than ${maxBytes} bytes`);
      yield chunk;
    }
  };
  try {
    await pipeline(request, counter, createWriteStream(temp, { flags: 'wx', mode: 0o640 }));
    await rename(temp, target);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
  return size;
}
