export * from './issue.js';
export * from './schema.js';
export * from './load-manifest.js';
