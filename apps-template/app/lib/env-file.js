// Reads KEY=value files (config/app.env, secrets/app.env) the same way bin/lib/common.sh does:
// no shell evaluation, `#` comments, optional single or double quotes around the value.
import { readFileSync } from 'node:fs';

/** Parses the text of a KEY=value file into a plain object. */
export function parseEnvText(text) {
  const values = {};
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const equals = line.indexOf('=');
    if (equals <= 0) continue;
    const key = line
      .slice(0, equals)
      .trim()
      .replace(/^export\s+/, '');
    let value = line.slice(equals + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.at(-1) === value[0]) {
      value = value.slice(1, -1);
    }
    values[key] = value;
  }
  return values;
}

/** Reads a KEY=value file; returns {} when it does not exist, throws on other errors (e.g. EACCES). */
export function readEnvFile(path) {
  try {
    return parseEnvText(readFileSync(path, 'utf8'));
  } catch (error) {
    if (error.code === 'ENOENT') return {};
    throw error;
  }
}
