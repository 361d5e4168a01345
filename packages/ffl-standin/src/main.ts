#!/usr/bin/env node
/**
 * Entry point of the ffl stand-in (`packages/ffl-standin/bin/ffl`): parses argv like ffl 4.0.6,
 * opens the hook, runs share or download and exits with ffl's exit codes.
 */
import { runDownload } from './download-command.js';
import { createFileHookSink, createHttpHookSink, createNullHookSink, type HookSink } from './hook-sink.js';
import { formatErrno, formatOops } from './messages.js';
import { parseFflArgv } from './parse-argv.js';
import { runShare } from './share-command.js';
import { FFL_STANDIN_ENV, readIntegerSwitch } from './standin-env.js';
import { loadDotEnv } from './storage.js';
import { exitFlushed } from './exit-flushed.js';

function openHook(target: string | undefined, env: NodeJS.ProcessEnv): HookSink {
  if (target === undefined) return createNullHookSink();
  if (/^https?:\/\//.test(target)) {
    return createHttpHookSink(target, {
      failureThreshold: readIntegerSwitch(
        env,
        FFL_STANDIN_ENV.hookFailureThreshold,
        readIntegerSwitch(env, 'HOOK_FORWARDER_FAILURE_THRESHOLD', 3),
      ),
      cooldownMs: readIntegerSwitch(
        env,
        FFL_STANDIN_ENV.hookCooldownMs,
        readIntegerSwitch(env, 'HOOK_FORWARDER_COOLDOWN_SECONDS', 30) * 1000,
      ),
    });
  }
  return createFileHookSink(target);
}

async function main(): Promise<number> {
  loadDotEnv(process.cwd(), process.env);
  const parsed = parseFflArgv(process.argv.slice(2), process.env);
  if (parsed.kind === 'print') {
    process.stdout.write(parsed.stdout);
    process.stderr.write(parsed.stderr);
    return parsed.exitCode;
  }
  let hook: HookSink;
  try {
    hook = openHook(parsed.args.hook, process.env);
  } catch (error) {
    const message =
      error instanceof Error && 'code' in error
        ? formatErrno(error as NodeJS.ErrnoException, parsed.args.hook ?? '')
        : String(error);
    process.stdout.write(formatOops(message));
    return 1;
  }
  if (parsed.args.command === 'download') return await runDownload(parsed.args, hook, process.env);
  return await runShare(parsed.args, hook, process.env);
}

main().then(
  (code) => exitFlushed(code),
  (error: unknown) => {
    process.stdout.write(formatOops(error instanceof Error ? error.message : String(error)));
    exitFlushed(1);
  },
);
