import { open } from 'node:fs/promises';
import type { StreamPath } from '../contract.js';
import { splitCompleteLines } from '../pipeline/jsonl-lines.js';

/** One ffl hook event (JSONL envelope, reference/ffl.md §3.2). */
export interface FflHookEvent {
  readonly event: string;
  readonly timestamp?: string;
  readonly data: Readonly<Record<string, unknown>>;
}

/** What an ffl hook event means for the stream, in our vocabulary. */
export type FflSignal =
  | { readonly kind: 'link'; readonly link: string; readonly pickupCode?: string }
  | { readonly kind: 'connected' }
  | { readonly kind: 'path'; readonly path: Extract<StreamPath, 'direct' | 'relay'> }
  | { readonly kind: 'progress'; readonly bytes: number; readonly rate: number }
  | { readonly kind: 'delivered' }
  | { readonly kind: 'failed'; readonly code: string; readonly message: string };

/** Parses one hook line; undefined for partial or foreign lines. */
export function parseFflHookLine(line: string): FflHookEvent | undefined {
  try {
    const value = JSON.parse(line) as { event?: unknown; data?: unknown };
    if (typeof value.event !== 'string') return undefined;
    const data = typeof value.data === 'object' && value.data !== null ? (value.data as Record<string, unknown>) : {};
    return { event: value.event, data };
  } catch {
    return undefined;
  }
}

function numberField(data: Readonly<Record<string, unknown>>, key: string): number {
  const value = data[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function textField(data: Readonly<Record<string, unknown>>, key: string): string {
  const value = data[key];
  return typeof value === 'string' ? value : '';
}

/**
 * Maps an ffl hook event onto our signals (reference/ffl.md §3.5): the link, the first receiver
 * contact, direct (/webrtc/*) vs relay (/download/* over http), bytes, delivery (a receipt or the
 * download limit reached) and failures. Unknown events map to nothing.
 */
export function mapFflHookEvent(event: FflHookEvent): FflSignal[] {
  const data = event.data;
  switch (event.event) {
    case '/share/link/create':
      // The pickup code ffl generated itself (we never put one in its argv) comes with the link.
      return textField(data, 'link') === ''
        ? []
        : [
            {
              kind: 'link',
              link: textField(data, 'link'),
              ...(textField(data, 'pickupCode') !== '' ? { pickupCode: textField(data, 'pickupCode') } : {}),
            },
          ];
    case '/webrtc/offer/create':
      return [{ kind: 'connected' }];
    case '/webrtc/transfer/create':
      return [{ kind: 'path', path: 'direct' }];
    case '/download/create':
      return textField(data, 'connectionType') === 'http'
        ? [{ kind: 'connected' }, { kind: 'path', path: 'relay' }]
        : [{ kind: 'connected' }];
    case '/webrtc/transfer/progress':
    case '/webrtc/transfer/complete':
      return [
        {
          kind: 'progress',
          bytes: numberField(data, 'bytesTransferred'),
          rate: numberField(data, 'speed') || numberField(data, 'averageSpeed'),
        },
      ];
    case '/download/progress':
      return [{ kind: 'progress', bytes: numberField(data, 'bytesTransferred'), rate: numberField(data, 'speed') }];
    case '/receipt/create':
    case '/download/limit/reach':
      return [{ kind: 'delivered' }];
    case '/download/fail':
      return [
        {
          kind: 'failed',
          code: 'FFL_LEG_FAILED',
          message: `ffl download leg failed: ${textField(data, 'error') || textField(data, 'reason') || 'unknown reason'}`,
        },
      ];
    case '/tunnel/fail':
      return [
        {
          kind: 'failed',
          code: 'FFL_TUNNEL_FAILED',
          message: `ffl could not open its tunnel: ${textField(data, 'error') || 'unknown reason'}`,
        },
      ];
    case '/share/fail':
      return [
        {
          kind: 'failed',
          code: 'FFL_SHARE_FAILED',
          message: `ffl share failed: ${textField(data, 'error') || 'unknown reason'}`,
        },
      ];
    case '/session/timeout':
      return [{ kind: 'failed', code: 'FFL_SESSION_TIMEOUT', message: 'ffl timed out waiting for the receiver' }];
    default:
      return [];
  }
}

/**
 * Follows an ffl hook file that ffl appends to (JSONL, partial last line tolerated), calling
 * `onEvent` per complete event. Returns a stop function that reads what is left once more.
 */
export function tailFflHookFile(
  path: string,
  onEvent: (event: FflHookEvent) => void,
  intervalMs = 200,
): () => Promise<void> {
  let offset = 0;
  let rest = '';
  let reading: Promise<void> = Promise.resolve();
  const readMore = async (): Promise<void> => {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(path, 'r');
    } catch {
      return; // not created yet
    }
    try {
      for (;;) {
        const buffer = Buffer.alloc(64 * 1024);
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        const split = splitCompleteLines(rest + buffer.subarray(0, bytesRead).toString('utf8'));
        rest = split.rest;
        for (const line of split.lines) {
          const event = parseFflHookLine(line);
          if (event !== undefined) onEvent(event);
        }
      }
    } finally {
      await handle.close();
    }
  };
  const timer = setInterval(() => {
    reading = reading.then(readMore);
  }, intervalMs);
  return async () => {
    clearInterval(timer);
    reading = reading.then(readMore);
    await reading;
  };
}
