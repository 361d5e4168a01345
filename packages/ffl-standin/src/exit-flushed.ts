/**
 * Exits once stdout and stderr are flushed: writes to a pipe are asynchronous in Node, and a reader
 * slower than us (a loaded machine) would otherwise lose the tail, e.g. the trailing
 * `File transfer completed` line or the `Oops` block. Python flushes both on exit.
 */
export function exitFlushed(code: number): void {
  let pending = 2;
  const done = (): void => {
    pending -= 1;
    if (pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}
