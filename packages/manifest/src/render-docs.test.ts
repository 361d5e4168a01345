import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { GENERATED_PAGES } from './render-docs-cli.js';
import { appSchema, configSchema, resolveSchemaRef, type SchemaNode } from './schema.js';
import { extractGeneratedSection, renderSchemaReference, replaceGeneratedSection } from './render-docs.js';

test('the generated schema references in docs/ match the schemas', () => {
  for (const page of GENERATED_PAGES) {
    const generated = extractGeneratedSection(readFileSync(page.path, 'utf8'));
    assert.notEqual(generated, undefined, `${page.path} lacks the <!-- schema:begin --> / <!-- schema:end --> markers`);
    assert.ok(
      generated === page.render(),
      `${page.path} is out of date with the schema: run \`node packages/manifest/dist/render-docs-cli.js --write\` (after npm run build) and commit the result`,
    );
  }
});

test('the reference has a row for every field of every check type', () => {
  const reference = renderSchemaReference();
  for (const type of ['http', 'static', 'uploads', 'db-page', 'login', 'logs', 'process']) {
    assert.match(reference, new RegExp(`### \`health\\.checks\\[\\] type: ${type}\``));
  }
  assert.match(reference, /\| `credentials_file` \| string \| yes \|/);
  assert.match(reference, /\| `runtime` \| one of `"process"`, `"compose"`, `"systemd"` \| no \| `"process"` \|/);
});

test('replacing the generated section keeps the text around it', () => {
  const page = 'intro\n<!-- schema:begin -->\nold\n<!-- schema:end -->\noutro\n';
  const replaced = replaceGeneratedSection(page, 'new\n');
  assert.equal(replaced, 'intro\n<!-- schema:begin -->\nnew\n<!-- schema:end -->\noutro\n');
  assert.equal(extractGeneratedSection(replaced), 'new\n');
  assert.throws(() => replaceGeneratedSection('no markers', 'x'), /lacks/);
});

// The schema is the documentation's source, so every property must say what it is and show an example.
test('every schema property has a description and examples', () => {
  const missing: string[] = [];
  const visit = (root: SchemaNode, raw: SchemaNode, path: string): void => {
    const node = resolveSchemaRef(root, raw);
    for (const [key, property] of Object.entries(node.properties ?? {})) {
      const resolved = resolveSchemaRef(root, property);
      if (resolved.description === undefined) missing.push(`${path}/${key}: description`);
      if (resolved.examples === undefined || resolved.examples.length === 0) missing.push(`${path}/${key}: examples`);
      visit(root, resolved, `${path}/${key}`);
    }
    if (node.items !== undefined) visit(root, node.items, `${path}[]`);
    if (typeof node.additionalProperties === 'object') visit(root, node.additionalProperties, `${path}/*`);
    for (const branch of node.allOf ?? [])
      if (branch.then !== undefined) visit(root, branch.then, `${path}(${String(branch.if?.properties?.type?.const)})`);
  };
  visit(appSchema, appSchema, 'app');
  visit(configSchema, configSchema, 'config');
  assert.deepEqual(missing, []);
});

test('every object in the schemas closes its keys', () => {
  const open: string[] = [];
  const visit = (node: SchemaNode, path: string): void => {
    // The check wrapper only picks the branch by type; each branch closes its keys.
    const isUnionWrapper = node.allOf !== undefined;
    if (node.type === 'object' && node.additionalProperties === undefined && !isUnionWrapper) open.push(path);
    for (const [key, property] of Object.entries(node.properties ?? {})) visit(property, `${path}/${key}`);
    if (node.items !== undefined) visit(node.items, `${path}[]`);
    if (typeof node.additionalProperties === 'object') visit(node.additionalProperties, `${path}/*`);
    for (const [key, definition] of Object.entries(node.definitions ?? {})) visit(definition, `#${key}`);
  };
  visit(appSchema, 'app');
  visit(configSchema, 'config');
  assert.deepEqual(open, []);
});
