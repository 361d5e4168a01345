import {
  DeployError,
  displayArgv,
  type CommandSpec,
  type Host,
  type HostProcess,
  type RunResult,
} from '@deploykit/core';
import type { TargetJournal } from './target-journal.js';

/** A step as the planned host needs it: its id and the argv it may run. */
export interface PlannedStep {
  readonly id: string;
  readonly commands: readonly (readonly string[])[];
}

/** Two argv lists are the same command. */
function sameArgv(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((word, index) => word === b[index]);
}

/**
 * The Host a step of the target-side run executes through: it runs only the commands its plan step
 * lists (anything else is our bug, refused before it runs) and journals each one it runs. So the
 * run record shows exactly what ran, and the plan cannot drift from the run.
 */
export class PlannedHost implements Host {
  readonly kind: Host['kind'];
  readonly name: string;
  readonly #inner: Host;
  readonly #step: PlannedStep;
  readonly #journal: TargetJournal;
  constructor(inner: Host, step: PlannedStep, journal: TargetJournal) {
    this.#inner = inner;
    this.#step = step;
    this.#journal = journal;
    this.kind = inner.kind;
    this.name = inner.name;
  }

  #admit(spec: CommandSpec): void {
    if (!this.#step.commands.some((planned) => sameArgv(planned, spec.argv))) {
      throw new DeployError(
        'internal',
        'COMMAND_NOT_PLANNED',
        `step ${this.#step.id} tried to run \`${displayArgv(spec.argv)}\`, which its plan does not list (a bug in deploykit)`,
        {
          hint: 'Nothing was run for it; the run is rolled back. Please report this with the run record.',
        },
      );
    }
    this.#journal.write({ t: 'command', step: this.#step.id, argv: displayArgv(spec.argv) });
  }

  run(spec: CommandSpec): Promise<RunResult> {
    try {
      this.#admit(spec);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#inner.run(spec);
  }

  spawn(spec: CommandSpec): HostProcess {
    this.#admit(spec);
    return this.#inner.spawn(spec);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
