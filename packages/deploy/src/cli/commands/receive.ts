import { EXIT_CODES, UsageError } from '@deploykit/core';
import { LocalHost } from '@deploykit/host';
import { resolveReceiverTransport } from '@deploykit/transport';
import { readReceiverCredential, terminalPrompt } from '../receiver-credential.js';
import { renderTargetReport } from '../../receive/render-target-report.js';
import { recoverTargetRuns, runTargetSide, type TargetReport } from '../../receive/target-run.js';
import type { DeployCommand } from '../deploy-command.js';
import { createStdoutJsonlListener } from '../../render/renderers.js';

/** Exit code of a target report: 0 ok, else by the failure's kind. */
export function targetExitCode(report: TargetReport): number {
  if (report.ok) return EXIT_CODES.ok;
  if (report.failure?.code === 'INTERRUPTED') return 130;
  const kind = report.failure?.kind as keyof typeof EXIT_CODES | undefined;
  return kind !== undefined && kind in EXIT_CODES ? EXIT_CODES[kind] : EXIT_CODES.transport;
}

/**
 * `deploy receive <app> --from -|FILE|LINK`: the target-side run of a migration, on the target. It
 * reads a migration bundle (docs/bundle.md) and does every target step here, rolling back here.
 */
export const receiveCommand: DeployCommand = {
  command: 'receive <app>',
  describe:
    'Target side of a migration: read a migration bundle and install, verify and start the app here (rolled back here on failure)',
  interruptible: true,
  builder: (y) =>
    y
      .positional('app', { type: 'string', describe: 'The app the bundle must carry', demandOption: true })
      .option('from', {
        type: 'string',
        default: '-',
        requiresArg: true,
        describe:
          'Where the bundle comes from: - (stdin, as deploy migrate sends it over ssh), a bundle file, or an ffl link (pickup code in env DEPLOY_PICKUP_CODE)',
      })
      .option('replace', {
        type: 'boolean',
        default: false,
        describe:
          'Replace the app if it is here already: it is stopped and kept aside until the new copy is verified and healthy, and put back if not',
      })
      .option('force', {
        type: 'boolean',
        default: false,
        describe:
          'A cutover bundle: apply it even when the copy here differs from the migration it builds on (the final verification still decides)',
      })
      .option('check', {
        type: 'boolean',
        default: false,
        describe:
          'Only read the header and say whether this host can take the app (space, tools, conflicts, parts kept for a resume); change nothing',
      })
      .option('recover', {
        type: 'boolean',
        default: false,
        describe:
          'No bundle: clean up after earlier runs of the app here that did not end (killed, input lost), keeping verified parts for a resume',
      })
      .option('discard', {
        type: 'boolean',
        default: false,
        describe: 'With --recover: also remove the verified parts kept for a resume',
      })
      .option('delete-after', {
        type: 'boolean',
        default: false,
        describe: 'Delete the bundle file afterwards, whatever happens (scp)',
      })
      .option('code-file', {
        type: 'string',
        describe:
          'The pickup code of an ffl link, from this file (mode 0600); else env DEPLOY_PICKUP_CODE, else a prompt',
      })
      .option('ffl', { type: 'string', describe: 'The ffl binary for an ffl link (default: PATH, then /opt/ffl)' }),
  examples: [
    ['deploy migrate notes --to b', 'On the source: runs `deploy receive notes --from -` on b over one ssh session'],
    [
      'deploy receive notes --from /tmp/notes.dkbundle --json',
      'Take the app from a bundle file here; print the report as JSON',
    ],
    ['deploy receive notes --from - --check < notes.dkbundle', 'Would this host take it? Nothing changes'],
    [
      'deploy receive notes --from https://xyz.fastfilelink.com/AbC123',
      'Pairing: take the app from the link the source printed; asks for the pickup code (no echo)',
    ],
    [
      'deploy receive notes --recover --discard',
      'After a crash: undo what unfinished runs of notes left here, parts kept for a resume too',
    ],
  ],
  async run(context, args) {
    if (args.recover === true) {
      const recovered = await recoverTargetRuns({
        app: String(args.app),
        host: new LocalHost(context.hostContext.hostName),
        hostContext: context.hostContext,
        bus: context.bus,
        runId: context.runId,
        discard: args.discard === true,
      });
      const lines = recovered.recovered.map(
        (run) =>
          `${run.runId}: ${run.outcome === 'kept' ? `kept ${run.keptParts.join(', ')} for a resume` : 'rolled back'}${run.undone.length > 0 ? ` (${run.undone.join('; ')})` : ''}${run.failed.length > 0 ? `; COULD NOT UNDO: ${run.failed.join('; ')}` : ''}`,
      );
      const text = recovered.failure
        ? `recovering ${recovered.app} failed: ${recovered.failure.message}`
        : lines.length > 0
          ? lines.join('\n')
          : `nothing to recover for ${recovered.app} on ${recovered.host}`;
      return { exitCode: recovered.ok ? EXIT_CODES.ok : EXIT_CODES.conflict, json: recovered, text };
    }
    const from = typeof args.from === 'string' && args.from !== '' ? args.from : '-';
    const host = new LocalHost(context.hostContext.hostName);
    const transport = resolveReceiverTransport(from);
    if (typeof args.codeFile === 'string' && transport.receiverCredential === undefined)
      throw new UsageError('CODE_FILE_UNUSED', `--from ${from} needs no code`, {
        hint: 'Drop --code-file: it is for ffl links.',
      });
    // An ffl link's pickup code: env, a 0600 file or a prompt without echo - never argv.
    const credential = transport.receiverCredential
      ? await readReceiverCredential(transport.receiverCredential, {
          environment: process.env,
          ...(typeof args.codeFile === 'string' ? { file: args.codeFile } : {}),
          ...(terminalPrompt() ? { prompt: terminalPrompt()! } : {}),
        })
      : undefined;
    // The input's processes carry a run id from their start: the migration's when the source gave it
    // (DEPLOY_RUN_ID), else this command's own (pairing; the run record names it once the header is read).
    process.env.DEPLOY_RUN_ID ??= context.runId;
    process.env.DEPLOY_ROLE ??= 'target';
    const input = await transport.openReceiver({
      from,
      deleteAfter: args.deleteAfter === true,
      host,
      runId: process.env.DEPLOY_RUN_ID,
      label: String(args.app),
      ...(credential ? { credential } : {}),
      ...(typeof args.ffl === 'string' ? { binaryPath: args.ffl } : {}),
    });
    // The source sees our progress and verdict as JSON lines on our stdout (deploy migrate reads them).
    if (context.options.jsonl) context.bus.on(createStdoutJsonlListener());
    // A dropped ssh connection sends no signal: our input ends and the run rolls back by itself.
    process.on('SIGHUP', () => undefined);
    process.on('SIGPIPE', () => undefined);
    const report = await runTargetSide({
      input,
      host,
      hostContext: context.hostContext,
      bus: context.bus,
      replace: args.replace === true,
      signal: context.signal,
      check: args.check === true,
      expectApp: String(args.app),
      force: args.force === true,
    });
    return { exitCode: targetExitCode(report), json: report, text: renderTargetReport(report) };
  },
};
