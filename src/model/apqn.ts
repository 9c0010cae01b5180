// APQNs (adapter, domain) and sets of them. An ApqnSet is 256 rows of 256
// bits (one row per adapter), so the cross product adapters x domains is one
// row copy per adapter and overlap tests are word ANDs.

import { IdSet } from './idset.js';

export interface Apqn {
  readonly adapter: number;
  readonly domain: number;
}

/** Kernel notation: `05.00ab`. */
export function formatApqn(apqn: Apqn): string {
  return `${formatAdapter(apqn.adapter)}.${formatDomain(apqn.domain)}`;
}

/** Decimal notation, as chzdev prints it: `5.171`. */
export function formatApqnDecimal(apqn: Apqn): string {
  return `${apqn.adapter}.${apqn.domain}`;
}

/** For messages: `APQN 05.00ab (5.171)`, kernel and decimal notation. */
export function describeApqn(apqn: Apqn): string {
  return `APQN ${formatApqn(apqn)} (${formatApqnDecimal(apqn)})`;
}

/** Two hex digits, as sysfs names cards (`card05`) and matrix lines print adapters. */
export function formatAdapter(adapter: number): string {
  return adapter.toString(16).padStart(2, '0');
}

/** Four hex digits, as matrix and control_domains print domains. */
export function formatDomain(domain: number): string {
  return domain.toString(16).padStart(4, '0');
}

/**
 * IDs as ranges in the kernel's hex notation, as lszcrypt and `matrix` show
 * them: adapters `05-06`, domains `0004,00ab`; the empty set is ''.
 */
export function hexRanges(ids: readonly number[], kind: 'adapter' | 'domain'): string {
  const fmt = kind === 'adapter' ? formatAdapter : formatDomain;
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? fmt(sorted[i]!) : `${fmt(sorted[i]!)}-${fmt(sorted[j]!)}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** Parses `05.00ab` (kernel notation, as in sysfs queue names and `matrix`). */
export function parseApqn(text: string): Apqn | undefined {
  const m = /^([0-9a-f]{2})\.([0-9a-f]{4})$/i.exec(text.trim());
  if (!m) return undefined;
  const adapter = parseInt(m[1]!, 16);
  const domain = parseInt(m[2]!, 16);
  return domain > 255 ? undefined : { adapter, domain };
}

const ROW_WORDS = 8;

export class ApqnSet {
  readonly words = new Uint32Array(256 * ROW_WORDS);

  /** Every APQN of adapters x domains. */
  static cross(adapters: IdSet, domains: IdSet): ApqnSet {
    const set = new ApqnSet();
    set.addCross(adapters, domains);
    return set;
  }

  addCross(adapters: IdSet, domains: IdSet): void {
    for (const a of adapters.ids()) {
      const base = a * ROW_WORDS;
      for (let i = 0; i < ROW_WORDS; i++) this.words[base + i]! |= domains.words[i]!;
    }
  }

  static of(apqns: Iterable<Apqn>): ApqnSet {
    const set = new ApqnSet();
    for (const q of apqns) set.add(q);
    return set;
  }

  add(apqn: Apqn): void {
    const i = apqn.adapter * 256 + apqn.domain;
    this.words[i >>> 5]! |= 1 << (i & 31);
  }

  /** Adds adapter * 256 + domain. */
  addKey(key: number): void {
    this.words[key >>> 5]! |= 1 << (key & 31);
  }

  has(apqn: Apqn): boolean {
    const i = apqn.adapter * 256 + apqn.domain;
    return ((this.words[i >>> 5]! >>> (i & 31)) & 1) === 1;
  }

  /** The domains of one adapter. */
  row(adapter: number): IdSet {
    return IdSet.fromWords(this.words.subarray(adapter * ROW_WORDS, adapter * ROW_WORDS + ROW_WORDS));
  }

  intersect(other: ApqnSet): ApqnSet {
    const out = new ApqnSet();
    for (let i = 0; i < this.words.length; i++) out.words[i] = this.words[i]! & other.words[i]!;
    return out;
  }

  minus(other: ApqnSet): ApqnSet {
    const out = new ApqnSet();
    for (let i = 0; i < this.words.length; i++) out.words[i] = this.words[i]! & ~other.words[i]!;
    return out;
  }

  isEmpty(): boolean {
    return this.words.every((w) => w === 0);
  }

  /** How many APQNs the set holds. */
  get size(): number {
    let n = 0;
    for (let i = 0; i < this.words.length; i++) n += popcount(this.words[i]!);
    return n;
  }

  /** How many APQNs of adapters x domains the set holds. */
  countCross(adapters: IdSet, domains: IdSet): number {
    let n = 0;
    const dw = domains.words;
    for (const adapter of adapters.ids()) {
      const base = adapter * ROW_WORDS;
      for (let w = 0; w < ROW_WORDS; w++) n += popcount(this.words[base + w]! & dw[w]!);
    }
    return n;
  }

  /**
   * The APQNs of adapters x domains that this set lacks: how many, and the
   * first `keep` of them (by adapter, then domain). One 8-word pass per
   * adapter, no set built.
   */
  missingOf(adapters: IdSet, domains: IdSet, keep: number): { count: number; first: Apqn[] } {
    let count = 0;
    const first: Apqn[] = [];
    const dw = domains.words;
    for (const adapter of adapters.ids()) {
      const base = adapter * ROW_WORDS;
      for (let w = 0; w < ROW_WORDS; w++) {
        let bits = dw[w]! & ~this.words[base + w]!;
        if (!bits) continue;
        count += popcount(bits);
        while (bits && first.length < keep) {
          const low = bits & -bits;
          first.push({ adapter, domain: w * 32 + (31 - Math.clz32(low)) });
          bits ^= low;
        }
      }
    }
    return { count, first };
  }

  /** Ascending by adapter, then domain. */
  *[Symbol.iterator](): IterableIterator<Apqn> {
    for (let adapter = 0; adapter < 256; adapter++) {
      const base = adapter * ROW_WORDS;
      let any = 0;
      for (let i = 0; i < ROW_WORDS; i++) any |= this.words[base + i]!;
      if (!any) continue;
      for (const domain of this.row(adapter).ids()) yield { adapter, domain };
    }
  }

  toArray(): Apqn[] {
    return [...this];
  }
}

/** Set bits of a 32-bit word. */
function popcount(word: number): number {
  let v = word - ((word >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}
