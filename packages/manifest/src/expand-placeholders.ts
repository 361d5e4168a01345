import { ConfigError } from '@deploykit/core';

/** Placeholders that manifest and config strings may use. */
export const PLACEHOLDERS = ['app', 'now', 'state_dir', 'app_dir', 'host_address', 'port'] as const;

/** One of PLACEHOLDERS. */
export type PlaceholderName = (typeof PLACEHOLDERS)[number];

/** Replaces `{app}`, `{now}`, `{state_dir}`, `{app_dir}`, `{host_address}`, `{port}` in `template`; throws ConfigError for an unknown placeholder or one without a value. */
export function expandPlaceholders(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (whole, name: string) => {
    if (!(PLACEHOLDERS as readonly string[]).includes(name)) {
      throw new ConfigError('PLACEHOLDER_UNKNOWN', `unknown placeholder ${whole} in "${template}"`, {
        hint: `Use one of ${PLACEHOLDERS.map((known) => `{${known}}`).join(', ')}.`,
        details: { template, placeholder: name },
      });
    }
    const value = values[name];
    if (value === undefined) {
      throw new ConfigError('PLACEHOLDER_NO_VALUE', `placeholder ${whole} in "${template}" has no value here`, {
        hint: `${whole} is not known in this context; set what it comes from (e.g. port or the host's address) or drop it from "${template}".`,
        details: { template, placeholder: name },
      });
    }
    return value;
  });
}

/**
 * Formats a time as the `{now}` value: UTC ISO 8601 basic format `YYYYMMDDTHHMMSSZ`
 * (`20261201T190908Z`), safe in file and archive names and sorting by time. Archive names have
 * always used this form; keep it, or `deploy restore --archive` examples and old archives disagree.
 */
export function formatNowPlaceholder(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}
