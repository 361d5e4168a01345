export * from './tar-guard.js';
export * from './staging.js';
export * from './receiver.js';
