/** A log/event level. */
export type Level = 'debug' | 'info' | 'warn' | 'error';

/** Context shared by every event of one run; rendered as DEPLOY_* env for scripts too. */
export interface RunContext {
  readonly runId: string;
  readonly app?: string;
  readonly host?: string;
  readonly role?: 'source' | 'target' | 'local';
}

/**
 * The data of each event type deploy emits, by type (`undefined`: the event carries no data). Empty
 * here: the package whose actions emit an event declares it, next to the types its data is made of
 * (packages/deploy/src/deploy-events.ts augments this interface), since core imports nothing of
 * theirs (docs/decisions/0010-ffl-standin-package-and-typed-events.md).
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging in @deploykit/deploy (deploy-events.ts)
export interface DeployEventDataMap {}

/** The type of an event deploy emits (`migrate.step`, `stream.progress`, ...). */
export type DeployEventType = keyof DeployEventDataMap & string;

/** The fields every event has besides its type and data. */
export interface DeployEventFields {
  readonly time: string;
  readonly level: Level;
  readonly message?: string;
  readonly runId?: string;
  readonly app?: string;
  readonly host?: string;
  readonly phase?: string;
  readonly stream?: string;
}

/** The `data` field of an event of a type whose data is `D`: absent for `undefined`. */
type DataField<D> = [D] extends [undefined] ? { readonly data?: undefined } : { readonly data: D };

/** The event of type `T` with its own data. */
export type DeployEventOf<T extends DeployEventType> = DeployEventFields & { readonly type: T } & DataField<
    DeployEventDataMap[T]
  >;

/** One typed event, a union discriminated by `type`; renderers (TTY, winston, JSONL) are listeners. */
export type DeployEvent = { [T in DeployEventType]: DeployEventOf<T> }[DeployEventType];

/** Marks a ForeignDeployEvent; a symbol, so the JSONL wire never carries it. */
export const FOREIGN_EVENT: unique symbol = Symbol('foreign deploy event');

/**
 * An event another `deploy` printed whose type this version does not know (a newer target): kept
 * as it came, data untyped, so it can be shown and relayed; only parseDeployEvent makes one.
 */
export interface ForeignDeployEvent extends DeployEventFields {
  readonly type: string;
  readonly data?: Readonly<Record<string, unknown>>;
  readonly [FOREIGN_EVENT]: true;
}

/** What listeners receive: deploy's own events, and a foreign deploy's relayed ones. */
export type BusEvent = DeployEvent | ForeignDeployEvent;

/** True for an event of a type this version does not know (narrows the rest to DeployEvent). */
export function isForeignEvent(event: BusEvent): event is ForeignDeployEvent {
  return FOREIGN_EVENT in event;
}

const LEVELS: readonly Level[] = ['debug', 'info', 'warn', 'error'];

/**
 * Parses one JSON line another `deploy` printed with --jsonl into the event it emitted; undefined
 * for anything that is not one (a stray line, a torn write). A type in `known` is taken as the
 * DeployEvent this version emits under that name (the wire is trusted for its data, as it comes
 * from our own `deploy` on the other host); any other type stays a ForeignDeployEvent, never
 * dropped, so a newer target's events still show. Without `known`, every event is foreign.
 */
export function parseDeployEvent(line: string): ForeignDeployEvent | undefined;
export function parseDeployEvent(line: string, known: ReadonlySet<string>): BusEvent | undefined;
export function parseDeployEvent(line: string, known: ReadonlySet<string> = new Set()): BusEvent | undefined {
  if (!line.startsWith('{')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const event = value as Record<string, unknown>;
  if (typeof event.type !== 'string' || typeof event.time !== 'string' || !LEVELS.includes(event.level as Level))
    return undefined;
  for (const key of ['message', 'runId', 'app', 'host', 'phase', 'stream'] as const) {
    if (event[key] !== undefined && typeof event[key] !== 'string') return undefined;
  }
  if (event.data !== undefined && (typeof event.data !== 'object' || event.data === null || Array.isArray(event.data)))
    return undefined;
  // The parse boundary: JSON is untyped, the checks above are all a line can be held to here.
  if (known.has(event.type)) return event as unknown as DeployEvent;
  return Object.assign(event, { [FOREIGN_EVENT]: true as const }) as unknown as ForeignDeployEvent;
}

/** Receives events. */
export type EventListener = (event: BusEvent) => void;

/** The event types that carry no data, and those that do. */
export type DatalessEventType = {
  [T in DeployEventType]: [DeployEventDataMap[T]] extends [undefined] ? T : never;
}[DeployEventType];
export type DataEventType = Exclude<DeployEventType, DatalessEventType>;

/** What an emitter gives besides the type and data (time and the run context are stamped on). */
export type DeployEventInput = Omit<DeployEventFields, 'time' | 'level'> & { readonly level?: Level };

/** A fan-out of events to listeners, carrying the run context onto every event. */
export class EventBus {
  readonly #listeners = new Set<EventListener>();
  readonly #events: BusEvent[] = [];
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
  emit<T extends DatalessEventType>(type: T, fields?: DeployEventInput): DeployEventOf<T>;
  emit<T extends DataEventType>(
    type: T,
    fields: DeployEventInput & { readonly data: DeployEventDataMap[T] },
  ): DeployEventOf<T>;
  emit<T extends DeployEventType>(type: T, fields?: DeployEventInput & { readonly data?: unknown }): DeployEventOf<T> {
    // The one place an event is built from its parts: TS cannot follow `T` through the spread.
    const event = this.#stamp(type, fields ?? {});
    this.#publish(event as BusEvent);
    return event as DeployEventOf<T>;
  }
  /**
   * Publishes an event another `deploy` emitted (parseDeployEvent), stamped anew with this run's
   * time and context and then `fields` (the other host's app and host): its type and data unchanged.
   */
  relay<E extends BusEvent>(event: E, fields: { level?: Level; app?: string; host?: string }): E {
    const { type, time: _time, level, runId: _runId, app: _app, host: _host, ...rest } = event;
    const relayed = this.#stamp(type, { ...rest, level, ...fields });
    this.#publish(relayed as BusEvent);
    return relayed as E;
  }
  /** Events emitted so far (only when constructed with keep: true). */
  get events(): readonly BusEvent[] {
    return this.#events;
  }
  #stamp(type: string, fields: { readonly level?: Level }): unknown {
    return {
      type,
      time: new Date().toISOString(),
      level: fields.level ?? 'info',
      runId: this.context.runId,
      ...(this.context.app === undefined ? {} : { app: this.context.app }),
      ...(this.context.host === undefined ? {} : { host: this.context.host }),
      ...fields,
    };
  }
  #publish(event: BusEvent): void {
    if (this.keep) this.#events.push(event);
    for (const listener of this.#listeners) listener(event);
  }
}
