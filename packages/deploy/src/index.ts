export * from './host-context.js';
export * from './phase-env.js';
export * from './script-runner.js';
export * from './secret-values.js';
export * from './health/check-types.js';
export * from './health/run-checks.js';
export * from './health/verify-app.js';
export * from './health/app-facts.js';
export * from './actions/update-app.js';
export { main } from './cli/main.js';
export * from './database/engine.js';
export * from './database/engines.js';
export * from './database/sql-client.js';
export { POSTGRES_FIDELITY_SQL } from './database/postgres.js';
export * from './deploy-events.js';
// The target's consumer of a tar part, for the data-path benchmark (bench/src/datapath.ts).
export { receiveTarPart, type PartAttempt, type PartOutcome } from './receive/part-consumers.js';
