export * from './bundle-format.js';
export * from './bundle-writer.js';
export * from './bundle-reader.js';
