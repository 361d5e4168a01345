import { fileURLToPath } from 'node:url';

export { FFL_STANDIN_ENV, type FflStandinEnvName } from './standin-env.js';
export { GONE_BODY } from './share-http.js';
export { readHookEventFile, type FflHookEvent } from './read-hook-events.js';
export { startHookEndpoint, type HookEndpoint, type HookEndpointOptions } from './hook-endpoint.js';

/** Absolute path of the `ffl` stand-in executable (packages/ffl-standin/bin/ffl). */
export const fflStandinPath: string = fileURLToPath(new URL('../bin/ffl', import.meta.url));
