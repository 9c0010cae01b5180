// Seeded randomness for the property tests: a failure replays from its seed.

import { IdSet } from '../../src/model/idset.js';

/** A small deterministic PRNG (a 32-bit linear congruential generator): numbers in [0, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Up to `count` IDs below `span`, drawn with `next` (repeats collapse). */
export function randomIds(next: () => number, span: number, count: number): IdSet {
  const set = IdSet.empty();
  for (let i = 0; i < count; i++) set.add(Math.floor(next() * span));
  return set;
}
