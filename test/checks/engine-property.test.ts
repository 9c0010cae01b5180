// The bit-set engine against a naive reference on random hosts: they must
// find the same conflicts.

import { describe, expect, it } from 'vitest';
import { findHostOwned, findSharedApqns, type Claim } from '../../src/checks/conflicts.js';
import { IdSet } from '../../src/model/idset.js';

/** A small deterministic PRNG so a failure can be replayed from its seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomIds(next: () => number, span: number, count: number): IdSet {
  const set = IdSet.empty();
  for (let i = 0; i < count; i++) set.add(Math.floor(next() * span));
  return set;
}

/** Reference: every pair of claims, every APQN, as tuples; the first claimant owns. */
function naiveShared(claims: Claim[]): string[] {
  const owner = new Map<string, string>();
  const out: string[] = [];
  for (const c of claims) {
    for (const a of c.adapters.ids()) {
      for (const d of c.domains.ids()) {
        const key = `${a}.${d}`;
        const first = owner.get(key);
        if (first !== undefined) out.push(`${key}:${first}:${c.uuid}`);
        else owner.set(key, c.uuid);
      }
    }
  }
  return out.sort();
}

function naiveHost(claims: Claim[], apmask: IdSet, aqmask: IdSet): string[] {
  const out: string[] = [];
  for (const c of claims)
    for (const a of c.adapters.ids()) for (const d of c.domains.ids()) if (apmask.has(a) && aqmask.has(d)) out.push(`${a}.${d}:${c.uuid}`);
  return out.sort();
}

describe('the conflict engine agrees with a naive reference', () => {
  for (let seed = 1; seed <= 200; seed++) {
    it(`random host #${seed}`, () => {
      const next = rng(seed);
      // Small spans make overlaps likely; some seeds use the whole 0-255 range.
      const span = seed % 5 === 0 ? 256 : 6 + (seed % 10);
      const claims: Claim[] = Array.from({ length: 1 + Math.floor(next() * 12) }, (_, i) => ({
        uuid: `m${i}`,
        adapters: randomIds(next, span, Math.floor(next() * 4)),
        domains: randomIds(next, span, Math.floor(next() * 4)),
      }));
      const apmask = randomIds(next, span, Math.floor(next() * span));
      const aqmask = randomIds(next, span, Math.floor(next() * span));

      const shared = findSharedApqns(claims, 'persistent').conflicts.map(
        (c) => `${c.apqn.adapter}.${c.apqn.domain}:${c.owners[0].uuid}:${c.owners[1].uuid}`,
      );
      expect(shared.sort()).toEqual(naiveShared(claims));

      const host = findHostOwned(claims, apmask, aqmask, 'persistent').conflicts.map(
        (c) => `${c.apqn.adapter}.${c.apqn.domain}:${c.owners[1].uuid}`,
      );
      expect(host.sort()).toEqual(naiveHost(claims, apmask, aqmask));
    });
  }
});

describe('the engine at scale', () => {
  it('4,096 disjoint mdevs covering all 65,536 APQNs have no conflict; one intruder has exactly its overlap', () => {
    // 64 adapter blocks x 64 domain blocks, each mdev 4 adapters x 4 domains.
    const claims: Claim[] = [];
    for (let i = 0; i < 64; i++)
      for (let j = 0; j < 64; j++)
        claims.push({
          uuid: `m${i}.${j}`,
          adapters: IdSet.of([4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3]),
          domains: IdSet.of([4 * j, 4 * j + 1, 4 * j + 2, 4 * j + 3]),
        });
    expect(claims.length).toBe(4096);
    expect(findSharedApqns(claims, 'persistent').conflicts).toEqual([]);
    claims.push({ uuid: 'intruder', adapters: IdSet.of([0, 255]), domains: IdSet.of([0]) });
    const found = findSharedApqns(claims, 'persistent').conflicts;
    expect(found.map((c) => [c.apqn.adapter, c.apqn.domain, c.owners[0].uuid])).toEqual([
      [0, 0, 'm0.0'],
      [255, 0, 'm63.0'],
    ]);
  });
});
