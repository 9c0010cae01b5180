// generate --diff prints what `diff -u` would: the admin reads it like any patch.

import { describe, expect, it } from 'vitest';
import { unifiedDiff } from '../../src/generate/diff.js';

const numbered = (n: number, change: Record<number, string> = {}): string =>
  Array.from({ length: n }, (_, i) => change[i + 1] ?? `${i + 1}`).join('\n') + '\n';

describe('unified diff', () => {
  it('is empty for equal texts', () => {
    expect(unifiedDiff('a\n', 'a\n', 'f')).toBe('');
  });

  it('shows a new file against /dev/null', () => {
    expect(unifiedDiff(undefined, 'a\nb\n', 'etc/x')).toBe('--- /dev/null\n+++ b/etc/x\n@@ -0,0 +1,2 @@\n+a\n+b\n');
  });

  it('shows a removed file against /dev/null', () => {
    expect(unifiedDiff('a\n', undefined, 'etc/x')).toBe('--- a/etc/x\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n');
  });

  it('an empty new file is still a change', () => {
    expect(unifiedDiff(undefined, '', 'f')).toBe('--- /dev/null\n+++ b/f\n');
  });

  it('gives a change three lines of context, removal before addition', () => {
    expect(unifiedDiff(numbered(13), numbered(13, { 9: 'X' }), 'f')).toBe(
      '--- a/f\n+++ b/f\n@@ -6,7 +6,7 @@\n 6\n 7\n 8\n-9\n+X\n 10\n 11\n 12\n',
    );
  });

  it('splits changes more than six lines apart into hunks, and joins closer ones', () => {
    const far = unifiedDiff(numbered(20), numbered(20, { 2: 'A', 18: 'B' }), 'f');
    expect(far.match(/^@@.*@@$/gm)).toEqual(['@@ -1,5 +1,5 @@', '@@ -15,6 +15,6 @@']);
    const near = unifiedDiff(numbered(20), numbered(20, { 2: 'A', 9: 'B' }), 'f');
    expect(near.match(/^@@.*@@$/gm)).toEqual(['@@ -1,12 +1,12 @@']);
  });

  it('marks a missing newline at the end', () => {
    expect(unifiedDiff('a\nb', 'a\nb\n', 'f')).toBe('--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n');
  });
});
