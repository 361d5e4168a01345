export * from './tar-guard.js';
