import { inspect } from 'node:util';

const MASK = '***';

/** A value that must never be printed: renders as `***` in strings, JSON, inspect and logs. */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  /** Returns the real value; call only where the value leaves us by stdin, env or a 0600 file. */
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return MASK;
  }
  toJSON(): string {
    return MASK;
  }
  [inspect.custom](): string {
    return MASK;
  }
}

/** Wraps a string as a Secret. */
export function secret(value: string): Secret {
  return new Secret(value);
}

/** True when the value is a Secret. */
export function isSecret(value: unknown): value is Secret {
  return value instanceof Secret;
}

/** Returns the real string of a plain string or a Secret. */
export function revealValue(value: string | Secret): string {
  return isSecret(value) ? value.reveal() : value;
}

/** Replaces every occurrence of the given secret values in text by `***` (for stderr tails of tools). */
export function redact(text: string, secrets: readonly (Secret | string)[]): string {
  let out = text;
  for (const s of secrets) {
    const raw = revealValue(s);
    if (raw.length >= 3) out = out.split(raw).join(MASK);
  }
  return out;
}
