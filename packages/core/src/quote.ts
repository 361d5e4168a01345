import { isSecret, type Secret } from './secret.js';

/** An argv element: a plain string or a Secret (masked when displayed). */
export type Arg = string | Secret;

const SAFE = /^[A-Za-z0-9_\-+=.,/:@%^]+$/;

/**
 * The one shell-quoting function: quotes one word for a POSIX shell (what `ssh host -- CMD` feeds to
 * the remote user's shell). Secrets are quoted by their real value only when `reveal` is true.
 */
export function quoteWord(word: Arg, reveal = true): string {
  if (isSecret(word)) return reveal ? quoteWord(word.reveal()) : '***';
  if (word === '') return "''";
  if (SAFE.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Quotes an argv for a POSIX shell; see quoteWord. */
export function quoteArgv(argv: readonly Arg[], reveal = true): string {
  return argv.map((word) => quoteWord(word, reveal)).join(' ');
}

/** Renders an argv for humans and logs: secrets masked, words quoted as a shell would need them. */
export function displayArgv(argv: readonly Arg[]): string {
  return quoteArgv(argv, false);
}
