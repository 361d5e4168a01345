import type { DeployCommand } from '../deploy-command.js';
import { dbCommand } from './db.js';
import { healthCommand } from './health.js';
import { receiveCommand } from './receive.js';
import { removeCommand } from './remove.js';
import { updateCommand } from './update.js';
import { factsCommand, verifyCommand } from './verify.js';
import { initCommand } from './init.js';
import { listCommand } from './list.js';
import { migrateCommand } from './migrate.js';
import { phaseCommands, restoreCommand } from './phases.js';
import { schemaCommand } from './schema.js';
import { showCommand } from './show.js';
import { streamCommand } from './stream.js';
import { validateCommand } from './validate.js';

/** Every `deploy` verb, in the order --help lists them. */
export const COMMANDS: readonly DeployCommand[] = [
  listCommand,
  showCommand,
  validateCommand,
  initCommand,
  ...phaseCommands,
  restoreCommand,
  migrateCommand,
  removeCommand,
  healthCommand,
  factsCommand,
  verifyCommand,
  updateCommand,
  schemaCommand,
  dbCommand,
  receiveCommand,
  streamCommand,
];
