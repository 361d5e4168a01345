import { appSchema, configSchema, resolveSchemaRef, type SchemaNode } from './schema.js';

/** Marker lines around the generated part of a docs page. */
export const GENERATED_BEGIN = '<!-- schema:begin -->';
export const GENERATED_END = '<!-- schema:end -->';

interface Section {
  readonly title: string;
  readonly node: SchemaNode;
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function formatValue(value: unknown): string {
  return `\`${JSON.stringify(value)}\``;
}

function describeType(root: SchemaNode, raw: SchemaNode): string {
  const node = resolveSchemaRef(root, raw);
  if (node.const !== undefined) return formatValue(node.const);
  if (node.enum !== undefined) return `one of ${node.enum.map(formatValue).join(', ')}`;
  const type = Array.isArray(node.type) ? node.type.join(' or ') : ((node.type as string | undefined) ?? 'any');
  const limits: string[] = [];
  if (node.minimum !== undefined && node.maximum !== undefined) limits.push(`${node.minimum}..${node.maximum}`);
  else if (node.minimum !== undefined) limits.push(`>= ${node.minimum}`);
  if (node.pattern !== undefined) limits.push(`matching \`${node.pattern}\``);
  if (type === 'array' && node.items !== undefined) {
    const items = resolveSchemaRef(root, node.items);
    const itemType =
      items.properties !== undefined || items.allOf !== undefined ? 'mapping' : describeType(root, node.items);
    return `list of ${itemType}`;
  }
  if (type === 'object' && node.properties === undefined && typeof node.additionalProperties === 'object') {
    const value = resolveSchemaRef(root, node.additionalProperties);
    return `mapping of name to ${value.properties !== undefined ? 'mapping' : describeType(root, value)}`;
  }
  if (type === 'object') return 'mapping';
  return limits.length === 0 ? type : `${type} ${limits.join(', ')}`;
}

function renderTable(root: SchemaNode, section: Section): string {
  const node = resolveSchemaRef(root, section.node);
  const lines = [`### \`${section.title}\``, ''];
  if (node.description !== undefined) lines.push(node.description, '');
  lines.push('| Key | Type | Required | Default | Description | Example |', '| --- | --- | --- | --- | --- | --- |');
  for (const [key, raw] of Object.entries(node.properties ?? {})) {
    const property = resolveSchemaRef(root, raw);
    const required = node.required?.includes(key) ? 'yes' : 'no';
    const defaultValue = property.default === undefined ? '' : formatValue(property.default);
    const example = property.examples?.[0] === undefined ? '' : formatValue(property.examples[0]);
    const cells = [
      `\`${key}\``,
      describeType(root, property),
      required,
      defaultValue,
      property.description ?? '',
      example,
    ];
    lines.push(`| ${cells.map(escapeCell).join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Lists the object sections under `node` in reading order: the node itself, then its nested mappings. */
function collectSections(root: SchemaNode, title: string, raw: SchemaNode): Section[] {
  const node = resolveSchemaRef(root, raw);
  const sections: Section[] = [{ title, node }];
  for (const [key, rawProperty] of Object.entries(node.properties ?? {})) {
    const property = resolveSchemaRef(root, rawProperty);
    const path = `${title === '(top level)' ? '' : `${title}.`}${key}`;
    if (property.properties !== undefined) sections.push(...collectSections(root, path, property));
    if (property.type === 'object' && typeof property.additionalProperties === 'object') {
      const value = resolveSchemaRef(root, property.additionalProperties);
      if (value.properties !== undefined) sections.push(...collectSections(root, `${path}.<name>`, value));
    }
    if (property.items !== undefined) {
      const items = resolveSchemaRef(root, property.items);
      if (items.properties !== undefined && items.allOf === undefined)
        sections.push(...collectSections(root, `${path}[]`, items));
      // A discriminated union: one section per `type`, since each type has its own keys.
      for (const branch of items.allOf ?? []) {
        const discriminator = branch.if?.properties?.type?.const;
        if (branch.then !== undefined && discriminator !== undefined) {
          sections.push(...collectSections(root, `${path}[] type: ${String(discriminator)}`, branch.then));
        }
      }
    }
  }
  return sections;
}

function renderSchema(schema: SchemaNode): string {
  const sections = collectSections(schema, '(top level)', schema);
  return `${sections.map((section) => renderTable(schema, section)).join('\n\n')}\n`;
}

/** Renders the app.yaml field reference (markdown) from app.schema.json; docs/app-folder.md embeds it. */
export function renderSchemaReference(): string {
  return renderSchema(appSchema);
}

/** Renders the global config field reference (markdown) from config.schema.json; docs/config.md embeds it. */
export function renderConfigReference(): string {
  return renderSchema(configSchema);
}

/** Returns the generated part of a docs page (between the markers), or undefined when the markers are missing. */
export function extractGeneratedSection(page: string): string | undefined {
  const begin = page.indexOf(GENERATED_BEGIN);
  const end = page.indexOf(GENERATED_END);
  if (begin < 0 || end < begin) return undefined;
  return page.slice(begin + GENERATED_BEGIN.length, end).replace(/^\n/, '');
}

/** Replaces the generated part of a docs page; throws when the markers are missing. */
export function replaceGeneratedSection(page: string, generated: string): string {
  const begin = page.indexOf(GENERATED_BEGIN);
  const end = page.indexOf(GENERATED_END);
  if (begin < 0 || end < begin) throw new Error(`docs page lacks ${GENERATED_BEGIN} ... ${GENERATED_END} markers`);
  return `${page.slice(0, begin + GENERATED_BEGIN.length)}\n${generated}${page.slice(end)}`;
}
