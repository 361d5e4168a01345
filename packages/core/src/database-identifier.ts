/**
 * What a database, role or user name may look like. Names end up in SQL text and in dump tools'
 * argv, so `deploy validate` and `deploy migrate` apply this one rule (validate must not accept a
 * name migrate then refuses).
 */
const DATABASE_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/;

/** The rule of DATABASE_IDENTIFIER in words, for messages that say what to write instead. */
export const DATABASE_IDENTIFIER_RULE =
  'start with a letter or _, then letters, digits, _, $ or -, at most 63 characters';

/** True when `name` is a plain identifier deploy can put into SQL and dump commands. */
export function isDatabaseIdentifier(name: string): boolean {
  return DATABASE_IDENTIFIER.test(name);
}
