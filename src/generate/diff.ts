// A unified diff (as `diff -u` and git print it) for `generate --diff`.
// The files are small, so a plain LCS table does; past a size where that
// would cost too much memory the diff simply replaces every line. Pure.

const CONTEXT = 3;
/** LCS cells allowed before falling back to a whole-file replacement. */
const MAX_CELLS = 4_000_000;

type Op = { t: ' ' | '-' | '+'; line: string };

/** Lines with their newline kept, so that a missing final newline counts as a change. */
function lines(text: string): string[] {
  if (text === '') return [];
  const parts = text.split('\n');
  const out = parts.slice(0, -1).map((l) => `${l}\n`);
  const last = parts[parts.length - 1]!;
  if (last !== '') out.push(last);
  return out;
}

function editScript(a: readonly string[], b: readonly string[]): Op[] {
  const n = a.length;
  const m = b.length;
  if ((n + 1) * (m + 1) > MAX_CELLS) return [...a.map((line): Op => ({ t: '-', line })), ...b.map((line): Op => ({ t: '+', line }))];
  // lcs[i][j]: length of the LCS of a[i..] and b[j..], row-major.
  const lcs = new Uint32Array((n + 1) * (m + 1));
  const at = (i: number, j: number): number => lcs[i * (m + 1) + j]!;
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * (m + 1) + j] = a[i] === b[j] ? at(i + 1, j + 1) + 1 : Math.max(at(i + 1, j), at(i, j + 1));
    }
  }
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      ops.push({ t: ' ', line: a[i++]! });
      j++;
    } else if (i < n && (j === m || at(i + 1, j) >= at(i, j + 1))) {
      // Removals first within a change, as diff prints them.
      ops.push({ t: '-', line: a[i++]! });
    } else ops.push({ t: '+', line: b[j++]! });
  }
  return ops;
}

function range(start: number, count: number): string {
  return count === 1 ? `${start}` : `${start},${count}`;
}

function show(op: Op): string[] {
  const text = `${op.t}${op.line.endsWith('\n') ? op.line.slice(0, -1) : op.line}`;
  return op.line.endsWith('\n') ? [text] : [text, '\\ No newline at end of file'];
}

/**
 * The diff from `before` to `after` (undefined: the file does not exist),
 * with `---`/`+++` headers; the empty string when they are equal.
 */
export function unifiedDiff(before: string | undefined, after: string | undefined, name: string): string {
  const a = lines(before ?? '');
  const b = lines(after ?? '');
  const ops = editScript(a, b);
  const changes = ops.flatMap((op, k) => (op.t === ' ' ? [] : [k]));
  if (changes.length === 0 && (before === undefined) === (after === undefined)) return '';

  const out = [`--- ${before === undefined ? '/dev/null' : `a/${name}`}`, `+++ ${after === undefined ? '/dev/null' : `b/${name}`}`];
  let c = 0;
  while (c < changes.length) {
    // Grow the hunk while the next change is within two contexts of the last.
    let last = c;
    while (last + 1 < changes.length && changes[last + 1]! - changes[last]! - 1 <= 2 * CONTEXT) last++;
    const from = Math.max(0, changes[c]! - CONTEXT);
    const to = Math.min(ops.length, changes[last]! + CONTEXT + 1);
    const skipped = ops.slice(0, from);
    const hunk = ops.slice(from, to);
    const aSkipped = skipped.filter((o) => o.t !== '+').length;
    const bSkipped = skipped.filter((o) => o.t !== '-').length;
    const aCount = hunk.filter((o) => o.t !== '+').length;
    const bCount = hunk.filter((o) => o.t !== '-').length;
    out.push(`@@ -${range(aCount ? aSkipped + 1 : aSkipped, aCount)} +${range(bCount ? bSkipped + 1 : bSkipped, bCount)} @@`);
    for (const op of hunk) out.push(...show(op));
    c = last + 1;
  }
  return `${out.join('\n')}\n`;
}
