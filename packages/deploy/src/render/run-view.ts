import { formatBytes, formatDuration, isForeignEvent, type BusEvent } from '@deploykit/core';

/** A step of a run as the view shows it. */
export interface ViewStep {
  readonly id: string;
  title: string;
  state: 'pending' | 'running' | 'done' | 'failed';
  /** The part this step carries (its stream id), when it carries one. */
  part?: string;
  /** A part's expected bytes (send) or verified bytes (reused), from the plan. */
  bytes?: number;
  reused?: boolean;
}

/** A step as `migrate.plan` lists it (PlanStepView). */
interface PlannedStep {
  readonly id: string;
  readonly title: string;
  readonly part?: string;
  readonly bytes?: number;
  readonly reused?: boolean;
}

/** A part (one stream of the bundle) as the view shows it. */
export interface ViewPart {
  readonly id: string;
  bytes: number;
  expected?: number;
  /** Bytes per second over the part so far. */
  rate: number;
  done: boolean;
  path?: string;
}

/**
 * What a run looks like to someone watching it, folded from its events: steps (`migrate.plan`,
 * `migrate.step`/`receive.step`, `migrate.failed`), parts (`stream.progress`, `migrate.part`), the
 * path the bytes take (`migrate.path`, `stream.path`), retries, the title (a `*.start`), the target's
 * current step (any `*.step` relayed as `<app>@<host>`, whatever the other deploy's version).
 * `deploy cutover` runs the migration's source run, so it gets the same view.
 */
export class RunView {
  title: string | undefined;
  readonly steps: ViewStep[] = [];
  readonly parts = new Map<string, ViewPart>();
  path: string | undefined;
  /** The step the other host runs now (`b: [install] ...`). */
  remote: string | undefined;
  retries = 0;
  readonly startedAt: number;
  /** When the part in flight last moved a byte. */
  lastMoveAt: number;
  #current: string | undefined;

  constructor(now = Date.now()) {
    this.startedAt = now;
    this.lastMoveAt = now;
  }

  /** Folds one event in; true when it changed what the view shows. */
  apply(event: BusEvent, now = Date.now()): boolean {
    if (event.app?.includes('@')) {
      // Relayed from the other host, whatever its version: only its current step is shown.
      if (!event.type.endsWith('.step') || event.message === undefined) return false;
      this.remote = `${event.host ?? event.app.slice(event.app.indexOf('@') + 1)}: ${event.message}`;
      return true;
    }
    if (isForeignEvent(event)) return false;
    switch (event.type) {
      case 'migrate.start':
      case 'cutover.start':
      case 'update.start':
      case 'receive.start':
        if (this.title !== undefined || event.message === undefined) return false;
        this.title = event.message;
        return true;
      case 'migrate.plan':
        this.#applyPlan(event.data.steps);
        this.path ??= event.data.transport;
        return true;
      case 'migrate.step':
      case 'receive.step': {
        for (const step of this.steps) if (step.state === 'running') step.state = 'done';
        const step = this.#step(event.data.step, event.message?.replace(/^\[[^\]]*\]\s*/, '') ?? event.data.step);
        step.state = 'running';
        return true;
      }
      case 'migrate.failed':
        this.#step(event.data.step, event.data.step).state = 'failed';
        return true;
      case 'stream.progress': {
        const { data } = event;
        if (event.stream === undefined || data.side === 'consumer') return false;
        const part = this.#part(event.stream);
        if (data.bytes !== part.bytes) this.lastMoveAt = now;
        if (data.bytes < part.bytes) part.done = false; // a new attempt of the part
        part.bytes = data.bytes;
        if ('expected' in data && data.expected !== undefined) part.expected = data.expected;
        part.rate = data.rate;
        this.#current = event.stream;
        return true;
      }
      case 'migrate.part': {
        if (event.stream === undefined) return false;
        const part = this.#part(event.stream);
        part.bytes = event.data.bytes;
        part.done = true;
        part.rate = event.data.rate;
        part.path = event.data.path;
        this.lastMoveAt = now;
        return true;
      }
      case 'migrate.path':
      case 'stream.path':
        this.path = event.data.path;
        return true;
      case 'migrate.retry':
      case 'stream.retry':
        this.retries += 1;
        return true;
      default:
        return false;
    }
  }

  /** True once there is something beyond plain lines to show: a plan, a step or a part. */
  get structured(): boolean {
    return this.steps.length > 0 || this.parts.size > 0;
  }

  /** The part whose bytes flow now, if any. */
  get current(): ViewPart | undefined {
    const part = this.#current === undefined ? undefined : this.parts.get(this.#current);
    return part && !part.done ? part : undefined;
  }

  /** Bytes of the whole bundle so far and in all (the plan's part sizes), and parts done of all. */
  get totals(): { bytes: number; expected: number | undefined; partsDone: number; parts: number } {
    const planned = this.steps.filter((step) => step.bytes !== undefined);
    let bytes = 0;
    for (const part of this.parts.values()) bytes += part.bytes;
    for (const step of planned) if (step.reused && !this.parts.has(partOf(step))) bytes += step.bytes ?? 0;
    const partsDone =
      planned.length > 0
        ? planned.filter((step) => step.reused || this.parts.get(partOf(step))?.done).length
        : [...this.parts.values()].filter((part) => part.done).length;
    return {
      bytes,
      expected: planned.length > 0 ? planned.reduce((sum, step) => sum + (step.bytes ?? 0), 0) : undefined,
      partsDone,
      parts: Math.max(planned.length, this.parts.size),
    };
  }

  #applyPlan(steps: readonly PlannedStep[]): void {
    const known = new Map(this.steps.map((step) => [step.id, step]));
    this.steps.length = 0;
    for (const planned of steps) {
      const step: ViewStep = known.get(planned.id) ?? { id: planned.id, title: planned.title, state: 'pending' };
      step.title = planned.title;
      if (planned.part !== undefined) step.part = planned.part;
      if (planned.bytes !== undefined) step.bytes = planned.bytes;
      if (planned.reused) step.reused = true;
      this.steps.push(step);
      known.delete(planned.id);
    }
    // Steps that ran before the plan was known (lock, connect) stay, first.
    this.steps.unshift(...known.values());
  }

  #step(id: string, title: string): ViewStep {
    let step = this.steps.find((candidate) => candidate.id === id);
    if (step === undefined) {
      step = { id, title, state: 'pending' };
      this.steps.push(step);
    }
    return step;
  }

  #part(id: string): ViewPart {
    let part = this.parts.get(id);
    if (part === undefined) {
      part = { id, bytes: 0, rate: 0, done: false };
      const planned = this.steps.find((step) => partOf(step) === id);
      if (planned?.bytes !== undefined) part.expected = planned.bytes;
      this.parts.set(id, part);
    }
    return part;
  }
}

/** The stream id of the part a step carries (its own id when the plan named none). */
function partOf(step: ViewStep): string {
  return step.part ?? step.id;
}

/** No byte for this long and the view says the part is stalled. */
export const STALL_SHOWN_AFTER_MS = 5000;

/** `1.2 MiB of 3.4 MiB (35%)`, or just the bytes when the total is unknown. */
function bytesOf(bytes: number, expected: number | undefined): string {
  if (expected === undefined || expected <= 0) return formatBytes(bytes);
  return `${formatBytes(bytes)} of ${formatBytes(expected)} (${Math.min(100, Math.floor((bytes * 100) / expected))}%)`;
}

/** ETA of a part at its rate; undefined when unknown (no rate, no total, or past the estimate). */
function etaOf(part: ViewPart): string | undefined {
  if (part.expected === undefined || part.rate <= 0 || part.bytes >= part.expected) return undefined;
  return formatDuration(((part.expected - part.bytes) * 1000) / part.rate);
}

/**
 * The one-line summary of the transfer: `part 2 of 3 volume:files: 1.2 MiB of 3.4 MiB (35%),
 * 1.1 MiB/s, ETA 2.0 s; bundle 4.5 MiB of 10.0 MiB; path ssh; no byte for 12 s`. Undefined when no
 * part is in flight.
 */
export function describeTransfer(view: RunView, now = Date.now()): string | undefined {
  const part = view.current;
  if (part === undefined) return undefined;
  const totals = view.totals;
  const index = view.steps.filter((step) => step.bytes !== undefined).findIndex((step) => partOf(step) === part.id);
  const eta = etaOf(part);
  const stalled = now - view.lastMoveAt;
  return [
    `part ${index >= 0 ? `${index + 1} of ${totals.parts} ` : ''}${part.id}: ${bytesOf(part.bytes, part.expected)}, ${formatBytes(Math.round(part.rate))}/s${eta ? `, ETA ${eta}` : ''}`,
    `bundle ${bytesOf(totals.bytes, totals.expected)}`,
    ...(view.path ? [`path ${view.path}`] : []),
    ...(stalled >= STALL_SHOWN_AFTER_MS ? [`no byte for ${Math.floor(stalled / 1000)} s`] : []),
    ...(view.retries > 0 ? [`retries ${view.retries}`] : []),
  ].join('; ');
}

const MARKS = { pending: '.', running: '>', done: '+', failed: '!' } as const;

/** Styling of the frame; identity functions when colour is off. */
export interface FrameStyle {
  readonly dim: (text: string) => string;
  readonly bold: (text: string) => string;
  readonly red: (text: string) => string;
  readonly green: (text: string) => string;
}

/** A frame style without escape codes (NO_COLOR, --no-color). */
export const PLAIN_STYLE: FrameStyle = {
  dim: (text) => text,
  bold: (text) => text,
  red: (text) => text,
  green: (text) => text,
};

/**
 * The live view as lines: the title and elapsed time, each step with its state (a part's step with
 * its bytes, rate and ETA), then the bundle, the path and how long no byte moved, and the other
 * host's current step.
 */
export function renderFrame(view: RunView, now = Date.now(), style: FrameStyle = PLAIN_STYLE, width = 100): string[] {
  // Cut before styling (a wrapped line would break the frame's shape); the step mark takes 2 columns.
  const fit = (text: string, room = width - 3): string =>
    text.length > room ? `${text.slice(0, Math.max(0, room - 1))}~` : text;
  const elapsed = formatDuration(now - view.startedAt);
  const lines = [`${style.bold(fit(view.title ?? 'deploy', width - elapsed.length - 3))}  ${style.dim(elapsed)}`];
  const idWidth = Math.max(...view.steps.map((step) => step.id.length), 4);
  for (const step of view.steps) {
    const mark =
      step.state === 'failed'
        ? style.red(MARKS.failed)
        : step.state === 'done'
          ? style.green(MARKS.done)
          : step.state === 'running'
            ? style.bold(MARKS.running)
            : style.dim(MARKS.pending);
    const part = view.parts.get(partOf(step));
    let detail = step.title;
    if (step.reused) detail = `reused, ${formatBytes(step.bytes ?? 0)} verified before`;
    else if (part?.done)
      detail = `${formatBytes(part.bytes)} at ${formatBytes(Math.round(part.rate))}/s${part.path ? `, path ${part.path}` : ''}`;
    else if (part) {
      const eta = etaOf(part);
      detail = `${bytesOf(part.bytes, part.expected)}  ${formatBytes(Math.round(part.rate))}/s${eta ? `  ETA ${eta}` : ''}`;
    } else if (step.bytes !== undefined && step.state === 'pending') detail = `${formatBytes(step.bytes)} to send`;
    const line = fit(`${step.id.padEnd(idWidth)}  ${detail}`);
    lines.push(`${mark} ${step.state === 'pending' ? style.dim(line) : line}`);
  }
  const totals = view.totals;
  if (totals.parts > 0) {
    const stalled = view.current ? now - view.lastMoveAt : 0;
    const line = fit(
      [
        `bundle ${bytesOf(totals.bytes, totals.expected)}, ${totals.partsDone} of ${totals.parts} parts`,
        ...(view.path ? [`path ${view.path}`] : []),
        ...(stalled >= STALL_SHOWN_AFTER_MS ? [`no byte for ${Math.floor(stalled / 1000)} s`] : []),
        ...(view.retries > 0 ? [`retries ${view.retries}`] : []),
      ].join('  |  '),
      width - 1,
    );
    lines.push(stalled >= STALL_SHOWN_AFTER_MS ? style.red(line) : line);
  }
  if (view.remote) lines.push(style.dim(fit(view.remote)));
  return lines;
}
