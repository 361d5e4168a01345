#!/usr/bin/env node
// Runs the compiled test files with node's test runner.
//   node scripts/run-tests.mjs            all tiers: unit + integration (packages/*) and end-to-end (test/)
//   node scripts/run-tests.mjs --unit     only packages/* (fast: no lab)
//   node scripts/run-tests.mjs FILTER...  only files whose path contains one of the filters
// Env: DEPLOY_TEST_CONCURRENCY (default 2: the machine has two cores and lab hosts share them).
//
// Files that spend most of their time waiting on the ffl stand-in's real timings (reference §8: link
// ~2 s, WebRTC setup ~10 s, readiness and stall windows) run one at a time in a pool of their own,
// beside the two-file pool: a slot of the two that only sleeps would leave a core idle. Their output
// is held and printed after the main pool's, so the two TAP streams do not interleave.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const filters = args.filter((a) => !a.startsWith('--'));

function collect(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) collect(path, out);
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const files = [];
for (const pkg of readdirSync(join(root, 'packages'))) collect(join(root, 'packages', pkg, 'dist'), files);
if (!unitOnly) collect(join(root, 'test', 'dist'), files);
const selected = files
  .map((f) => relative(root, f))
  .filter((f) => filters.length === 0 || filters.some((flt) => f.includes(flt)))
  .sort();
if (selected.length === 0) {
  console.error('run-tests: no test files found (did the build run?)');
  process.exit(1);
}
const concurrency = process.env.DEPLOY_TEST_CONCURRENCY ?? '2';
const WAITING = ['ffl-standin-timing.test.js', 'transport-ffl-timing.test.js', 'migrate-pair.test.js'];
const waiting = selected.filter((f) => WAITING.some((name) => f.endsWith(name)));
const main = selected.filter((f) => !waiting.includes(f));

/** Runs one node --test pool; resolves with its exit status and, when held, its output. */
function runPool(pool, poolConcurrency, hold) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--test', `--test-concurrency=${poolConcurrency}`, ...pool], {
      cwd: root,
      stdio: ['ignore', hold ? 'pipe' : 'inherit', hold ? 'pipe' : 'inherit'],
    });
    const out = [];
    if (hold) {
      child.stdout.on('data', (chunk) => out.push(chunk));
      child.stderr.on('data', (chunk) => out.push(chunk));
    }
    child.on('close', (code) => resolve({ status: code ?? 1, output: Buffer.concat(out) }));
  });
}

const pools = [];
if (main.length > 0)
  pools.push(
    runPool(main, concurrency, false).then((r) => ({ ...r, name: `${main.length} files, ${concurrency} at a time` })),
  );
if (waiting.length > 0)
  pools.push(
    runPool(waiting, '1', main.length > 0).then((r) => ({
      ...r,
      name: `${waiting.length} waiting files, one at a time`,
    })),
  );
const results = await Promise.all(pools);
for (const result of results) if (result.output.length > 0) process.stdout.write(result.output);
for (const result of results)
  console.log(`run-tests: ${result.name}: ${result.status === 0 ? 'pass' : `FAIL (exit ${result.status})`}`);
process.exit(results.every((result) => result.status === 0) ? 0 : 1);
