// Shared end-to-end helpers: run the built CLI, a lab that always goes down, fingerprints for byte-identical checks.
export {
  runDeploy,
  buildDeployEnv,
  DEPLOY_BIN,
  REPO_ROOT,
  type DeployRun,
  type RunDeployOptions,
} from './run-deploy.js';
export { withLab } from './with-lab.js';
export { labShell, localShell, runOrThrow, type Shell } from './shell.js';
export {
  treeFingerprint,
  diffTreeFingerprints,
  parseTreeFingerprint,
  buildTreeFingerprintCommand,
  type TreeEntry,
  type TreeFingerprint,
} from './tree-fingerprint.js';
export { dbFingerprint, type DbFingerprint } from './db-fingerprint.js';
export { NotesClient, parseCredentials } from './notes-client.js';
export { withReleases, type TestRelease } from './release.js';
