import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Loads `KEY=VALUE` lines of `.env` in `directory` into `env`, keeping keys already set (`bases/Kernel.py` `loadEnvFile`). */
export function loadDotEnv(directory: string, env: NodeJS.ProcessEnv): void {
  const path = join(directory, '.env');
  if (!existsSync(path)) return;
  for (const rawLine of readFileSync(path, 'utf8').split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#') || !line.includes('=')) continue;
    const key = line.slice(0, line.indexOf('=')).replace(/^export\s+/, '').trim();
    let value = line.slice(line.indexOf('=') + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) value = value.slice(1, -1);
    if (key !== '' && env[key] === undefined) env[key] = value;
  }
}

/** Storage dir: `FFL_STORAGE_LOCATION` if it exists, else `~/.fastfilelink` (created). */
export function resolveStorageDirectory(env: NodeJS.ProcessEnv): string {
  const configured = env['FFL_STORAGE_LOCATION'];
  if (configured !== undefined && configured !== '' && existsSync(configured) && statSync(configured).isDirectory()) return configured;
  const fallback = join(homedir(), '.fastfilelink');
  mkdirSync(fallback, { recursive: true });
  return fallback;
}

/** Writes the default `tunnels.json` on first run and persists `--preferred-tunnel` like `_setPreferredTunnel`. */
export function ensureTunnelsFile(directory: string, preferredTunnel: string | undefined): void {
  const path = join(directory, 'tunnels.json');
  let content: { tunnels: Record<string, unknown>; settings: { preferred_tunnel: string } } = {
    tunnels: {},
    settings: { preferred_tunnel: 'default' },
  };
  if (existsSync(path)) {
    try {
      content = JSON.parse(readFileSync(path, 'utf8')) as typeof content;
    } catch {
      // A broken file is rewritten with defaults, as the real tool does on first run.
    }
    if (preferredTunnel === undefined) return;
  }
  if (preferredTunnel !== undefined) content.settings = { ...content.settings, preferred_tunnel: preferredTunnel };
  writeFileSync(path, `${JSON.stringify(content, null, 2)}\n`);
}
