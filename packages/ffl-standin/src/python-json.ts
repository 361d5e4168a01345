/** Serialises like Python's `json.dumps` defaults (`", "`/`": "` separators, non-ASCII escaped), as ffl's hook does. */
export function dumpPythonJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') {
    return JSON.stringify(value).replace(
      /[\u007f-\uffff]/g,
      (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
  }
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'NaN';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (Array.isArray(value)) return `[${value.map((item) => dumpPythonJson(item)).join(', ')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).map(
      ([key, item]) => `${dumpPythonJson(key)}: ${dumpPythonJson(item)}`,
    );
    return `{${entries.join(', ')}}`;
  }
  return dumpPythonJson(String(value));
}
