// Step times from deploy's run records (journals): both hosts write a line with `time` when a step
// starts and when it ends, so a run's time line can be rebuilt after it (the lab's hosts share a clock).

/** One step of either host on a time line: ms from a chosen zero. */
export interface TimedStep {
  readonly host: 'source' | 'target';
  readonly step: string;
  readonly from: number;
  readonly to: number;
  readonly detail?: Readonly<Record<string, unknown>>;
}

/** Parses a run record (JSON lines) as `cat` printed it. */
export function parseJournal(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** A run record's lines as steps with start and end (ms from `zero`); steps that never ended are left out. */
export function timeSteps(
  host: TimedStep['host'],
  lines: readonly Record<string, unknown>[],
  zero: number,
): TimedStep[] {
  const starts = new Map<string, number>();
  const steps: TimedStep[] = [];
  for (const line of lines) {
    if (host === 'target' && line.t !== 'step') continue;
    const at = Date.parse(String(line.time));
    const step = String(line.step);
    if (line.status === 'start') starts.set(step, at);
    else if (line.status === 'ok' && starts.has(step))
      steps.push({
        host,
        step,
        from: starts.get(step)! - zero,
        to: at - zero,
        ...(line.detail && typeof line.detail === 'object' ? { detail: line.detail as Record<string, unknown> } : {}),
      });
  }
  return steps;
}
