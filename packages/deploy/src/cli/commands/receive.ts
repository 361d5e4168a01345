import { createInterface } from 'node:readline';
import { EXIT_CODES, UsageError } from '@deploykit/core';
import { acquireAppLock } from '../../migrate/app-lock.js';
import { applyFidelity, scanFidelity, type FidelityMetadata } from '../../migrate/fidelity.js';
import { collectHostFacts } from '../../migrate/host-facts.js';
import { digestTree } from '../../migrate/checksums.js';
import { abortTargetFolder, commitTargetFolder, finishIncoming, prepareTargetFolder } from '../../migrate/target-folder.js';
import type { DeployCommand } from '../deploy-command.js';

const ACTIONS = ['checksums', 'preflight', 'lock', 'prepare', 'apply-metadata', 'scan-metadata', 'commit', 'finish', 'abort'] as const;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function requireArg(args: Record<string, unknown>, key: string, action: string): string {
  const value = args[key];
  if (typeof value !== 'string' || value === '') throw new UsageError('ARG_REQUIRED', `deploy receive ${action} needs --${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
  return value;
}

/**
 * `deploy receive <action>`: the target half of `deploy migrate`, run over ssh by the source. Each
 * action is small, idempotent where it can be, and answers in JSON on stdout.
 */
export const receiveCommand: DeployCommand = {
  command: 'receive <action> [app]',
  describe: 'Target side of migrate (run by the source over ssh): preflight, lock, prepare, apply-metadata, scan-metadata, commit, finish, abort',
  builder: (y) =>
    y
      .positional('action', { type: 'string', choices: ACTIONS as unknown as string[], describe: 'Step to run' })
      .positional('app', { type: 'string', describe: 'App name' })
      .option('run-id', { type: 'string', describe: 'The migration run this step belongs to' })
      .option('dir', { type: 'string', describe: 'Folder for apply-metadata / scan-metadata' })
      .option('replace', { type: 'boolean', default: false, describe: 'prepare: allow replacing an existing app folder' })
      .option('remove-app', { type: 'boolean', default: false, describe: 'abort: also remove the app folder this migration committed' }),
  examples: [
    ['deploy receive preflight notes --json', 'What this host has for a migration of notes'],
    ['deploy receive lock notes --run-id R', 'Hold the notes lock until stdin closes'],
  ],
  async run(context, args) {
    const action = String(args.action);
    const host = context.hostContext;
    const app = typeof args.app === 'string' ? args.app : undefined;
    const needApp = (): string => {
      if (!app) throw new UsageError('APP_REQUIRED', `deploy receive ${action} needs an app name`);
      return app;
    };
    switch (action) {
      case 'preflight': {
        const facts = await collectHostFacts(host, needApp());
        return { exitCode: EXIT_CODES.ok, json: facts, text: JSON.stringify(facts) };
      }
      case 'lock': {
        // Held as long as our stdin (the source's ssh channel) stays open: a dead source frees it.
        const lock = await acquireAppLock({ stateDir: host.stateDir, app: needApp(), runId: requireArg(args, 'runId', action), command: `deploy migrate ${needApp()} (incoming)` });
        process.stdout.write(`${JSON.stringify({ locked: true, holder: lock.holder, replacedStale: lock.replacedStale ?? null })}\n`);
        await new Promise<void>((resolve) => {
          const lines = createInterface({ input: process.stdin });
          lines.on('close', resolve);
        });
        await lock.release();
        return { exitCode: EXIT_CODES.ok };
      }
      case 'prepare': {
        const staging = await prepareTargetFolder(host, needApp(), requireArg(args, 'runId', action), { replace: args.replace === true });
        return { exitCode: EXIT_CODES.ok, json: { staging }, text: JSON.stringify({ staging }) };
      }
      case 'apply-metadata': {
        const metadata = JSON.parse(await readStdin()) as FidelityMetadata;
        await applyFidelity(context.host, requireArg(args, 'dir', action), metadata);
        return { exitCode: EXIT_CODES.ok, json: { applied: true }, text: '{"applied":true}' };
      }
      case 'scan-metadata': {
        const metadata = await scanFidelity(context.host, requireArg(args, 'dir', action));
        return { exitCode: EXIT_CODES.ok, json: metadata, text: JSON.stringify(metadata) };
      }
      case 'checksums': {
        const files = await digestTree(requireArg(args, 'dir', action));
        return { exitCode: EXIT_CODES.ok, json: { files }, text: JSON.stringify({ files }) };
      }
      case 'commit': {
        await commitTargetFolder(host, needApp(), requireArg(args, 'runId', action));
        return { exitCode: EXIT_CODES.ok, json: { committed: true }, text: '{"committed":true}' };
      }
      case 'finish': {
        await finishIncoming(host, needApp());
        return { exitCode: EXIT_CODES.ok, json: { finished: true }, text: '{"finished":true}' };
      }
      case 'abort': {
        const removed = await abortTargetFolder(host, needApp(), requireArg(args, 'runId', action), { removeApp: args.removeApp === true });
        return { exitCode: EXIT_CODES.ok, json: { removed }, text: JSON.stringify({ removed }) };
      }
      default:
        throw new UsageError('RECEIVE_ACTION_UNKNOWN', `unknown receive action ${action}`, { hint: `Known: ${ACTIONS.join(', ')}.` });
    }
  },
};

