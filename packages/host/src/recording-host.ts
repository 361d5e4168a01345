import { PassThrough } from 'node:stream';
import { displayArgv, type CommandSpec, type Host, type HostProcess, type RunResult } from '@deploykit/core';

/** Decides what a recorded command "returns"; default: exit 0 with no output. */
export type RecordingResponder = (spec: CommandSpec) => Partial<Pick<RunResult, 'exitCode' | 'stdout' | 'stderr'>>;

/** One command a RecordingHost was asked to run. */
export interface RecordedCommand {
  readonly host: string;
  readonly spec: CommandSpec;
  /** The argv for humans, secrets masked. */
  readonly display: string;
}

/** Records what would run instead of running it: --dry-run, --plan and tests. */
export class RecordingHost implements Host {
  readonly kind = 'recording' as const;
  readonly name: string;
  readonly commands: RecordedCommand[] = [];
  readonly #responder: RecordingResponder;
  constructor(name: string, responder: RecordingResponder = () => ({})) {
    this.name = name;
    this.#responder = responder;
  }

  #record(spec: CommandSpec): RunResult {
    this.commands.push({ host: this.name, spec, display: displayArgv(spec.argv) });
    const answer = this.#responder(spec);
    return {
      argv: spec.argv,
      exitCode: answer.exitCode ?? 0,
      signal: null,
      stdout: answer.stdout ?? '',
      stderr: answer.stderr ?? '',
      durationMs: 0,
      timedOut: false,
    };
  }

  async run(spec: CommandSpec): Promise<RunResult> {
    return this.#record(spec);
  }

  spawn(spec: CommandSpec): HostProcess {
    const result = this.#record(spec);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    stdout.end(result.stdout);
    stderr.end(result.stderr);
    const stdin = spec.stdin === 'pipe' ? new PassThrough() : null;
    stdin?.resume();
    return { pid: undefined, stdin, stdout, stderr, wait: async () => result, kill: () => undefined };
  }

  async close(): Promise<void> {
    // Nothing to release.
  }
}
