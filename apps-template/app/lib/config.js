// Resolves the app's settings. Precedence: config/app.env and secrets/app.env (the app folder's
// own files) over the DEPLOY_* defaults that bin/start passes in the environment.
import { join } from 'node:path';
import { readEnvFile } from './env-file.js';

/** Thrown when a required setting is missing; the message names every missing variable. */
export class MissingEnvironmentError extends Error {}

const REQUIRED = ['DB_PASSWORD', 'SESSION_SECRET', 'DB_NAME', 'DB_USER'];

/** Loads the settings for the app folder `appDir`; throws MissingEnvironmentError listing what is absent. */
export function loadConfig(appDir, env = process.env) {
  const file = {
    ...readEnvFile(join(appDir, 'config', 'app.env')),
    ...readEnvFile(join(appDir, 'secrets', 'app.env')),
  };
  const pick = (key, fallback) => {
    const value = file[key] ?? env[key] ?? fallback;
    return value === undefined || value === '' ? undefined : value;
  };
  const settings = {
    appDir,
    port: Number(pick('PORT', env.DEPLOY_PORT ?? '8080')),
    bindAddress: pick('BIND_ADDRESS', env.DEPLOY_HOST_ADDRESS ?? '127.0.0.1'),
    logLevel: pick('LOG_LEVEL', env.DEPLOY_LOG_LEVEL ?? 'info'),
    logDir: join(appDir, pick('LOG_DIR', 'data/logs')),
    uploadsDir: join(appDir, pick('UPLOADS_DIR', 'data/uploads')),
    publicDir: join(appDir, 'app', 'public'),
    maxUploadBytes: Number(pick('MAX_UPLOAD_BYTES', String(20 * 1024 * 1024))),
    sessionHours: Number(pick('SESSION_HOURS', '12')),
    db: {
      host: pick('DB_HOST', env.PGHOST ?? '127.0.0.1'),
      port: Number(pick('DB_PORT', env.PGPORT ?? '5432')),
      database: pick('DB_NAME'),
      user: pick('DB_USER'),
      password: pick('DB_PASSWORD'),
    },
    sessionSecret: pick('SESSION_SECRET'),
  };
  const missing = REQUIRED.filter((key) => pick(key) === undefined);
  if (missing.length > 0) {
    throw new MissingEnvironmentError(
      `missing environment: ${missing.join(', ')} (set them in config/app.env or secrets/app.env, or run bin/install)`,
    );
  }
  if (!Number.isInteger(settings.port) || settings.port < 1 || settings.port > 65535) {
    throw new MissingEnvironmentError(`missing environment: PORT is not a valid port (${String(pick('PORT'))})`);
  }
  return settings;
}
