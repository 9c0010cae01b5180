// Tests of short strings the hook reads once per run (its event's name, the
// --root path), by char code: a regular expression is compiled at its first
// use, which costs more than such a loop over a few characters. The tests a
// run makes hundreds of times (UUIDs, record paths) stay regular expressions:
// V8 compiles those to machine code, where a loop of ours would run in the
// interpreter until V8 optimised it (measured: the idle hook 117 -> 132 M
// instructions with loops for all of them).

/** Whether `text` from `from` on is non-empty and all decimal digits. */
export function isDecimalDigits(text: string, from = 0): boolean {
  if (from >= text.length) return false;
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** Whether `text` holds an ASCII control character (below space, or DEL). */
export function hasControlChar(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}
