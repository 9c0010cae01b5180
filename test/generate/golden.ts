// Reviewed expected output under test/generate/golden/. After an intended
// change, `UPDATE_GOLDEN=1 npx vitest run test/generate` rewrites them; the
// diff is then reviewed like code.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

const GOLDEN = fileURLToPath(new URL('./golden/', import.meta.url));

export function expectGolden(rel: string, actual: string): void {
  const path = join(GOLDEN, rel);
  if (process.env['UPDATE_GOLDEN'] === '1') {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  expect(actual, `golden file ${rel} (UPDATE_GOLDEN=1 rewrites it)`).toBe(readFileSync(path, 'utf8'));
}

/** Snapshot entries (see test/support/host.ts) split into content and mode, or a link target. */
export function splitSnapshotValue(value: string): { link: string } | { content: string; mode: string } {
  if (value.startsWith('-> ')) return { link: value.slice(3) };
  const at = value.lastIndexOf('|mode=');
  return { content: value.slice(0, at), mode: value.slice(at + '|mode='.length) };
}
