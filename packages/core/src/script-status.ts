/** Exit code a bin/<phase> script uses to say "nothing to do here". */
export const EXIT_SKIPPED = 75;

/** The outcome of a bin/<phase> script. */
export type PhaseStatus = 'ok' | 'skipped' | 'failed';

/** The one place that interprets a script's exit: 0 ok, 75 skipped, anything else (or a signal) failed. */
export function interpretExit(exitCode: number | null, signal: string | null = null): PhaseStatus {
  if (signal !== null || exitCode === null) return 'failed';
  if (exitCode === 0) return 'ok';
  if (exitCode === EXIT_SKIPPED) return 'skipped';
  return 'failed';
}
