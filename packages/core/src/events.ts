/** A log/event level. */
export type Level = 'debug' | 'info' | 'warn' | 'error';

/** Context shared by every event of one run; rendered as DEPLOY_* env for scripts too. */
export interface RunContext {
  readonly runId: string;
  readonly app?: string;
  readonly host?: string;
  readonly role?: 'source' | 'target' | 'local';
}

/** One typed event; renderers (TTY, winston, JSONL) are listeners. */
export interface DeployEvent {
  readonly type: string;
  readonly time: string;
  readonly level: Level;
  readonly message?: string;
  readonly runId?: string;
  readonly app?: string;
  readonly host?: string;
  readonly phase?: string;
  readonly stream?: string;
  readonly data?: Readonly<Record<string, unknown>>;
}

const LEVELS: readonly Level[] = ['debug', 'info', 'warn', 'error'];

/**
 * Parses one JSON line another `deploy` printed with --jsonl into the DeployEvent it emitted;
 * undefined for anything that is not one (a stray line, a torn write).
 */
export function parseDeployEvent(line: string): DeployEvent | undefined {
  if (!line.startsWith('{')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const event = value as Record<string, unknown>;
  if (typeof event.type !== 'string' || typeof event.time !== 'string' || !LEVELS.includes(event.level as Level)) return undefined;
  for (const key of ['message', 'runId', 'app', 'host', 'phase', 'stream'] as const) {
    if (event[key] !== undefined && typeof event[key] !== 'string') return undefined;
  }
  if (event.data !== undefined && (typeof event.data !== 'object' || event.data === null || Array.isArray(event.data))) return undefined;
  return event as unknown as DeployEvent;
}

/** Receives events. */
export type EventListener = (event: DeployEvent) => void;

/** A fan-out of events to listeners, carrying the run context onto every event. */
export class EventBus {
  readonly #listeners = new Set<EventListener>();
  readonly #events: DeployEvent[] = [];
  readonly context: RunContext;
  readonly keep: boolean;
  constructor(context: RunContext, options: { keep?: boolean } = {}) {
    this.context = context;
    this.keep = options.keep ?? false;
  }
  /** Adds a listener; returns a function removing it. */
  on(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  /** Emits an event stamped with time and run context. */
  emit(type: string, fields: Omit<DeployEvent, 'type' | 'time' | 'level'> & { level?: Level } = {}): DeployEvent {
    const event: DeployEvent = {
      type,
      time: new Date().toISOString(),
      level: fields.level ?? 'info',
      runId: this.context.runId,
      ...(this.context.app === undefined ? {} : { app: this.context.app }),
      ...(this.context.host === undefined ? {} : { host: this.context.host }),
      ...fields,
    };
    if (this.keep) this.#events.push(event);
    for (const listener of this.#listeners) listener(event);
    return event;
  }
  /** Events emitted so far (only when constructed with keep: true). */
  get events(): readonly DeployEvent[] {
    return this.#events;
  }
}
