export * from './local-host.js';
export * from './ssh-host.js';
export * from './ssh-argv.js';
export * from './recording-host.js';
export * from './tail-buffer.js';
export * from './process-groups.js';
export * from './deploy-client.js';
export * from './run-processes.js';
