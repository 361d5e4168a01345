// @deploykit/transport: the stream contract, framing, the receiving half, the sending pipeline and the transports.
export * from './contract.js';
export * from './framing/index.js';
export * from './receive/index.js';
export * from './pipeline/index.js';
export * from './transports/index.js';
export * from './bundle/index.js';
