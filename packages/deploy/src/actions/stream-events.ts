import { formatBytes, formatDuration, type EventBus } from '@deploykit/core';
import type { StreamEvent } from '@deploykit/transport';

/** A one-line human text for a stream event (progress lines, failures). */
export function describeStreamEvent(event: StreamEvent): string {
  switch (event.kind) {
    case 'ready':
      return `${event.stream}: receiver ready`;
    case 'connected':
      return `${event.stream}: connected`;
    case 'path':
      return `${event.stream}: path ${event.path}`;
    case 'progress': {
      const eta = event.etaMs === undefined ? '' : `, ETA ${formatDuration(event.etaMs)}`;
      return `${event.stream}: ${event.side} ${formatBytes(event.bytes)} at ${formatBytes(event.rate)}/s${eta}`;
    }
    case 'stalled':
      return `${event.stream}: stalled, no byte moved for ${formatDuration(event.idleMs)}`;
    case 'retry':
      return `${event.stream}: retry ${event.attempt} after: ${event.reason}`;
    case 'received':
      return `${event.stream}: all ${formatBytes(event.bytes)} received, trailer checked; finishing`;
    case 'done':
      return `${event.stream}: done, ${formatBytes(event.bytes)} in ${formatDuration(event.elapsedMs)} (sha256 ${event.sha256.slice(0, 12)}...)`;
    case 'failed':
      return `${event.stream}: ${event.stage} failed: ${event.message}`;
  }
}

/**
 * Publishes a stream event on the bus as `stream.<kind>`; progress goes out at debug level (the
 * progress display shows it) except every `quietEveryMs` when no TTY display runs.
 */
export function createStreamEventPublisher(
  bus: EventBus,
  options: { quietProgressEveryMs?: number } = {},
): (event: StreamEvent) => void {
  let lastQuiet = 0;
  return (event) => {
    let level: 'debug' | 'info' | 'warn' | 'error' = 'info';
    if (event.kind === 'progress') {
      level = 'debug';
      if (options.quietProgressEveryMs !== undefined && Date.now() - lastQuiet >= options.quietProgressEveryMs) {
        lastQuiet = Date.now();
        level = 'info';
      }
    } else if (event.kind === 'failed') level = 'error';
    else if (event.kind === 'stalled' || event.kind === 'retry') level = 'warn';
    const { kind, stream, ...data } = event;
    bus.emit(`stream.${kind}`, { level, stream, message: describeStreamEvent(event), data });
  };
}

/** A TTY progress line on stderr, rewritten in place: `volumes  12.0 MiB  4.0 MiB/s  ETA 3 s`. */
export function createTtyProgress(out: NodeJS.WriteStream): {
  update: (event: StreamEvent) => void;
  clear: () => void;
} {
  let shown = false;
  return {
    update(event) {
      if (event.kind !== 'progress' || event.side !== 'producer') {
        if (shown && event.kind !== 'progress') {
          out.write('\r\x1b[K');
          shown = false;
        }
        return;
      }
      const eta = event.etaMs === undefined ? '' : `  ETA ${formatDuration(event.etaMs)}`;
      out.write(`\r\x1b[K${event.stream}  ${formatBytes(event.bytes)}  ${formatBytes(event.rate)}/s${eta}`);
      shown = true;
    },
    clear() {
      if (shown) out.write('\r\x1b[K');
      shown = false;
    },
  };
}
