import { randomBytes, randomInt } from 'node:crypto';
import type { Server } from 'node:http';
import { formatStdinName } from './format-time.js';
import type { HookSink } from './hook-sink.js';
import type { ShareArguments } from './parse-argv.js';
import { FFL_STANDIN_ENV, readIntegerSwitch } from './standin-env.js';
import { resolveTiming, type StandinTiming } from './standin-timing.js';
import { StdinSource } from './stdin-source.js';

const UID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** Switch values read once at start. */
export interface ShareSwitches {
  readonly killAfterBytes: number;
  readonly httpDropAfterBytes: number;
  readonly webrtcDropAfterBytes: number;
  readonly tunnelFail: boolean;
  readonly pickupLockMs: number;
  readonly windowBytes: number;
  readonly timing: StandinTiming;
}

/** What a share counts and remembers while it runs. */
export interface ShareState {
  shuttingDown: boolean;
  interrupted: boolean;
  hardExit: boolean;
  downloadCount: number;
  totalWireBytes: number;
  httpDropUsed: boolean;
  webrtcDropUsed: boolean;
  /** Counts HTTP legs started, so a stalled direct leg knows whether the receiver handed off. */
  httpLegs: number;
  pickupFailures: number;
  pickupLockedUntil: number;
  checksum: { checksum: string; size: number; transport: string; updatedAt: string } | undefined;
  readonly peers: Set<string>;
  readonly receipts: Map<string, () => void>;
  readonly receiptsSeen: Set<string>;
}

/** One `ffl share -`: its arguments, switches, identity, state and the server once it listens. */
export interface ShareSession {
  readonly args: ShareArguments;
  readonly hook: HookSink;
  readonly env: NodeJS.ProcessEnv;
  readonly switches: ShareSwitches;
  readonly timing: StandinTiming;
  readonly uid: string;
  readonly contentName: string;
  readonly pickupCode: string | undefined;
  readonly authEnabled: boolean;
  readonly webrtcEnabled: boolean;
  readonly e2eeKey: Buffer;
  readonly e2eeNonce: Buffer;
  readonly startedAt: number;
  readonly state: ShareState;
  readonly source: StdinSource;
  /** Resolves with the exit code once the share ended (max downloads, timeout, Ctrl+C). */
  readonly exitCode: Promise<number>;
  readonly resolveExit: (code: number) => void;
  server: Server | undefined;
  timeoutTimer: NodeJS.Timeout | undefined;
  /** `127.0.0.1:<port>` once the server listens. */
  domain: string;
  link: string;
}

/** Reads the stand-in's switches (docs/ffl-standin.md) and the real tool's handoff window from `env`. */
export function readShareSwitches(env: NodeJS.ProcessEnv): ShareSwitches {
  return {
    killAfterBytes: readIntegerSwitch(env, FFL_STANDIN_ENV.killAfterBytes, 0),
    httpDropAfterBytes: readIntegerSwitch(env, FFL_STANDIN_ENV.httpDropAfterBytes, 0),
    webrtcDropAfterBytes: readIntegerSwitch(env, FFL_STANDIN_ENV.webrtcDropAfterBytes, 0),
    tunnelFail: ['1', 'true', 'yes'].includes((env[FFL_STANDIN_ENV.tunnelFail] ?? '').toLowerCase()),
    pickupLockMs: readIntegerSwitch(env, FFL_STANDIN_ENV.pickupLockSeconds, 300) * 1000,
    windowBytes: readIntegerSwitch(env, 'READER_STDIN_HANDOFF_WINDOW_MB', 32) * 1024 * 1024,
    timing: resolveTiming(env),
  };
}

function generateUid(): string {
  let uid = '';
  for (let index = 0; index < 8; index += 1) uid += UID_ALPHABET[randomInt(UID_ALPHABET.length)];
  return uid;
}

/** Sets up a share from its parsed arguments: identity, pickup code, E2EE key, stdin source. */
export function createShareSession(args: ShareArguments, hook: HookSink, env: NodeJS.ProcessEnv): ShareSession {
  const switches = readShareSwitches(env);
  let resolveExit: (code: number) => void = () => undefined;
  const exitCode = new Promise<number>((resolve) => {
    resolveExit = resolve;
  });
  return {
    args,
    hook,
    env,
    switches,
    timing: switches.timing,
    uid: generateUid(),
    contentName: args.name ?? formatStdinName(),
    pickupCode:
      args.pickupCode ?? (args.recipientAuth === 'pickup' ? String(randomInt(1_000_000)).padStart(6, '0') : undefined),
    authEnabled: args.authPassword !== undefined,
    webrtcEnabled: !args.forceRelay,
    e2eeKey: randomBytes(32),
    e2eeNonce: randomBytes(16),
    startedAt: Date.now(),
    state: {
      shuttingDown: false,
      interrupted: false,
      hardExit: false,
      downloadCount: 0,
      totalWireBytes: 0,
      httpDropUsed: false,
      webrtcDropUsed: false,
      httpLegs: 0,
      pickupFailures: 0,
      pickupLockedUntil: 0,
      checksum: undefined,
      peers: new Set<string>(),
      receipts: new Map<string, () => void>(),
      receiptsSeen: new Set<string>(),
    },
    source: new StdinSource({
      cache: args.stdinCache,
      windowBytes: switches.windowBytes,
      openInput: () => process.stdin[Symbol.asyncIterator]() as AsyncIterator<Buffer>,
    }),
    exitCode,
    resolveExit: (code) => resolveExit(code),
    server: undefined,
    timeoutTimer: undefined,
    domain: '',
    link: '',
  };
}

/** Prints one line of the share's stdout (§1.1), flushed per line. */
export function say(line: string): void {
  process.stdout.write(`${line}\n`);
}
