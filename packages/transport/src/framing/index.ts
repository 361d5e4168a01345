export * from './frame-encoder.js';
export * from './frame-decoder.js';
