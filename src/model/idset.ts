// A set of adapter or domain IDs (0-255) held as 256 bits, so that masks,
// mdev matrices and APQN sets combine with a few word operations.

export const MAX_ID = 255;
const WORDS = 8;

export class IdSet {
  /** Bit `id` lives in word `id >> 5` at bit `id & 31`. */
  readonly words: Uint32Array;

  private constructor(words: Uint32Array) {
    this.words = words;
  }

  static empty(): IdSet {
    return new IdSet(new Uint32Array(WORDS));
  }

  static full(): IdSet {
    return new IdSet(new Uint32Array(WORDS).fill(0xffffffff));
  }

  static of(ids: Iterable<number>): IdSet {
    const set = IdSet.empty();
    for (const id of ids) set.add(id);
    return set;
  }

  static fromWords(words: Uint32Array): IdSet {
    // The constructor's copy: Uint32Array.from walks an iterator.
    return new IdSet(new Uint32Array(words));
  }

  /**
   * The set held in `words` themselves, not a copy: eight words the caller
   * gives up (a view into one buffer of many sets: a typed array of its own
   * per set costs some 300 bytes of young heap, and the boot reads 200 sets).
   */
  static inWords(words: Uint32Array): IdSet {
    if (words.length !== WORDS) throw new RangeError(`an ID set is ${WORDS} words, not ${words.length}`);
    return new IdSet(words);
  }

  has(id: number): boolean {
    return ((this.words[id >>> 5]! >>> (id & 31)) & 1) === 1;
  }

  add(id: number): this {
    if (!Number.isInteger(id) || id < 0 || id > MAX_ID) throw new RangeError(`ID ${id} is outside 0-255`);
    this.words[id >>> 5]! |= 1 << (id & 31);
    return this;
  }

  delete(id: number): this {
    this.words[id >>> 5]! &= ~(1 << (id & 31));
    return this;
  }

  clone(): IdSet {
    return IdSet.fromWords(this.words);
  }

  union(other: IdSet): IdSet {
    const out = this.clone();
    for (let i = 0; i < WORDS; i++) out.words[i]! |= other.words[i]!;
    return out;
  }

  intersect(other: IdSet): IdSet {
    const out = this.clone();
    for (let i = 0; i < WORDS; i++) out.words[i]! &= other.words[i]!;
    return out;
  }

  minus(other: IdSet): IdSet {
    const out = this.clone();
    for (let i = 0; i < WORDS; i++) out.words[i]! &= ~other.words[i]!;
    return out;
  }

  intersects(other: IdSet): boolean {
    for (let i = 0; i < WORDS; i++) if ((this.words[i]! & other.words[i]!) !== 0) return true;
    return false;
  }

  isEmpty(): boolean {
    for (let i = 0; i < WORDS; i++) if (this.words[i] !== 0) return false;
    return true;
  }

  equals(other: IdSet): boolean {
    for (let i = 0; i < WORDS; i++) if (this.words[i] !== other.words[i]) return false;
    return true;
  }

  get size(): number {
    let n = 0;
    for (const w of this.words) {
      let v = w;
      while (v) {
        v &= v - 1;
        n++;
      }
    }
    return n;
  }

  /** Ascending IDs. */
  ids(): number[] {
    const out: number[] = [];
    for (let i = 0; i < WORDS; i++) {
      let w = this.words[i]!;
      while (w) {
        const low = w & -w;
        out.push(i * 32 + (31 - Math.clz32(low)));
        w ^= low;
      }
    }
    return out;
  }

  /** chzdev's canonical form: `0-1,3-255`; the empty set is the empty string. */
  toRanges(): string {
    const parts: string[] = [];
    const ids = this.ids();
    for (let i = 0; i < ids.length; ) {
      let j = i;
      while (j + 1 < ids.length && ids[j + 1] === ids[j]! + 1) j++;
      parts.push(i === j ? `${ids[i]}` : `${ids[i]}-${ids[j]}`);
      i = j + 1;
    }
    return parts.join(',');
  }

  /** The kernel's read format: `0x` and 64 hex digits, ID 0 the leftmost bit. */
  toKernelHex(): string {
    // Eight hex digits per word: ID 0 is the leftmost bit there, the lowest in the word.
    let hex = '0x';
    for (let i = 0; i < WORDS; i++) hex += reverseBits(this.words[i]!).toString(16).padStart(8, '0');
    return hex;
  }

  /** The kernel's read format, `0x` and exactly 64 hex digits; undefined for anything else. */
  static fromKernelHex(text: string): IdSet | undefined {
    // fromHexDigits checks the digits.
    return text.length === 66 && text.startsWith('0x') ? IdSet.fromHexDigits(text.slice(2)) : undefined;
  }

  /**
   * Reads hex digits with ID 0 leftmost; shorter input is padded with zeros
   * on the right, as the kernel does. Returns undefined for non-hex input or
   * more than 64 digits.
   */
  static fromHexDigits(digits: string): IdSet | undefined {
    if (!/^[0-9a-fA-F]{1,64}$/.test(digits)) return undefined;
    // A word per eight digits, not a step per bit: the boot reads a mask or a matrix per mdev.
    const all = digits.padEnd(64, '0');
    const words = new Uint32Array(WORDS);
    for (let i = 0; i < WORDS; i++) words[i] = reverseBits(parseInt(all.slice(i * 8, i * 8 + 8), 16));
    return new IdSet(words);
  }
}

/** Bit i of the 32-bit `w` moved to bit 31 - i: the kernel's order (ID 0 leftmost) to the words' (ID 0 lowest) and back. */
function reverseBits(w: number): number {
  w = ((w >>> 1) & 0x55555555) | ((w & 0x55555555) << 1);
  w = ((w >>> 2) & 0x33333333) | ((w & 0x33333333) << 2);
  w = ((w >>> 4) & 0x0f0f0f0f) | ((w & 0x0f0f0f0f) << 4);
  w = ((w >>> 8) & 0x00ff00ff) | ((w & 0x00ff00ff) << 8);
  return ((w >>> 16) | (w << 16)) >>> 0;
}
