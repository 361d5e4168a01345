#!/usr/bin/env node
// Builds the installable release of deploy: one npm package tarball, dist-release/deploykit-<version>.tgz,
// with `bin: deploy`, no dependencies (everything bundled by esbuild) and every file deploy reads at
// run time (the JSON schemas, the sample app for `deploy init`). Only Node >= 20 is needed where it
// is installed:  npm install -g --prefix PREFIX ./dist-release/deploykit-<version>.tgz
//
//   node scripts/release.mjs [--out DIR] [--version X.Y.Z]      (npm run release builds first)
//
// --version stamps another version into the package (tests use it to make an incompatible deploy).
// Prints the tarball's path on stdout, and with --json a JSON object {file, version, bytes, ms}.
import { cp, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const flagValue = (flag) => {
  const index = args.indexOf(flag);
  if (index === -1) return undefined;
  const value = args[index + 1];
  if (value === undefined || value.startsWith('--')) throw new Error(`${flag} needs a value`);
  return value;
};

const started = Date.now();
const deployPackage = JSON.parse(await readFile(join(root, 'packages/deploy/package.json'), 'utf8'));
const rootPackage = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
const version = flagValue('--version') ?? deployPackage.version;
if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version))
  throw new Error(`--version ${version} is not a semantic version (X.Y.Z)`);
const out = resolve(flagValue('--out') ?? join(root, 'dist-release'));
const staging = join(out, `deploykit-${version}.staging`);
const entry = join(root, 'packages/deploy/dist/cli/main.js');
try {
  await stat(entry);
} catch {
  throw new Error(`${entry} is missing: run \`npm run build\` first (npm run release does)`);
}

await rm(staging, { recursive: true, force: true });
await mkdir(join(staging, 'bin'), { recursive: true });
await build({
  entryPoints: { main: entry },
  outdir: join(staging, 'dist'),
  bundle: true,
  // Code splitting keeps the lazy command loading of the CLI (deploy --help loads no command module).
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: 'chunk-[hash]',
  legalComments: 'linked',
  logLevel: 'warning',
  // CommonJS dependencies (winston, yargs' helpers) call require() for Node's own modules.
  banner: {
    js: "import { createRequire as __deploykitCreateRequire } from 'node:module'; const require = __deploykitCreateRequire(import.meta.url);",
  },
});
await writeFile(
  join(staging, 'bin', 'deploy.js'),
  "#!/usr/bin/env node\nimport { main } from '../dist/main.js';\n\nprocess.exitCode = await main(process.argv.slice(2));\n",
  { mode: 0o755 },
);
// Read at run time relative to the bundle (packages/manifest/src/schema.ts, packages/deploy/src/install-paths.ts).
await cp(join(root, 'packages/manifest/schema'), join(staging, 'schema'), { recursive: true });
await cp(join(root, 'apps-template'), join(staging, 'apps-template'), {
  recursive: true,
  filter: (src) => !src.includes('/node_modules'),
});
// npm pack never ships a .gitignore; `deploy init` renames this back (packages/deploy/src/install-paths.ts).
await rename(join(staging, 'apps-template', '.gitignore'), join(staging, 'apps-template', 'dot-gitignore'));
const manifest = {
  name: 'deploykit',
  version,
  description: rootPackage.description,
  type: 'module',
  bin: { deploy: 'bin/deploy.js' },
  engines: { node: '>=20.10' },
  files: ['bin', 'dist', 'schema', 'apps-template'],
  license: rootPackage.license ?? 'UNLICENSED',
};
await writeFile(join(staging, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
await writeFile(
  join(staging, 'README.md'),
  `# deploykit ${version}\n\nThe \`deploy\` CLI as one bundle. Install: \`npm install -g ./deploykit-${version}.tgz\` (Node >= 20), then \`deploy --help\`.\n`,
);
const packed = JSON.parse(
  execFileSync('npm', ['pack', '--json', '--pack-destination', out, staging], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }),
);
await rm(staging, { recursive: true, force: true });
const file = join(out, packed[0].filename);
const bytes = (await stat(file)).size;
if (args.includes('--json'))
  process.stdout.write(`${JSON.stringify({ file, version, bytes, ms: Date.now() - started })}\n`);
else process.stdout.write(`${file}\n`);
process.stderr.write(
  `release: ${file} (deploykit ${version}, ${(bytes / 1024).toFixed(0)} KiB, ${Date.now() - started} ms)\n`,
);
