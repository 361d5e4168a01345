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
