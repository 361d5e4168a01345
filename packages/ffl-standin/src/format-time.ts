/** Time formats ffl uses in events and output (Python `datetime` renderings). */

function pad(value: number, width = 2): string {
  return String(value).padStart(width, '0');
}

/** Local time as Python `datetime.now().isoformat()`: microseconds, no offset. */
export function formatLocalIso(): string {
  // performance gives sub-millisecond precision, so consecutive events keep increasing timestamps.
  const epochMicros = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  const date = new Date(Math.floor(epochMicros / 1000));
  const micros = pad(epochMicros % 1_000_000, 6);
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${micros}`
  );
}

/** UTC time as Python `datetime.now(timezone.utc).isoformat()`. */
export function formatUtcIso(date = new Date()): string {
  return date.toISOString().replace('Z', '000+00:00');
}

/** `YYYY-MM-DD HH:MM:SS` local time, as in `/download/create.timestamp` and `Downloading by user` lines. */
export function formatLocalSeconds(date = new Date()): string {
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    ` ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** `stdin-YYYYMMDD-HHMMSS.bin`, the default download name of a stdin share. */
export function formatStdinName(date = new Date()): string {
  return (
    `stdin-${date.getFullYear()}${pad(date.getMonth() + 1)}${pad(date.getDate())}` +
    `-${pad(date.getHours())}${pad(date.getMinutes())}${pad(date.getSeconds())}.bin`
  );
}

/** Human size as ffl prints it in `Finish transfer <size>` lines. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(2)} ${units[unit]}`;
}
