import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

/** A fetched body as a checksum: status, byte count and SHA-256 (hex). */
export interface FetchedDigest {
  readonly status: number;
  /** The body's length: counted, or (when only a prefix was hashed) as the server's Content-Length declares it. */
  readonly bytes: number;
  /** SHA-256 of the whole body, or of its first `hashedBytes` when a limit cut it short. */
  readonly sha256: string;
  /** Bytes the hash covers (= bytes unless a limit cut the hash short). */
  readonly hashedBytes: number;
}

/**
 * GETs a URL and hashes its body; network errors come back as a message, never thrown. With
 * `limitBytes`, only the first that many bytes are hashed and the rest is not downloaded when the
 * server declares the length (Content-Length); without one the rest is read and counted, not kept.
 */
export async function fetchDigest(
  url: string,
  timeoutMs = 10_000,
  limitBytes = Number.POSITIVE_INFINITY,
): Promise<FetchedDigest | { error: string }> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error(`no complete answer within ${timeoutMs / 1000} s`)), timeoutMs);
  try {
    const response = await fetch(url, { signal: abort.signal, redirect: 'manual' });
    const declared = Number(response.headers.get('content-length') ?? Number.NaN);
    const hash = createHash('sha256');
    let hashed = 0;
    let counted = 0;
    let cut = false;
    if (response.body) {
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        counted += value.length;
        if (hashed < limitBytes) {
          const take = Math.min(value.length, limitBytes - hashed);
          hash.update(take === value.length ? value : value.subarray(0, take));
          hashed += take;
        }
        if (hashed >= limitBytes && Number.isFinite(declared) && counted < declared) {
          // The prefix is hashed and the server said how long the rest is: do not download it.
          cut = true;
          await reader.cancel().catch(() => undefined);
          break;
        }
      }
    }
    return {
      status: response.status,
      bytes: cut ? declared : counted,
      sha256: hash.digest('hex'),
      hashedBytes: hashed,
    };
  } catch (error) {
    const reason = abort.signal.aborted && abort.signal.reason instanceof Error ? abort.signal.reason : error;
    const cause = reason instanceof Error && reason.cause instanceof Error ? `: ${reason.cause.message}` : '';
    return { error: `${reason instanceof Error ? reason.message : String(reason)}${cause}` };
  } finally {
    clearTimeout(timer);
  }
}

/** A file on disk as a checksum: its size and the SHA-256 of its first `limitBytes` (all of it by default). */
export async function fileDigest(
  path: string,
  limitBytes = Number.POSITIVE_INFINITY,
): Promise<{ bytes: number; sha256: string; hashedBytes: number }> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(1024 * 1024, size)));
    let hashed = 0;
    for (;;) {
      const want = Math.min(buffer.length, limitBytes - hashed);
      if (want <= 0) break;
      const { bytesRead } = await handle.read(buffer, 0, want, hashed);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      hashed += bytesRead;
    }
    return { bytes: size, sha256: hash.digest('hex'), hashedBytes: hashed };
  } finally {
    await handle.close();
  }
}

/** SHA-256 (hex) of bytes or text. */
export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
