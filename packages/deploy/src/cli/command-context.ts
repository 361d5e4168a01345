import { join } from 'node:path';
import { ConfigError, EventBus, newRunId, type EventListener, type Host } from '@deploykit/core';
// Subpath imports: the packages' index modules load ssh, YAML and JSON Schema code a light command
// (`deploy list`) does not need; see bench/src/startup.ts.
import { LocalHost } from '@deploykit/host/local-host';
import { loadGlobalConfig, type GlobalConfig } from '@deploykit/manifest/global-config';
import { formatIssue } from '@deploykit/manifest/issue';
import { resolveAppsRoot, resolveStateDir } from '@deploykit/manifest/resolve-roots';
import { resolveHostContext, type HostContext } from '../host-context.js';
import { createHumanOutput } from '../render/human-output.js';
import { createJsonlListener, createRunLogListener, useColor } from '../render/renderers.js';
import type { GlobalOptions } from './global-options.js';

/** Everything a command needs: config, host identity, the event bus and its renderers. Dispose to flush logs. */
export interface CommandContext extends AsyncDisposable {
  readonly runId: string;
  readonly options: GlobalOptions;
  readonly config: GlobalConfig;
  readonly configPath: string | undefined;
  readonly hostContext: HostContext;
  readonly host: Host;
  readonly bus: EventBus;
  /** The per-run log file (winston, JSON lines). */
  readonly logFile: string;
  /** Aborted on Ctrl+C/SIGTERM for interruptible commands. */
  readonly signal: AbortSignal;
}

/** How often a run off a terminal prints a `progress:` line while bytes flow: DEPLOY_PROGRESS_SECONDS, default 10. */
export function progressEveryMs(env: NodeJS.ProcessEnv = process.env): number {
  const seconds = Number(env.DEPLOY_PROGRESS_SECONDS);
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 10_000;
}

/**
 * Builds the command context: loads the global config (errors are fatal), resolves roots, attaches
 * renderers. `live`: the command may draw the live view on a terminal (nothing else writes to it meanwhile).
 */
export async function createCommandContext(
  options: GlobalOptions,
  signal: AbortSignal = new AbortController().signal,
  render: { live?: boolean } = {},
): Promise<CommandContext> {
  const loaded = await loadGlobalConfig(options.config);
  if (loaded.errors.length > 0) {
    throw new ConfigError(
      'CONFIG_INVALID',
      `the global config has ${loaded.errors.length} error(s):\n${loaded.errors.map((i) => `  ${formatIssue(i)}`).join('\n')}`,
      {
        hint: 'Fix the config file named above (see docs/config.md), or unset DEPLOY_CONFIG.',
      },
    );
  }
  const appsRoot = resolveAppsRoot({ flag: options.appsRoot, config: loaded.config });
  const stateDir = resolveStateDir({ flag: options.stateDir, config: loaded.config });
  const hostContext = resolveHostContext({ appsRoot, stateDir, logLevel: options.logLevel, dryRun: options.dryRun });
  const runId = newRunId();
  const bus = new EventBus({ runId, host: hostContext.hostName }, { keep: false });
  const closers: (() => Promise<void>)[] = [];
  const logFile = join(stateDir, 'logs', `${runId}.log`);
  const attach = (listener: EventListener): void => void bus.on(listener);
  if (!options.dryRun || options.logFile) {
    try {
      const runLog = createRunLogListener(logFile, options.verbose ? 'debug' : 'info');
      attach(runLog.listener);
      closers.push(runLog.close);
    } catch {
      // A read-only state dir must not stop read-only commands (list, validate); scripts still stream to the TTY.
    }
  }
  if (options.events) {
    const jsonl = createJsonlListener(options.events);
    attach(jsonl.listener);
    closers.push(jsonl.close);
  }
  if (!options.quiet && !options.jsonl) {
    const human = createHumanOutput({
      level: options.verbose ? 'debug' : 'info',
      stream: process.stderr,
      color: useColor(process.stderr, options.color),
      live: render.live === true,
      progressEveryMs: progressEveryMs(),
    });
    attach(human.listener);
    closers.push(human.close);
  }
  return {
    runId,
    options,
    config: loaded.config,
    configPath: loaded.path,
    hostContext,
    host: new LocalHost(hostContext.hostName),
    bus,
    logFile,
    signal,
    async [Symbol.asyncDispose]() {
      for (const close of closers) await close().catch(() => undefined);
    },
  };
}
