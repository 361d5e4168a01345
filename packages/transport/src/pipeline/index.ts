export * from './run-stream.js';
export * from './stage-failure.js';
export * from './byte-meter.js';
export * from './jsonl-lines.js';
