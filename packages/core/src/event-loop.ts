/**
 * Resolves once the event loop has gone through its poll phase twice: whatever I/O is already waiting
 * in the kernel (a pipe's last bytes and EOF) has been read by then. A wall-clock grace alone is not
 * enough on a loaded machine: when the loop was blocked past a timer's deadline, the timer runs before
 * the poll phase that would have delivered the data it was waiting for.
 */
export function afterPendingIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

/** True when `promise` settles within `ms` milliseconds, I/O already waiting when they ran out included. */
export async function settlesWithinIo(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  const watched = promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  try {
    await Promise.race([watched, timeout]);
    if (!settled) await afterPendingIo();
    return settled;
  } finally {
    clearTimeout(timer);
  }
}
