#!/usr/bin/env node
// Regenerates the schema reference sections of docs/app-folder.md and docs/config.md.
//   node packages/manifest/dist/render-docs-cli.js           print the app.yaml reference
//   node packages/manifest/dist/render-docs-cli.js --write   rewrite both docs pages in place
//   node packages/manifest/dist/render-docs-cli.js --check   exit 1 when a page is out of date
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  extractGeneratedSection,
  renderConfigReference,
  renderSchemaReference,
  replaceGeneratedSection,
} from './render-docs.js';

/** The docs pages that embed a generated reference, relative to this file in dist/. */
export const GENERATED_PAGES = [
  { path: fileURLToPath(new URL('../../../docs/app-folder.md', import.meta.url)), render: renderSchemaReference },
  { path: fileURLToPath(new URL('../../../docs/config.md', import.meta.url)), render: renderConfigReference },
] as const;

function main(argv: readonly string[]): number {
  if (argv.includes('--write')) {
    for (const page of GENERATED_PAGES) {
      writeFileSync(page.path, replaceGeneratedSection(readFileSync(page.path, 'utf8'), page.render()));
      process.stdout.write(`wrote ${page.path}\n`);
    }
    return 0;
  }
  if (argv.includes('--check')) {
    let stale = 0;
    for (const page of GENERATED_PAGES) {
      if (extractGeneratedSection(readFileSync(page.path, 'utf8')) !== page.render()) {
        process.stderr.write(
          `${page.path} is out of date: run node packages/manifest/dist/render-docs-cli.js --write\n`,
        );
        stale += 1;
      }
    }
    return stale === 0 ? 0 : 1;
  }
  process.stdout.write(renderSchemaReference());
  return 0;
}

// Run only when executed, so tests can import GENERATED_PAGES.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1])
  process.exitCode = main(process.argv.slice(2));
