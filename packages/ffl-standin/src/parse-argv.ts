/**
 * ffl's command-line grammar (reference §0, `bases/CLI.py`): global flags anywhere, implicit
 * `share`/`download` insertion, argparse-style errors (exit 2) and semantic validation (exit 1).
 */

/** One option as argparse would declare it. */
interface OptionSpec {
  readonly names: readonly string[];
  readonly key: string;
  readonly kind: 'flag' | 'value' | 'optional-value' | 'append';
  readonly choices?: readonly string[];
  readonly type?: 'int' | 'port';
}

const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  { names: ['--version'], key: 'version', kind: 'flag' },
  { names: ['--cli'], key: 'cli', kind: 'flag' },
  { names: ['--log-level'], key: 'logLevel', kind: 'value' },
  { names: ['--proxy'], key: 'proxy', kind: 'value' },
  { names: ['--hook'], key: 'hook', kind: 'value' },
  { names: ['--enable-reporting'], key: 'enableReporting', kind: 'flag' },
  { names: ['-h', '--help'], key: 'help', kind: 'flag' },
];

const RECIPIENT_AUTH_SHARE = ['pickup', 'pubkey', 'pubkey+pickup', 'email'] as const;
const RECIPIENT_AUTH_DOWNLOAD = ['pickup', 'pubkey', 'pubkey+pickup'] as const;

const SHARE_OPTIONS: readonly OptionSpec[] = [
  { names: ['-n', '--name'], key: 'name', kind: 'value' },
  { names: ['--stdin-cache'], key: 'stdinCache', kind: 'value', choices: ['on', 'off'] },
  { names: ['--max-downloads'], key: 'maxDownloads', kind: 'value', type: 'int' },
  { names: ['--timeout'], key: 'timeout', kind: 'value', type: 'int' },
  { names: ['--e2ee'], key: 'e2ee', kind: 'flag' },
  { names: ['--pickup-code'], key: 'pickupCode', kind: 'value' },
  { names: ['--recipient-auth'], key: 'recipientAuth', kind: 'value', choices: RECIPIENT_AUTH_SHARE },
  { names: ['--recipient-email'], key: 'recipientEmail', kind: 'append' },
  { names: ['--recipient-otp-api-base'], key: 'recipientOtpApiBase', kind: 'value' },
  { names: ['--recipient-public-key'], key: 'recipientPublicKey', kind: 'append' },
  { names: ['--auth-user'], key: 'authUser', kind: 'value' },
  { names: ['--auth-password'], key: 'authPassword', kind: 'value' },
  { names: ['--json'], key: 'json', kind: 'value' },
  { names: ['--force-relay'], key: 'forceRelay', kind: 'flag' },
  { names: ['--port'], key: 'port', kind: 'value', type: 'port' },
  { names: ['--preferred-tunnel'], key: 'preferredTunnel', kind: 'value', choices: ['default'] },
  { names: ['--disable-clipboard'], key: 'disableClipboard', kind: 'flag' },
  { names: ['--qr'], key: 'qr', kind: 'optional-value' },
  { names: ['--invite'], key: 'invite', kind: 'flag' },
  { names: ['--foreground'], key: 'foreground', kind: 'flag' },
  { names: ['--background'], key: 'background', kind: 'flag' },
  { names: ['--exclude'], key: 'exclude', kind: 'append' },
  { names: ['--vfs'], key: 'vfs', kind: 'flag' },
  { names: ['--upload'], key: 'upload', kind: 'optional-value' },
  { names: ['--resume'], key: 'resume', kind: 'flag' },
  { names: ['--pause'], key: 'pause', kind: 'flag' },
  { names: ['--yes'], key: 'yes', kind: 'flag' },
  { names: ['--legacy-link'], key: 'legacyLink', kind: 'flag' },
];

const DOWNLOAD_OPTIONS: readonly OptionSpec[] = [
  { names: ['--stdout'], key: 'stdout', kind: 'flag' },
  { names: ['-o', '--output'], key: 'output', kind: 'value' },
  { names: ['--resume'], key: 'resume', kind: 'flag' },
  { names: ['--pickup-code'], key: 'pickupCode', kind: 'value' },
  { names: ['--recipient-auth'], key: 'recipientAuth', kind: 'value', choices: RECIPIENT_AUTH_DOWNLOAD },
  { names: ['--recipient-private-key'], key: 'recipientPrivateKey', kind: 'value' },
  { names: ['--auth-user'], key: 'authUser', kind: 'value' },
  { names: ['--auth-password'], key: 'authPassword', kind: 'value' },
];

const COMMANDS = ['share', 'download', 'upgrade', 'keygen', 'daemon', 'shares'] as const;

/** Options every command accepts. */
export interface GlobalOptions {
  readonly hook: string | undefined;
  readonly logLevel: string | undefined;
  readonly proxy: string | undefined;
}

/** A parsed `ffl share` invocation. */
export interface ShareArguments extends GlobalOptions {
  readonly command: 'share';
  readonly files: readonly string[];
  readonly name: string | undefined;
  readonly stdinCache: boolean;
  readonly maxDownloads: number;
  readonly timeoutSeconds: number;
  readonly e2ee: boolean;
  readonly pickupCode: string | undefined;
  readonly recipientAuth: string | undefined;
  readonly authUser: string;
  readonly authUserGiven: boolean;
  readonly authPassword: string | undefined;
  readonly jsonPath: string | undefined;
  readonly forceRelay: boolean;
  readonly port: number | undefined;
  readonly preferredTunnel: string | undefined;
}

/** A parsed `ffl download` invocation. */
export interface DownloadArguments extends GlobalOptions {
  readonly command: 'download';
  readonly url: string;
  readonly stdout: boolean;
  readonly output: string | undefined;
  readonly resume: boolean;
  readonly pickupCode: string | undefined;
  readonly authUser: string;
  readonly authPassword: string | undefined;
}

/** What `parseFflArgv` decided: run a command, or print something and exit with `exitCode`. */
export type ParsedFflArgv =
  | { readonly kind: 'run'; readonly args: ShareArguments | DownloadArguments }
  | { readonly kind: 'print'; readonly stdout: string; readonly stderr: string; readonly exitCode: number };

/** The version the stand-in imitates (reference: upstream HEAD fcbb203 = 4.0.6). */
export const IMITATED_VERSION = '4.0.6';

const MAIN_USAGE =
  'usage: FFL.py [-h] [--version] [--cli] [--log-level LOG_LEVEL] [--proxy PROXY] [--hook WEBHOOK_URL_OR_PATH]\n' +
  '              {share,download,upgrade,keygen,daemon,shares} ...\n';

function formatSubUsage(command: string, specs: readonly OptionSpec[]): string {
  const parts = specs.map((spec) => {
    const name = spec.names[spec.names.length - 1] ?? '';
    if (spec.kind === 'flag') return `[${name}]`;
    if (spec.choices !== undefined) return `[${name} {${spec.choices.join(',')}}]`;
    return `[${name} ${spec.key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}]`;
  });
  const positional = command === 'download' ? ' url' : ' [file ...]';
  return `usage: FFL.py ${command} [-h] ${parts.join(' ')}${positional}\n`;
}

/** Help text printed for no arguments or `-h`. */
export function formatFflHelp(): string {
  return (
    MAIN_USAGE +
    '\nFastFileLink CLI (deploykit stand-in imitating ffl ' +
    IMITATED_VERSION +
    ')\n\n' +
    'positional arguments:\n' +
    '  {share,download,upgrade,keygen,daemon,shares}\n' +
    '    share               Share a file or stdin (-) through a link (default command)\n' +
    '    download            Download a shared link (default for http:// and https:// arguments)\n\n' +
    'options:\n' +
    '  -h, --help            show this help message and exit\n' +
    "  --version             show program's version number and exit\n" +
    '  --log-level LOG_LEVEL DEBUG, INFO, WARNING, ERROR or a logging config JSON\n' +
    '  --proxy PROXY         proxy for the tunnel connection\n' +
    '  --hook WEBHOOK_URL_OR_PATH  JSON Lines event file or webhook URL\n'
  );
}

function usageError(prog: string, usage: string, message: string): ParsedFflArgv {
  return { kind: 'print', stdout: '', stderr: `${usage}${prog}: error: ${message}\n`, exitCode: 2 };
}

function findSpec(token: string, specs: readonly OptionSpec[]): OptionSpec | 'ambiguous' | undefined {
  const exact = specs.find((spec) => spec.names.includes(token));
  if (exact !== undefined) return exact;
  if (!token.startsWith('--')) return undefined;
  // argparse allow_abbrev: a unique prefix of a long option is accepted.
  const matches = specs.filter((spec) => spec.names.some((name) => name.startsWith('--') && name.startsWith(token)));
  if (matches.length === 1) return matches[0];
  return matches.length > 1 ? 'ambiguous' : undefined;
}

function takesValue(spec: OptionSpec): boolean {
  return spec.kind === 'value' || spec.kind === 'append';
}

/** Inserts `share` or `download` like `preprocessArguments`: after the leading global options. */
function insertImplicitCommand(argv: readonly string[]): string[] {
  const tokens = [...argv];
  let index = 0;
  while (index < tokens.length) {
    const token = tokens[index] ?? '';
    const [flag] = token.split('=', 1);
    const spec = token.startsWith('-') && token !== '-' ? findSpec(flag ?? token, GLOBAL_OPTIONS) : undefined;
    if (spec !== undefined && spec !== 'ambiguous') {
      index += takesValue(spec) && !token.includes('=') ? 2 : 1;
      continue;
    }
    if ((COMMANDS as readonly string[]).includes(token)) return tokens;
    const implicit = /^https?:\/\//.test(token) ? 'download' : 'share';
    tokens.splice(index, 0, implicit);
    return tokens;
  }
  return tokens;
}

/** Parses argv (without node and script) into a command or a print-and-exit outcome. */
export function parseFflArgv(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedFflArgv {
  if (argv.length === 0) return { kind: 'print', stdout: formatFflHelp(), stderr: '', exitCode: 0 };
  const tokens = insertImplicitCommand(argv);
  const values = new Map<string, string | boolean | string[]>();
  const positionals: string[] = [];
  let command: string | undefined;
  let specs: readonly OptionSpec[] = GLOBAL_OPTIONS;
  let onlyPositionals = false;

  for (let index = 0; index < tokens.length; index += 1) {
    const token = tokens[index] ?? '';
    if (onlyPositionals || token === '-' || !token.startsWith('-')) {
      if (command === undefined && !onlyPositionals) {
        if (!(COMMANDS as readonly string[]).includes(token)) {
          return usageError(
            'FFL.py',
            MAIN_USAGE,
            `argument command: invalid choice: '${token}' (choose from ${COMMANDS.map((c) => `'${c}'`).join(', ')})`,
          );
        }
        command = token;
        specs = [
          ...GLOBAL_OPTIONS,
          ...(command === 'download' ? DOWNLOAD_OPTIONS : command === 'share' ? SHARE_OPTIONS : []),
        ];
        continue;
      }
      positionals.push(token);
      continue;
    }
    if (token === '--') {
      onlyPositionals = true;
      continue;
    }
    const prog = command === undefined ? 'FFL.py' : `FFL.py ${command}`;
    const usage = command === undefined ? MAIN_USAGE : formatSubUsage(command, specs);
    let flag = token;
    let inlineValue: string | undefined;
    if (token.startsWith('--') && token.includes('=')) {
      flag = token.slice(0, token.indexOf('='));
      inlineValue = token.slice(token.indexOf('=') + 1);
    } else if (!token.startsWith('--') && token.length > 2) {
      flag = token.slice(0, 2);
      inlineValue = token.slice(2);
    }
    const spec = findSpec(flag, specs);
    if (spec === 'ambiguous') return usageError(prog, usage, `ambiguous option: ${flag}`);
    if (spec === undefined) return usageError('FFL.py', MAIN_USAGE, `unrecognized arguments: ${token}`);
    const display = spec.names.join('/');
    if (spec.kind === 'flag') {
      if (inlineValue !== undefined)
        return usageError(prog, usage, `argument ${display}: ignored explicit argument '${inlineValue}'`);
      values.set(spec.key, true);
      continue;
    }
    let value = inlineValue;
    if (value === undefined) {
      const next = tokens[index + 1];
      const nextIsValue = next !== undefined && (next === '-' || !next.startsWith('-'));
      if (nextIsValue) {
        value = next;
        index += 1;
      } else if (spec.kind === 'optional-value') {
        values.set(spec.key, true);
        continue;
      } else {
        return usageError(prog, usage, `argument ${display}: expected one argument`);
      }
    }
    if (spec.choices !== undefined && !spec.choices.includes(value)) {
      return usageError(
        prog,
        usage,
        `argument ${display}: invalid choice: '${value}' (choose from ${spec.choices.map((c) => `'${c}'`).join(', ')})`,
      );
    }
    if (spec.type === 'int' || spec.type === 'port') {
      if (!/^[+-]?\d+$/.test(value.trim()))
        return usageError(prog, usage, `argument ${display}: invalid int value: '${value}'`);
      const number = Number(value);
      if (spec.type === 'port' && (number < 1024 || number > 65535)) {
        return usageError(prog, usage, `argument ${display}: Port must be between 1024 and 65535`);
      }
    }
    if (spec.kind === 'append') {
      const list = values.get(spec.key);
      values.set(spec.key, [...(Array.isArray(list) ? list : []), value]);
    } else {
      values.set(spec.key, value);
    }
  }

  const text = (key: string): string | undefined => {
    const value = values.get(key);
    return typeof value === 'string' ? value : undefined;
  };
  const flag = (key: string): boolean => values.get(key) !== undefined && values.get(key) !== false;

  if (flag('help')) {
    const body = command === undefined ? formatFflHelp() : formatSubUsage(command, specs);
    return { kind: 'print', stdout: body, stderr: '', exitCode: 0 };
  }
  if (flag('version'))
    return {
      kind: 'print',
      stdout: `FastFileLink CLI ${IMITATED_VERSION} (deploykit stand-in)\n`,
      stderr: '',
      exitCode: 0,
    };
  const globals: GlobalOptions = { hook: text('hook'), logLevel: text('logLevel'), proxy: text('proxy') };

  if (command === 'download') {
    const [url, ...extra] = positionals;
    if (url === undefined)
      return usageError(
        'FFL.py download',
        formatSubUsage('download', specs),
        'the following arguments are required: url',
      );
    if (extra.length > 0) return usageError('FFL.py', MAIN_USAGE, `unrecognized arguments: ${extra.join(' ')}`);
    return {
      kind: 'run',
      args: {
        ...globals,
        command: 'download',
        url,
        stdout: flag('stdout'),
        output: text('output'),
        resume: flag('resume'),
        pickupCode: text('pickupCode'),
        authUser: text('authUser') ?? 'ffl',
        authPassword: text('authPassword'),
      },
    };
  }
  if (command !== 'share') {
    return {
      kind: 'print',
      stdout: `Error: the ffl stand-in does not implement '${command ?? ''}'\n`,
      stderr: '',
      exitCode: 1,
    };
  }
  return validateShare(globals, positionals, text, flag, env);
}

function validateShare(
  globals: GlobalOptions,
  files: readonly string[],
  text: (key: string) => string | undefined,
  flag: (key: string) => boolean,
  env: NodeJS.ProcessEnv,
): ParsedFflArgv {
  const fail = (message: string): ParsedFflArgv => ({
    kind: 'print',
    stdout: `Error: ${message}\n`,
    stderr: '',
    exitCode: 1,
  });
  const pickupCode = text('pickupCode');
  if (pickupCode !== undefined && !/^\d{6}$/.test(pickupCode)) return fail('--pickup-code must be exactly 6 digits');
  const authPassword = text('authPassword') ?? (env['FFL_AUTH_PASSWORD'] || undefined);
  if (text('authUser') !== undefined && authPassword === undefined) return fail('--auth-user requires --auth-password');
  if (files.length === 0) return fail('Please specify a file or folder to share (use - for stdin)');
  if (files.includes('-') && flag('vfs')) return fail('--vfs cannot be used with stdin (-)');
  if (files.length !== 1 || files[0] !== '-') return fail('the ffl stand-in only shares stdin (-)');
  const recipientAuth = text('recipientAuth');
  if (recipientAuth !== undefined && recipientAuth !== 'pickup')
    return fail(`the ffl stand-in does not support --recipient-auth ${recipientAuth}`);
  return {
    kind: 'run',
    args: {
      ...globals,
      command: 'share',
      files,
      name: text('name'),
      stdinCache: text('stdinCache') !== 'off',
      maxDownloads: Math.max(0, Number(text('maxDownloads') ?? '0')),
      timeoutSeconds: Math.max(0, Number(text('timeout') ?? '0')),
      e2ee: flag('e2ee'),
      pickupCode,
      recipientAuth,
      authUser: text('authUser') ?? 'ffl',
      authUserGiven: text('authUser') !== undefined,
      authPassword,
      jsonPath: text('json'),
      forceRelay: flag('forceRelay'),
      port: text('port') === undefined ? undefined : Number(text('port')),
      preferredTunnel: text('preferredTunnel'),
    },
  };
}
