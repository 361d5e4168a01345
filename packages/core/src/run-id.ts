import { randomBytes } from 'node:crypto';

/** A sortable, unique run id: UTC time plus 6 random hex chars, e.g. 20261121T202500Z-3fa9c1. */
export function newRunId(now: Date = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}
