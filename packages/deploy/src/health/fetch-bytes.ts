import { createHash } from 'node:crypto';

/** A fetched body as a checksum: status, byte count and SHA-256 (hex). */
export interface FetchedDigest {
  readonly status: number;
  readonly bytes: number;
  readonly sha256: string;
}

/**
 * GETs a URL and hashes its body as it arrives (a sampled upload may be hundreds of MiB: holding it
 * whole took `deploy receive` to 1.1 GiB RSS); network errors come back as a message, never thrown.
 */
export async function fetchDigest(url: string, timeoutMs = 10_000): Promise<FetchedDigest | { error: string }> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    const hash = createHash('sha256');
    let bytes = 0;
    if (response.body !== null) {
      for await (const chunk of response.body) {
        hash.update(chunk);
        bytes += chunk.length;
      }
    }
    return { status: response.status, bytes, sha256: hash.digest('hex') };
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return { error: `${error instanceof Error ? error.message : String(error)}${cause}` };
  }
}

/** SHA-256 (hex) of bytes or text. */
export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
