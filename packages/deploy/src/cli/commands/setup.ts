import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DependencyError, displayArgv, EXIT_CODES, UsageError, type Host } from '@deploykit/core';
import { loadGlobalConfig } from '@deploykit/manifest';
import { loadApp } from '../../actions/load-app.js';
import { engineFor } from '../../database/engines.js';
import { defaultReleasePath } from '../../install-paths.js';
import { planHostSetup, probeHost, type SetupPlan, type SetupRelease } from '../../setup/host-setup.js';
import { listToolRequirements, type SetupNeeds } from '../../setup/setup-requirements.js';
import { DEPLOY_VERSION } from '../../version.js';
import { resolveNamedHost } from '../delegate.js';
import type { CommandContext } from '../command-context.js';
import type { DeployCommand } from '../deploy-command.js';
import { renderTable } from '../table.js';

/** What the apps named with --app and the kinds named with --with need on the host. */
async function collectNeeds(context: CommandContext, args: Record<string, unknown>): Promise<SetupNeeds> {
  const kinds = new Set((args.with as string[] | undefined) ?? []);
  for (const name of (args.app as string[] | undefined) ?? []) {
    const app = await loadApp(context.hostContext.appsRoot, name, { allowMissingSecrets: true });
    const engine = engineFor(app.manifest)?.kind;
    if (engine !== undefined) kinds.add(engine);
    if (app.manifest.migrate.transport === 'ffl') kinds.add('ffl');
  }
  return { postgres: kinds.has('postgres'), mariadb: kinds.has('mariadb'), ffl: kinds.has('ffl') };
}

/** The release to install: --release FILE, else the one `npm run release` built in this checkout; checked to be this deploy's version. */
async function readRelease(host: Host, file: string | undefined): Promise<SetupRelease | undefined> {
  const path = file === undefined ? defaultReleasePath(DEPLOY_VERSION) : resolve(file);
  if (file === undefined && !existsSync(path)) return undefined;
  if (!existsSync(path))
    throw new UsageError('SETUP_RELEASE_MISSING', `release ${path} does not exist`, {
      hint: 'Build it with `npm run release` in a deploykit checkout (dist-release/deploykit-<version>.tgz).',
    });
  const listed = await host.run({
    argv: ['tar', '-xzOf', path, 'package/package.json'],
    timeoutMs: 60_000,
    label: 'read release version',
  });
  const version = listed.exitCode === 0 ? (JSON.parse(listed.stdout) as { version?: string }).version : undefined;
  if (version !== DEPLOY_VERSION) {
    throw new UsageError(
      'SETUP_RELEASE_VERSION',
      `${path} holds deploykit ${version ?? '(no package.json: not a release)'}, and this deploy is ${DEPLOY_VERSION}: setup installs the caller's version`,
      {
        hint: `Pass the release of ${DEPLOY_VERSION} (npm run release in the checkout this deploy runs from), or run setup with the deploy of that release.`,
      },
    );
  }
  return { file: path, version, bytes: await readFile(path) };
}

function renderChecks(plan: SetupPlan, done: boolean): string {
  return renderTable(
    ['CHECK', 'NEEDED FOR', 'FOUND', done ? 'CHANGED' : 'TO DO'],
    plan.checks.map((check) => [
      check.name,
      check.why,
      check.found,
      check.status === 'ok' ? '-' : (check.action ?? check.status),
    ]),
  );
}

function renderPlanSteps(plan: SetupPlan): string[] {
  return plan.steps.map(
    (step, index) =>
      `${String(index + 1).padStart(2)}. [${step.id}] ${step.title}\n      $ ${step.id === 'deploy' ? `${displayArgv(step.argv)} < release` : displayArgv(step.argv)}`,
  );
}

/** `deploy setup <host>`: check a host over ssh for what deploy and its apps need, install what is missing, put this deploy there. */
export const setupCommand: DeployCommand = {
  command: 'setup <host>',
  describe:
    'Prepare a host over ssh: check Node, borg, GNU tar, acl/attr tools, database tools, ffl; install missing Debian packages (--install) and this deploy; create the apps root and state dir',
  remote: false,
  builder: (y) =>
    y
      .positional('host', {
        type: 'string',
        describe: 'Host to set up (named in the global config)',
        demandOption: true,
      })
      .option('app', {
        type: 'string',
        array: true,
        describe:
          "An app (in this host's apps root) the host will run: its database kind and transport decide what else it needs",
      })
      .option('with', {
        type: 'string',
        array: true,
        choices: ['postgres', 'mariadb', 'ffl'],
        describe: 'Also check for these, without naming an app',
      })
      .option('install', {
        type: 'boolean',
        default: false,
        describe: 'Install missing Debian packages with apt-get (without it, setup names them and changes nothing)',
      })
      .option('release', {
        type: 'string',
        describe:
          'The release tarball to install deploy from [default: dist-release/deploykit-<this version>.tgz of this checkout, made by npm run release]',
      })
      .option('plan', {
        type: 'boolean',
        default: false,
        describe: 'Print what setup found and the exact commands it would run, change nothing (also --dry-run)',
      }),
  examples: [
    ['deploy setup b --plan', 'What host b has and lacks, and what setup would run there'],
    ['deploy setup b --app notes --install', 'Install what notes needs on b (PostgreSQL too) and this deploy'],
    ['deploy setup b --release ./deploykit-0.1.0.tgz --json', 'Install deploy from a given release, report as JSON'],
  ],
  async run(context, args) {
    const name = String(args.host);
    const needs = await collectNeeds(context, args);
    const release = await readRelease(context.host, typeof args.release === 'string' ? args.release : undefined);
    const configPath = context.configPath ?? context.options.config;
    const entry = (await loadGlobalConfig(configPath)).config.hosts[name];
    const host = await resolveNamedHost(name, configPath);
    try {
      const roots = {
        ...(entry?.apps_root ? { appsRoot: entry.apps_root } : {}),
        ...(entry?.state_dir ? { stateDir: entry.state_dir } : {}),
      };
      const tools = listToolRequirements(needs);
      const plan = planHostSetup({
        host: name,
        facts: await probeHost(host, tools, roots),
        needs,
        ourVersion: DEPLOY_VERSION,
        release,
      });
      const json = {
        host: name,
        deployVersion: DEPLOY_VERSION,
        needs,
        checks: plan.checks,
        packages: plan.packages,
        blockers: plan.blockers,
        steps: plan.steps.map((step) => ({ id: step.id, title: step.title, argv: step.argv })),
      };
      if (args.plan === true || context.options.dryRun) {
        const text = [
          `Setup plan for ${name} (deploy ${DEPLOY_VERSION}):`,
          renderChecks(plan, false),
          ...(plan.steps.length > 0
            ? [`Would run on ${name}:`, ...renderPlanSteps(plan)]
            : [`Nothing to change on ${name}.`]),
          ...plan.blockers.map((blocker) => `blocked: ${blocker}`),
        ];
        return { exitCode: EXIT_CODES.ok, json: { ...json, changed: [] }, text: text.join('\n') };
      }
      if (plan.blockers.length > 0) {
        throw new DependencyError(
          'SETUP_BLOCKED',
          `setup cannot finish on ${name}:\n${plan.blockers.map((blocker) => `  ${blocker}`).join('\n')}\n${renderChecks(plan, false)}`,
          { hint: 'Fix the lines above by hand, then run deploy setup again.', details: json },
        );
      }
      if (plan.packages.length > 0 && args.install !== true) {
        const packagesStep = plan.steps.find((step) => step.id === 'packages');
        throw new DependencyError(
          'SETUP_PACKAGES_MISSING',
          `${name} lacks Debian packages ${plan.packages.join(', ')}; nothing was changed\n${renderChecks(plan, false)}`,
          {
            hint: `Run \`deploy setup ${name} --install\` to install them (it runs: ${packagesStep ? displayArgv(packagesStep.argv) : `apt-get install ${plan.packages.join(' ')}`}), or install them yourself.`,
            details: json,
          },
        );
      }
      const changed: string[] = [];
      for (const step of plan.steps) {
        context.bus.emit('setup.step', { message: `${name}: ${step.title}` });
        const result = await host.run({
          argv: step.argv,
          ...(step.input ? { input: step.input } : {}),
          timeoutMs: 30 * 60_000,
          label: `setup ${step.id}`,
        });
        if (result.exitCode !== 0) {
          throw new DependencyError(
            'SETUP_STEP_FAILED',
            `${step.title} failed on ${name} (exit ${result.exitCode}): ${result.stderr.trim().slice(-800) || result.stdout.trim().slice(-800)}`,
            {
              hint: `Run it on ${name} by hand to see more: ${displayArgv(step.argv)}${changed.length > 0 ? `; already done: ${changed.join(', ')}` : ''}`,
            },
          );
        }
        changed.push(step.title);
      }
      // Look again: what setup reports as done is what the host now has.
      const after =
        changed.length === 0
          ? plan
          : planHostSetup({
              host: name,
              facts: await probeHost(host, tools, roots),
              needs,
              ourVersion: DEPLOY_VERSION,
              release,
            });
      const left = after.checks.filter((check) => check.status !== 'ok');
      if (left.length > 0) {
        throw new DependencyError(
          'SETUP_INCOMPLETE',
          `after setup, ${name} still lacks: ${left.map((check) => `${check.name} (${check.found})`).join(', ')}`,
          {
            hint: `Check the host's PATH for ssh sessions (deploy looks up tools there), then run deploy setup ${name} again.`,
          },
        );
      }
      const text = [
        renderChecks(plan, true),
        changed.length === 0
          ? `${name} is set up for deploy ${DEPLOY_VERSION}: nothing to change.`
          : `${name} is set up for deploy ${DEPLOY_VERSION}: ${changed.length} change(s): ${changed.join('; ')}.`,
      ];
      return { exitCode: EXIT_CODES.ok, json: { ...json, checks: after.checks, changed }, text: text.join('\n') };
    } finally {
      await host.close();
    }
  },
};
