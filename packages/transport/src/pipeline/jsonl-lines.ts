import type { Readable } from 'node:stream';

/**
 * Calls `onLine` for every complete line of a byte stream (a partial last line is held until its
 * newline or the end). Returns a promise that resolves when the stream ended or closed.
 */
export function readLines(stream: Readable, onLine: (line: string) => void): Promise<void> {
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (text: string) => {
    pending += text;
    let newline = pending.indexOf('\n');
    while (newline !== -1) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line.trim() !== '') onLine(line);
      newline = pending.indexOf('\n');
    }
  });
  return new Promise((resolve) => {
    const finish = (): void => {
      if (pending.trim() !== '') onLine(pending);
      pending = '';
      resolve();
    };
    stream.once('end', finish);
    stream.once('close', finish);
    stream.once('error', finish);
  });
}

/** Splits accumulated text into complete lines and the partial rest (tailing a growing file). */
export function splitCompleteLines(text: string): { lines: string[]; rest: string } {
  const lastNewline = text.lastIndexOf('\n');
  if (lastNewline === -1) return { lines: [], rest: text };
  return {
    lines: text
      .slice(0, lastNewline)
      .split('\n')
      .filter((line) => line.trim() !== ''),
    rest: text.slice(lastNewline + 1),
  };
}
