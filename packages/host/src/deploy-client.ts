import {
  DeployError,
  describeExit,
  EXIT_CODES,
  type CommandSpec,
  type ErrorKind,
  type Host,
  type HostProcess,
  type RunResult,
} from '@deploykit/core';
import { describeSshFailure } from './ssh-host.js';
import { tailLines } from './tail-buffer.js';

/** Exit status of the OpenSSH client when the connection failed or was lost. */
const SSH_UNREACHABLE = 255;
/** What a shell answers when the command is not on PATH. */
const COMMAND_NOT_FOUND = 127;

/** The `--json` error shape every `deploy` command prints on failure (packages/deploy/src/cli/main.ts). */
interface JsonErrorShape {
  readonly ok: false;
  readonly error: {
    readonly kind?: string;
    readonly code?: string;
    readonly message?: string;
    readonly hint?: string;
    readonly details?: Record<string, unknown>;
  };
}

const KIND_BY_EXIT = new Map<number, ErrorKind>(
  (Object.entries(EXIT_CODES) as [ErrorKind | 'ok' | 'checks', number][])
    .filter(([kind]) => kind !== 'ok' && kind !== 'checks')
    .map(([kind, code]) => [code, kind as ErrorKind]),
);

function isJsonError(value: unknown): value is JsonErrorShape {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { ok?: unknown }).ok === false &&
    typeof (value as { error?: unknown }).error === 'object'
  );
}

/** Options of one `deploy` run on the client's host. */
export interface DeployRunOptions {
  readonly input?: string | Buffer;
  readonly env?: CommandSpec['env'];
  readonly timeoutMs?: number;
  /** Exit codes whose JSON output is a result rather than an error (e.g. 1 from `deploy health`). */
  readonly acceptExitCodes?: readonly number[];
}

/**
 * The one way to run `deploy` on another host (or this one) and read its answer: builds the argv,
 * parses `--json` output, and maps every way it can fail - ssh unreachable (255), deploy missing
 * (127), our own exit codes and the `--json` error shape - onto DeployError kinds in one place.
 */
export class DeployClient {
  readonly host: Host;
  readonly command: readonly string[];
  readonly globalArgs: readonly string[];
  constructor(host: Host, options: { command?: readonly string[]; globalArgs?: readonly string[] } = {}) {
    this.host = host;
    this.command = options.command ?? ['deploy'];
    this.globalArgs = options.globalArgs ?? [];
  }

  /** The argv running `deploy <args>` on the host. */
  argv(args: readonly string[]): string[] {
    return [...this.command, ...this.globalArgs, ...args];
  }

  /**
   * Runs `deploy <args> --json --quiet` and returns its parsed JSON. Throws the mapped DeployError
   * when it exits non-zero (unless the exit is in `acceptExitCodes` and it printed JSON) or prints
   * no JSON.
   */
  async json<T>(args: readonly string[], options: DeployRunOptions = {}): Promise<T> {
    const result = await this.host.run({
      argv: this.argv([...args, '--json', '--quiet']),
      ...(options.input === undefined ? {} : { input: options.input }),
      ...(options.env === undefined ? {} : { env: options.env }),
      timeoutMs: options.timeoutMs ?? 30 * 60_000,
      maxBuffer: 512 * 1024 * 1024,
      label: `deploy ${args[0] ?? ''}`,
    });
    let parsed: unknown;
    try {
      parsed = JSON.parse(result.stdout);
    } catch {
      parsed = undefined;
    }
    if (result.exitCode === 0 && parsed !== undefined && !isJsonError(parsed)) return parsed as T;
    if (parsed !== undefined && !isJsonError(parsed) && options.acceptExitCodes?.includes(result.exitCode ?? -1))
      return parsed as T;
    throw this.errorFor(result, args, isJsonError(parsed) ? parsed : undefined);
  }

  /**
   * The version of `deploy` on the host (`deploy --version`, which every deploy answers). Throws the
   * mapped DeployError (DEPLOY_MISSING when it is not on the PATH of the host's sessions).
   */
  async version(): Promise<string> {
    const result = await this.host.run({
      argv: this.argv(['--version']),
      timeoutMs: 60_000,
      label: 'deploy --version',
    });
    const version = result.stdout.trim();
    if (result.exitCode === 0 && /^\d+\.\d+\.\d+\S*$/.test(version)) return version;
    throw this.errorFor(result, ['--version']);
  }

  /** Starts `deploy <args>` on the host with streaming stdio (a long target-side run, its events on stdout). */
  spawn(args: readonly string[], spec: Omit<CommandSpec, 'argv'> = {}): HostProcess {
    return this.host.spawn({ ...spec, argv: this.argv(args), label: spec.label ?? `deploy ${args[0] ?? ''}` });
  }

  /**
   * Maps a failed `deploy` run to our error vocabulary: ssh's 255 and the shell's 127 are
   * dependency errors saying what to check; our exit codes keep their kind, with the message and
   * hint the remote printed (its `--json` error, else its `deploy: ...` stderr lines).
   */
  errorFor(
    result: Pick<RunResult, 'exitCode' | 'signal' | 'stderr' | 'remoteStarted'>,
    args: readonly string[],
    printed?: JsonErrorShape,
  ): DeployError {
    const what = `deploy ${args.slice(0, 2).join(' ')}`;
    const where = this.host.name;
    const stderr = result.stderr.trim();
    if (this.host.kind === 'ssh' && result.exitCode === SSH_UNREACHABLE && printed === undefined) {
      // Never started (no pid marker): unreachable. Started, then 255: the connection was lost or the remote deploy was killed.
      const failure = describeSshFailure(result, where, `\`${what}\``);
      return failure.kind === 'lost'
        ? new DeployError('transport', 'SSH_CONNECTION_LOST', failure.message, {
            hint: failure.hint,
            details: { exitCode: result.exitCode },
          })
        : new DeployError('dependency', 'HOST_UNREACHABLE', failure.message, { hint: failure.hint });
    }
    if (result.exitCode === COMMAND_NOT_FOUND || /(^|: )deploy: (command )?not found/m.test(stderr)) {
      return new DeployError(
        'dependency',
        'DEPLOY_MISSING',
        `deploy is not installed on host ${where} (${this.command.join(' ')}: not found)`,
        {
          hint: `Run \`deploy setup ${where}\` here: it installs this deploy's release there, on the PATH of its ssh sessions (docs/cli.md#deploy-setup).`,
        },
      );
    }
    const kind = KIND_BY_EXIT.get(result.exitCode ?? -1) ?? 'internal';
    const remote = printed?.error;
    const message = remote?.message ?? (tailLines(stderr.replace(/^deploy: /gm, ''), 4).trim() || describeExit(result));
    return new DeployError(
      remote?.kind !== undefined && (Object.keys(EXIT_CODES) as string[]).includes(remote.kind)
        ? (remote.kind as ErrorKind)
        : kind,
      remote?.code ?? 'REMOTE_DEPLOY_FAILED',
      `${what} on ${where} failed: ${message}`,
      {
        ...(remote?.hint !== undefined
          ? { hint: remote.hint }
          : { hint: `Run it on ${where} by hand to see more: deploy ${args.join(' ')}` }),
        details: { exitCode: result.exitCode, ...(remote?.details ?? {}) },
      },
    );
  }
}
