// The store file as lines, so that edits change only the values they must and
// keep the admin's comments, blank lines and order. Values are decoded with
// the `ini` package; this module adds what it lacks: line numbers, duplicate
// detection and in-place editing.

import ini from 'ini';
import { InputError } from '../errors.js';

export interface Entry {
  key: string;
  value: string;
  /** 1-based line number. */
  line: number;
}

export interface Section {
  name: string;
  line: number;
  entries: Entry[];
}

type Line =
  | { kind: 'other'; text: string }
  | { kind: 'section'; text: string; name: string }
  | { kind: 'entry'; text: string; key: string; value: string; indent: string; comment: string };

const SECTION_RE = /^\s*\[([^\]]*)\]\s*(?:[;#].*)?$/;
const ENTRY_RE = /^(\s*)([^=;#[\]\s][^=;#[\]]*?)\s*=(.*)$/;

/** A `;` or `#` that starts a comment: one not escaped by a backslash. */
const COMMENT_START = /(?<!\\)[;#]/;

/** Splits `rest` (after `=`) into the raw value and a trailing inline comment. */
function splitValue(rest: string): { raw: string; comment: string } {
  const lead = rest.length - rest.trimStart().length;
  let from = lead;
  if (rest[from] === '"' || rest[from] === "'") {
    const close = rest.indexOf(rest[from]!, from + 1);
    from = close < 0 ? rest.length : close + 1;
  }
  // One native search, not a step per character (the character before `from` is a quote or a blank, never a backslash).
  const found = rest.slice(from).search(COMMENT_START);
  const trimmed = (found < 0 ? rest : rest.slice(0, from + found)).trimEnd();
  return { raw: trimmed, comment: rest.slice(trimmed.length) };
}

/**
 * The value as the `ini` package decodes it. A plain value (no quotes, no
 * backslash) decodes to itself: `ini.unsafe` would walk it a character at a
 * time, which was most of reading a store of many mdevs.
 */
function decodeValue(raw: string): string {
  const value = raw.trim();
  const first = value[0];
  return first === '"' || first === "'" || value.includes('\\') ? ini.unsafe(value) : value;
}

export class IniDocument {
  private constructor(
    private lines: Line[],
    readonly file: string,
  ) {}

  static parse(text: string, file: string): IniDocument {
    const lines: Line[] = [];
    const src = text.split('\n');
    if (src[src.length - 1] === '') src.pop();
    for (let index = 0; index < src.length; index++) {
      const text = src[index]!;
      const trimmed = text.trim();
      if (trimmed === '' || trimmed[0] === ';' || trimmed[0] === '#') {
        lines.push({ kind: 'other', text });
        continue;
      }
      const section = trimmed[0] === '[' ? SECTION_RE.exec(text) : null;
      if (section) {
        lines.push({ kind: 'section', text, name: section[1]!.trim() });
        continue;
      }
      const entry = ENTRY_RE.exec(text);
      if (!entry) {
        const crlf = text.endsWith('\r');
        throw new InputError(`cannot read '${trimmed}'${crlf ? ': it ends in a carriage return (the file has Windows line ends, CRLF)' : ''}`, {
          where: `${file}:${index + 1}`,
          hint: crlf ? "convert the file to Unix line ends (dos2unix, or sed -i 's/\\r$//')" : 'each line must be a [section], a key = value, a comment (; or #) or blank',
        });
      }
      const { raw, comment } = splitValue(entry[3]!);
      lines.push({ kind: 'entry', text, key: entry[2]!, indent: entry[1]!, value: decodeValue(raw), comment });
    }
    return new IniDocument(lines, file);
  }

  /** Sections in file order; entries before any section belong to section ''. */
  sections(): Section[] {
    const out: Section[] = [];
    let current: Section | undefined;
    this.lines.forEach((l, i) => {
      if (l.kind === 'section') {
        current = { name: l.name, line: i + 1, entries: [] };
        out.push(current);
      } else if (l.kind === 'entry') {
        if (!current) {
          current = { name: '', line: i + 1, entries: [] };
          out.push(current);
        }
        current.entries.push({ key: l.key, value: l.value, line: i + 1 });
      }
    });
    return out;
  }

  /** Index range [start, end) of a section's body lines, header excluded. */
  private sectionRange(name: string): { header: number; end: number } | undefined {
    const header = this.lines.findIndex((l) => l.kind === 'section' && l.name === name);
    if (header < 0) return undefined;
    let end = header + 1;
    while (end < this.lines.length && this.lines[end]!.kind !== 'section') end++;
    return { header, end };
  }

  hasSection(name: string): boolean {
    return this.sectionRange(name) !== undefined;
  }

  get(section: string, key: string): string | undefined {
    const r = this.sectionRange(section);
    if (!r) return undefined;
    for (let i = r.header + 1; i < r.end; i++) {
      const l = this.lines[i]!;
      if (l.kind === 'entry' && l.key === key) return l.value;
    }
    return undefined;
  }

  /** Sets a value in place, keeping its inline comment; appends the key when new. */
  set(section: string, key: string, value: string): void {
    if (/[;#\n]/.test(value)) {
      throw new InputError(`the value '${value}' for ${key} contains ; # or a newline, which the store cannot hold`);
    }
    let r = this.sectionRange(section);
    if (!r) {
      this.addSection(section);
      r = this.sectionRange(section)!;
    }
    for (let i = r.header + 1; i < r.end; i++) {
      const l = this.lines[i]!;
      if (l.kind === 'entry' && l.key === key) {
        if (l.value === value) return;
        const text = `${l.indent}${key} = ${value}${l.comment ? alignComment(l.comment) : ''}`;
        this.lines[i] = { ...l, value, text };
        return;
      }
    }
    // Append after the section's last entry and the comment lines that continue it, before trailing blank lines/comments.
    const at = this.endOfEntries(r.header, r.end);
    this.lines.splice(at, 0, { kind: 'entry', text: `${key} = ${value}`, key, value, indent: '', comment: '' });
  }

  delete(section: string, key: string): void {
    const r = this.sectionRange(section);
    if (!r) return;
    for (let i = r.header + 1; i < r.end; i++) {
      const l = this.lines[i]!;
      if (l.kind === 'entry' && l.key === key) {
        this.lines.splice(i, 1);
        return;
      }
    }
  }

  addSection(name: string): void {
    if (this.hasSection(name)) return;
    const last = this.lines[this.lines.length - 1];
    if (last && !(last.kind === 'other' && last.text.trim() === '')) this.lines.push({ kind: 'other', text: '' });
    this.lines.push({ kind: 'section', text: `[${name}]`, name });
  }

  /**
   * Removes a section with its body, and the comment lines directly above its
   * header (no blank line between), which describe it.
   */
  removeSection(name: string): void {
    const r = this.sectionRange(name);
    if (!r) return;
    // Not an indented comment: that continues the comment of the entry above it, in the section before.
    let start = r.header;
    while (start > 0) {
      const prev = this.lines[start - 1]!;
      if (prev.kind === 'other' && /^[;#]/.test(prev.text)) start--;
      else break;
    }
    // Lines after the last entry and its continued comment (a trailer, the next section's comment) are not its own.
    const end = this.endOfEntries(r.header, r.end);
    // Drop the blank line that separated it from what came before.
    if (start > 0 && this.lines[start - 1]!.kind === 'other' && this.lines[start - 1]!.text.trim() === '') start--;
    this.lines.splice(start, end - start);
  }

  /**
   * Where a section's entries end: after its last entry and the indented
   * comment lines right below it, which continue that entry's comment
   * (`start = auto   ; auto: ...` over two lines, as the store is written).
   */
  private endOfEntries(header: number, end: number): number {
    let at = header + 1;
    for (let i = header + 1; i < end; i++) if (this.lines[i]!.kind === 'entry') at = i + 1;
    while (at < end && isContinuation(this.lines[at]!)) at++;
    return at;
  }

  toString(): string {
    return this.lines.map((l) => l.text).join('\n') + '\n';
  }
}

function alignComment(comment: string): string {
  return /^\s/.test(comment) ? comment : ` ${comment}`;
}

/** An indented comment line: it continues the comment of the line above. */
function isContinuation(l: Line): boolean {
  return l.kind === 'other' && /^\s+[;#]/.test(l.text);
}
