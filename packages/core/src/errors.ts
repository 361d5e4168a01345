/** The small error vocabulary; only the CLI maps these to messages and exit codes. */
export type ErrorKind = 'config' | 'script' | 'transport' | 'dependency' | 'usage' | 'conflict' | 'internal';

/** Exit codes of the `deploy` CLI, one per error kind (see docs/cli.md). */
export const EXIT_CODES: Readonly<Record<ErrorKind | 'ok' | 'checks', number>> = {
  ok: 0,
  checks: 1,
  usage: 2,
  config: 3,
  script: 4,
  transport: 5,
  dependency: 6,
  conflict: 7,
  internal: 70,
};

/** Base class of every error we raise on purpose; `hint` says what the user should do next. */
export class DeployError extends Error {
  readonly kind: ErrorKind;
  readonly code: string;
  readonly hint: string | undefined;
  readonly details: Readonly<Record<string, unknown>>;
  constructor(
    kind: ErrorKind,
    code: string,
    message: string,
    options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DeployError';
    this.kind = kind;
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }
}

/** A bad manifest, config file or app folder. */
export class ConfigError extends DeployError {
  constructor(
    code: string,
    message: string,
    options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super('config', code, message, options);
    this.name = 'ConfigError';
  }
}

/** A bin/<phase> script failed or timed out. */
export class ScriptError extends DeployError {
  constructor(
    code: string,
    message: string,
    options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super('script', code, message, options);
    this.name = 'ScriptError';
  }
}

/** A stream or transport failed. */
export class TransportError extends DeployError {
  constructor(
    code: string,
    message: string,
    options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super('transport', code, message, options);
    this.name = 'TransportError';
  }
}

/** A tool, host or service we depend on is missing or unreachable. */
export class DependencyError extends DeployError {
  constructor(
    code: string,
    message: string,
    options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super('dependency', code, message, options);
    this.name = 'DependencyError';
  }
}

/** Bad command-line usage. */
export class UsageError extends DeployError {
  constructor(
    code: string,
    message: string,
    options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super('usage', code, message, options);
    this.name = 'UsageError';
  }
}

/** Something else holds what we need (a lock, an existing folder). */
export class ConflictError extends DeployError {
  constructor(
    code: string,
    message: string,
    options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super('conflict', code, message, options);
    this.name = 'ConflictError';
  }
}

/** Wraps anything unexpected: it is our bug. */
export function toDeployError(error: unknown): DeployError {
  if (error instanceof DeployError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new DeployError('internal', 'INTERNAL', `internal error: ${message}`, {
    cause: error,
    hint: 'This is a bug in deploykit; run again with --verbose and report the output.',
  });
}
