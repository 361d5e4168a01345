import { DependencyError, quoteArgv, quoteWord, type Host } from '@deploykit/core';
import { DEFAULT_APPS_ROOT, DEFAULT_STATE_DIR } from '@deploykit/manifest/resolve-roots';
import { isCompatibleDeployVersion } from '../version.js';
import { listToolRequirements, MINIMUM_NODE, type SetupNeeds, type ToolRequirement } from './setup-requirements.js';

/** What the probe found on a host. */
export interface HostFacts {
  readonly uid: number;
  readonly node: string | undefined;
  /** Absolute path per tool name, '' when absent. */
  readonly tools: Readonly<Record<string, string>>;
  /** First line of `tar --version`. */
  readonly tarVersion: string;
  readonly deployPath: string;
  readonly deployVersion: string | undefined;
  /** DEPLOY_INSTALL_PREFIX in the host's session environment ('' = npm's global prefix). */
  readonly installPrefix: string;
  /** The package manager command (DEPLOY_SETUP_APT_GET, default apt-get) and whether it is there. */
  readonly aptGet: string;
  readonly aptGetFound: boolean;
  /** The apps root and state dir on the host, each with its octal mode ('' when it does not exist). */
  readonly roots: Readonly<Record<keyof SetupRoots, { readonly path: string; readonly mode: string }>>;
}

/** The folders deploy keeps on a host, when the global config's host entry names them (else the host's env or the defaults). */
export interface SetupRoots {
  readonly appsRoot?: string;
  readonly stateDir?: string;
}

/** Apps root: others may read app code (apps run as their own users); state: run records, logs and Borg data, root only. */
export const ROOT_MODES = { appsRoot: '755', stateDir: '700' } as const;

/** One row of the setup table: a check, what was found, and what setup does about it. */
export interface SetupCheck {
  readonly name: string;
  readonly why: string;
  readonly found: string;
  readonly status: 'ok' | 'missing' | 'wrong' | 'manual';
  /** What setup does (install, create, chmod) or, for `manual`, what the operator must do. */
  readonly action?: string;
}

/** One change setup makes: its argv, run on the host in this order. */
export interface SetupStep {
  readonly id: 'packages' | 'deploy' | 'roots';
  readonly title: string;
  readonly argv: readonly string[];
  /** Bytes fed to stdin (the release tarball). */
  readonly input?: Buffer;
}

/** The whole plan for a host: the checks and the steps that fix what they found. */
export interface SetupPlan {
  readonly host: string;
  readonly checks: readonly SetupCheck[];
  readonly steps: readonly SetupStep[];
  /** Debian packages to install (empty when nothing is missing or apt cannot help). */
  readonly packages: readonly string[];
  /** Problems setup cannot fix itself (Node too old, ffl, no package manager). */
  readonly blockers: readonly string[];
}

/** The shell script that collects HostFacts in one ssh session; prints `key<TAB>value` lines. */
export function buildProbeScript(tools: readonly ToolRequirement[], roots: SetupRoots): string {
  const lines = [
    'printf "uid\\t%s\\n" "$(id -u)"',
    'printf "node\\t%s\\n" "$(node --version 2>/dev/null)"',
    'printf "tar\\t%s\\n" "$(tar --version 2>/dev/null | head -n 1)"',
    'printf "deploy_path\\t%s\\n" "$(command -v deploy)"',
    'printf "deploy_version\\t%s\\n" "$(deploy --version 2>/dev/null)"',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, run by the remote shell
    'printf "prefix\\t%s\\n" "${DEPLOY_INSTALL_PREFIX:-}"',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, run by the remote shell
    'apt="${DEPLOY_SETUP_APT_GET:-apt-get}"; printf "apt\\t%s\\t%s\\n" "$apt" "$(command -v "$apt")"',
  ];
  for (const tool of tools) {
    const lookup = tool.paths
      ? `for p in ${tool.paths.join(' ')}; do [ -x "$p" ] && { echo "$p"; break; }; done`
      : `command -v ${tool.tool}`;
    lines.push(`printf "tool\\t%s\\t%s\\n" ${tool.tool} "$(${lookup})"`);
  }
  // The order deploy itself resolves them in (manifest/resolve-roots.ts), but for a config file on the host.
  const rootExpressions = {
    appsRoot: roots.appsRoot === undefined ? `"\${DEPLOY_APPS_ROOT:-${DEFAULT_APPS_ROOT}}"` : quoteWord(roots.appsRoot),
    stateDir: roots.stateDir === undefined ? `"\${DEPLOY_STATE_DIR:-${DEFAULT_STATE_DIR}}"` : quoteWord(roots.stateDir),
  };
  for (const [key, expression] of Object.entries(rootExpressions))
    lines.push(`dir=${expression}; printf "root\\t${key}\\t%s\\t%s\\n" "$dir" "$(stat -c %a "$dir" 2>/dev/null)"`);
  return lines.join('\n');
}

/** Parses the probe's output into HostFacts. */
export function parseProbe(output: string): HostFacts {
  const tools: Record<string, string> = {};
  const roots: Record<string, { path: string; mode: string }> = {};
  const single: Record<string, string> = {};
  let apt = { command: 'apt-get', found: false };
  for (const line of output.split('\n')) {
    const [key, first = '', second = '', third = ''] = line.split('\t');
    if (key === 'tool') tools[first] = second;
    else if (key === 'root') roots[first] = { path: second, mode: third };
    else if (key === 'apt') apt = { command: first, found: second !== '' };
    else if (key) single[key] = first;
  }
  return {
    uid: Number(single.uid ?? -1),
    node: single.node || undefined,
    tools,
    tarVersion: single.tar ?? '',
    deployPath: single.deploy_path ?? '',
    deployVersion: single.deploy_version || undefined,
    installPrefix: single.prefix ?? '',
    aptGet: apt.command,
    aptGetFound: apt.found,
    roots: {
      appsRoot: roots.appsRoot ?? { path: DEFAULT_APPS_ROOT, mode: '' },
      stateDir: roots.stateDir ?? { path: DEFAULT_STATE_DIR, mode: '' },
    },
  };
}

function nodeIsNewEnough(version: string | undefined): boolean {
  const match = /^v(\d+)\.(\d+)/.exec(version ?? '');
  if (!match) return false;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major > MINIMUM_NODE.major || (major === MINIMUM_NODE.major && minor >= MINIMUM_NODE.minor);
}

/** The release setup installs: the tarball and the version it carries. */
export interface SetupRelease {
  readonly file: string;
  readonly version: string;
  readonly bytes: Buffer;
}

/**
 * Compares what the host has with what it needs and plans the changes: one apt-get install for the
 * missing packages, the release when deploy is missing or not `ourVersion`, and the roots. Pure:
 * the plan is what a run executes and what `--plan` prints.
 */
export function planHostSetup(input: {
  host: string;
  facts: HostFacts;
  needs: SetupNeeds;
  ourVersion: string;
  release: SetupRelease | undefined;
}): SetupPlan {
  const { facts } = input;
  const checks: SetupCheck[] = [];
  const blockers: string[] = [];
  const packages = new Set<string>();
  const sudo = facts.uid === 0 ? [] : ['sudo', '-n'];

  const nodeOk = nodeIsNewEnough(facts.node);
  checks.push({
    name: 'node',
    why: 'runs deploy',
    found: facts.node ?? 'not found',
    status: nodeOk ? 'ok' : 'manual',
    ...(nodeOk
      ? {}
      : { action: `install Node >= ${MINIMUM_NODE.major}.${MINIMUM_NODE.minor} (e.g. NodeSource's nodejs package)` }),
  });
  if (!nodeOk)
    blockers.push(
      `Node ${facts.node ?? 'is missing'} on ${input.host}: deploy needs Node >= ${MINIMUM_NODE.major}.${MINIMUM_NODE.minor} (e.g. NodeSource's nodejs package for Debian)`,
    );

  for (const tool of listToolRequirements(input.needs)) {
    const path = facts.tools[tool.tool] ?? '';
    const gnuTar = tool.tool !== 'tar' || path === '' || facts.tarVersion.includes('GNU tar');
    if (path !== '' && gnuTar) {
      checks.push({
        name: tool.tool,
        why: tool.why,
        found: tool.tool === 'tar' ? `${path} (${facts.tarVersion})` : path,
        status: 'ok',
      });
      continue;
    }
    const found = path === '' ? 'not found' : `${path} (${facts.tarVersion || 'not GNU tar'})`;
    if (tool.debianPackage === undefined) {
      checks.push({
        name: tool.tool,
        why: tool.why,
        found,
        status: 'manual',
        action: tool.manual ?? 'install it by hand',
      });
      blockers.push(`${tool.tool} on ${input.host}: ${tool.manual ?? 'install it by hand'}`);
      continue;
    }
    packages.add(tool.debianPackage);
    checks.push({
      name: tool.tool,
      why: tool.why,
      found,
      status: path === '' ? 'missing' : 'wrong',
      action: `apt-get install ${tool.debianPackage}`,
    });
  }
  if (packages.size > 0 && !facts.aptGetFound)
    blockers.push(
      `${facts.aptGet} is not on ${input.host}: install ${[...packages].join(' ')} with its package manager`,
    );

  const steps: SetupStep[] = [];
  if (packages.size > 0 && facts.aptGetFound) {
    steps.push({
      id: 'packages',
      title: `install ${[...packages].join(', ')}`,
      argv: [
        ...sudo,
        'env',
        'DEBIAN_FRONTEND=noninteractive',
        facts.aptGet,
        'install',
        '-y',
        '--no-install-recommends',
        ...packages,
      ],
    });
  }

  const deployOk = facts.deployVersion === input.ourVersion;
  const deployFound = facts.deployVersion === undefined ? 'not found' : `${facts.deployVersion} (${facts.deployPath})`;
  if (deployOk) {
    checks.push({ name: 'deploy', why: 'runs migrations there', found: deployFound, status: 'ok' });
  } else if (input.release === undefined) {
    checks.push({
      name: 'deploy',
      why: 'runs migrations there',
      found: deployFound,
      status: 'manual',
      action: `install deploykit ${input.ourVersion} (pass --release FILE)`,
    });
    blockers.push(
      `deploy ${input.ourVersion} is not on ${input.host}, and no release to install: build one with \`npm run release\` in a deploykit checkout and pass --release FILE`,
    );
  } else {
    const verb =
      facts.deployVersion === undefined
        ? 'install'
        : isCompatibleDeployVersion(input.ourVersion, facts.deployVersion)
          ? 'upgrade'
          : 'replace';
    checks.push({
      name: 'deploy',
      why: 'runs migrations there',
      found: deployFound,
      status: facts.deployVersion === undefined ? 'missing' : 'wrong',
      action: `${verb} to ${input.ourVersion}`,
    });
    // The tarball goes to a temp dir of the host on stdin, npm installs it from there (no registry), the dir goes.
    const prefix = facts.installPrefix === '' ? [] : ['--prefix', facts.installPrefix];
    const script = `set -e; dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT; cat > "$dir/deploykit-${input.release.version}.tgz"; ${quoteArgv([...sudo, 'npm', 'install', '--global', ...prefix, '--offline', '--no-audit', '--no-fund', '--loglevel=error'])} "$dir/deploykit-${input.release.version}.tgz"`;
    steps.push({
      id: 'deploy',
      title: `${verb} deploy ${input.ourVersion} from ${input.release.file}${facts.installPrefix === '' ? '' : ` into ${facts.installPrefix}`}`,
      argv: ['sh', '-c', script],
      input: input.release.bytes,
    });
  }

  const rootCommands: string[][] = [];
  for (const key of ['appsRoot', 'stateDir'] as const) {
    const { path: dir, mode } = facts.roots[key];
    const wanted = ROOT_MODES[key];
    const name = key === 'appsRoot' ? 'apps root' : 'state dir';
    if (mode === wanted) {
      checks.push({
        name,
        why: key === 'appsRoot' ? 'app folders' : 'run records, logs, locks',
        found: `${dir} (${mode})`,
        status: 'ok',
      });
      continue;
    }
    checks.push({
      name,
      why: key === 'appsRoot' ? 'app folders' : 'run records, logs, locks',
      found: mode === '' ? `${dir} (absent)` : `${dir} (${mode})`,
      status: mode === '' ? 'missing' : 'wrong',
      action: mode === '' ? `create, mode ${wanted}` : `chmod ${wanted}`,
    });
    rootCommands.push(mode === '' ? [...sudo, 'mkdir', '-p', '-m', wanted, dir] : [...sudo, 'chmod', wanted, dir]);
  }
  for (const argv of rootCommands)
    steps.push({
      id: 'roots',
      title: argv.includes('mkdir') ? `create ${argv.at(-1)}` : `chmod ${argv.at(-2)} ${argv.at(-1)}`,
      argv,
    });
  return { host: input.host, checks, steps, packages: [...packages], blockers };
}

/** Runs the probe on the host and parses it; throws DependencyError when the host does not answer. */
export async function probeHost(host: Host, tools: readonly ToolRequirement[], roots: SetupRoots): Promise<HostFacts> {
  const result = await host.run({
    argv: ['sh', '-c', buildProbeScript(tools, roots)],
    timeoutMs: 60_000,
    label: 'setup probe',
  });
  if (result.exitCode !== 0) {
    throw new DependencyError(
      'SETUP_PROBE_FAILED',
      `could not look at host ${host.name} (exit ${result.exitCode}): ${result.stderr.trim().slice(-500)}`,
      {
        hint: `Check that \`ssh\` to ${host.name} works (deploy reaches it as the global config says).`,
      },
    );
  }
  return parseProbe(result.stdout);
}
