/** Formats a byte count with binary units: 1536 -> "1.5 KiB". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Formats milliseconds as "850 ms", "12.3 s" or "4m05s". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes}m${String(seconds).padStart(2, '0')}s`;
}

/**
 * How a process ended, for messages: `exit 3`, or `killed by SIGTERM` when a signal ended it (its
 * exit code is then null: never print `exit null`).
 */
export function describeExit(result: { readonly exitCode: number | null; readonly signal?: string | null }): string {
  if (result.signal != null) return `killed by ${result.signal}`;
  if (result.exitCode === null) return 'ended without an exit status';
  return `exit ${result.exitCode}`;
}
