// @deploykit/testlab: the multi-host lab on loopback (lab*) and the ffl stand-in (ffl/).
export * from './lab-types.js';
export { startLab, openLab, nameLabHost } from './lab-start.js';
export { stopLab } from './lab-stop.js';
export { labStatus } from './lab-status.js';
export { findLabProcesses, isLabProcess, isSameProcess, LAB_ID_VARIABLE, type LabProcessRef } from './lab-processes.js';
export { buildSshConfig, buildDeployConfig, buildKnownHosts, buildSshdConfig } from './lab-files.js';
export { findRepoRoot, buildLabPath, buildLabDownCommand, defaultLabDir } from './lab-paths.js';
// The ffl stand-in's exports follow.
export * from './ffl/index.js';
