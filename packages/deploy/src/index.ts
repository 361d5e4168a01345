export * from './host-context.js';
export * from './phase-env.js';
export * from './script-runner.js';
export * from './secret-values.js';
export * from './health/check-types.js';
export * from './health/run-checks.js';
export { main } from './cli/main.js';
