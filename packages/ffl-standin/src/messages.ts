/** Where ffl tells users to report problems (printed after every `Oops` line). */
export const SUPPORT_URL = 'https://github.com/nuwainfo/ffl/issues';

/** The four-line error block ffl prints on stdout for any failure (`bases/Utils.py` `sendException`). */
export function formatOops(message: string): string {
  return (
    `Oops, something went wrong: ${message}\n` +
    'Please try again or try later.\n' +
    '\n' +
    `If you still get the same problem, please contact us at ${SUPPORT_URL}.\n` +
    'We will fix the problem as soon as possible.\n'
  );
}

/** Python's `[Errno N] strerror: 'path'` rendering of a Node filesystem error. */
export function formatErrno(error: NodeJS.ErrnoException, path: string): string {
  const table: Record<string, [number, string]> = {
    ENOENT: [2, 'No such file or directory'],
    EACCES: [13, 'Permission denied'],
    EISDIR: [21, 'Is a directory'],
    ENOTDIR: [20, 'Not a directory'],
  };
  const known = error.code === undefined ? undefined : table[error.code];
  if (known === undefined) return `${error.message}`;
  return `[Errno ${known[0]}] ${known[1]}: '${path}'`;
}
