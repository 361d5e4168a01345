// @deploykit/testlab: the multi-host lab on loopback (the ffl stand-in it puts on the hosts' PATH is @deploykit/ffl-standin).
export * from './lab-types.js';
export { startLab, openLab, nameLabHost } from './lab-start.js';
export { stopLab } from './lab-stop.js';
export { labStatus } from './lab-status.js';
export { findLabProcesses, isLabProcess, isSameProcess, LAB_ID_VARIABLE, type LabProcessRef } from './lab-processes.js';
export { buildSshConfig, buildDeployConfig, buildKnownHosts, buildSshdConfig } from './lab-files.js';
export { findRepoRoot, buildLabPath, buildLabDownCommand, defaultLabDir } from './lab-paths.js';
