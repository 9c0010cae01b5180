// The bit-set engine against a naive reference on random hosts: they must
// find the same conflicts.

import { describe, expect, it } from 'vitest';
import { rng, randomIds } from '../support/random.js';
import { checkClaim, checkStart, ClaimIndex, findHostOwned, findSharedApqns, MAX_REPORTED, type Claim, type ConflictList, type HostPair } from '../../src/checks/conflicts.js';
import { IdSet } from '../../src/model/idset.js';
import { guestFindings } from '../../src/checks/check-host.js';
import type { MdevDefinition } from '../../src/model/mdev.js';
import type { Uuid } from '../../src/model/uuid.js';

/** Reference: every APQN, every pair of its claimants (the earlier one first), as tuples. */
function naiveShared(claims: Claim[]): string[] {
  const owners = new Map<string, string[]>();
  const out: string[] = [];
  for (const c of claims) {
    for (const a of c.adapters.ids()) {
      for (const d of c.domains.ids()) {
        const key = `${a}.${d}`;
        const before = owners.get(key) ?? [];
        for (const o of before) out.push(`${key}:${o}:${c.uuid}`);
        owners.set(key, [...before, c.uuid]);
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

/**
 * The pairwise reference for one claim: every other claim (not itself, by
 * UUID), every APQN both hold, by APQN and then in the others' order; then the
 * APQNs the host owns. What checkClaim did before the index, as tuples.
 */
function naiveClaim(mine: Claim, others: Claim[], host: HostPair | undefined): string[] {
  const out: string[] = [];
  for (const a of mine.adapters.ids())
    for (const d of mine.domains.ids())
      for (const o of others) if (o.uuid !== mine.uuid && o.adapters.has(a) && o.domains.has(d)) out.push(`mdev-mdev ${a}.${d}:${o.uuid}:${mine.uuid}`);
  if (host) for (const a of mine.adapters.ids()) for (const d of mine.domains.ids()) if (host.apmask.has(a) && host.aqmask.has(d)) out.push(`mdev-host ${a}.${d}:host:${mine.uuid}`);
  return out;
}

const tuples = (l: ConflictList): string[] => l.conflicts.map((c) => `${c.kind} ${c.apqn.adapter}.${c.apqn.domain}:${c.owners[0].uuid}:${c.owners[1].uuid}`);

/** A random store: a few UUIDs used twice (an active mdev that is also in the store), small spans so that claims overlap. */
function randomClaims(next: () => number, span: number, count: number, prefix: string): Claim[] {
  return Array.from({ length: count }, (_, i) => ({
    uuid: next() < 0.15 ? `${prefix}${Math.floor(next() * (i + 1))}` : `${prefix}${i}`,
    name: next() < 0.5 ? `guest${i}` : undefined,
    adapters: randomIds(next, span, Math.floor(next() * 5)),
    domains: randomIds(next, span, Math.floor(next() * 5)),
  }));
}

describe('the indexed engine finds exactly what the pairwise one did', () => {
  for (let seed = 1; seed <= 300; seed++) {
    it(`random store #${seed}: every claim against the index of all the others, and the hook's run`, () => {
      const next = rng(seed * 7919);
      const span = seed % 7 === 0 ? 256 : 4 + (seed % 9);
      const active = randomClaims(next, span, Math.floor(next() * 10), 'a');
      const store = randomClaims(next, span, 1 + Math.floor(next() * 20), 's');
      const host: HostPair | undefined = next() < 0.3 ? undefined : { apmask: randomIds(next, span, Math.floor(next() * span)), aqmask: randomIds(next, span, Math.floor(next() * span)) };

      // One claim against a fixed list (mdev define, the callout): the index of the list, checkClaim, the naive reference.
      const index = new ClaimIndex(active);
      for (const mine of store) {
        const indexed = index.check(mine, host, 'active');
        const pairwise = checkClaim(mine, active, host, 'active');
        expect(indexed).toEqual(pairwise);
        expect(tuples(indexed)).toEqual(naiveClaim(mine, active, host));
      }

      // The hook: each store claim in turn against the active ones and those passed before it.
      const claimed: Claim[] = [];
      const growing = new ClaimIndex(active);
      for (const mine of store) {
        const indexed = growing.check(mine, host, 'active');
        expect(indexed).toEqual(checkStart(mine, { mdevs: active, masks: host }, claimed));
        expect(tuples(indexed)).toEqual(naiveClaim(mine, [...active, ...claimed], host));
        if (indexed.conflicts.length === 0) {
          growing.add(mine);
          claimed.push(mine);
        }
      }
    });
  }

  it('past MAX_REPORTED both report the same first conflicts and count the same rest', () => {
    const all = IdSet.full();
    const owners: Claim[] = [
      { uuid: 'x', adapters: all, domains: all },
      { uuid: 'y', adapters: all, domains: all },
    ];
    const mine: Claim = { uuid: 'm', adapters: all, domains: all };
    const host = { apmask: IdSet.of([0, 1]), aqmask: IdSet.of([0]) };
    const indexed = new ClaimIndex(owners).check(mine, host, 'persistent');
    expect(indexed).toEqual(checkClaim(mine, owners, host, 'persistent'));
    // Two owners of each of the 65,536 APQNs, then the host's two: all past the cap counted, none lost.
    expect(indexed.conflicts).toHaveLength(MAX_REPORTED);
    expect(indexed.omitted).toBe(2 * 65_536 + 2 - MAX_REPORTED);
  });

  it('the hook at scale: 4,096 auto mdevs checked one after the other in linear time', () => {
    // 64 x 64 blocks of 4 adapters x 4 domains: all 65,536 APQNs, no conflict; then each checked again is refused by its twin.
    const blocks: Claim[] = [];
    for (let i = 0; i < 64; i++)
      for (let j = 0; j < 64; j++)
        blocks.push({ uuid: `m${i}.${j}`, adapters: IdSet.of([4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3]), domains: IdSet.of([4 * j, 4 * j + 1, 4 * j + 2, 4 * j + 3]) });
    const index = new ClaimIndex();
    for (const b of blocks) {
      expect(index.check(b, undefined, 'active').conflicts).toEqual([]);
      index.add(b);
    }
    const twin = { ...blocks[4095]!, uuid: 'twin' };
    const found = index.check(twin, undefined, 'active');
    expect(found.conflicts).toHaveLength(16);
    expect(found.conflicts.every((c) => c.owners[0].uuid === 'm63.63' && c.owners[1].uuid === 'twin')).toBe(true);
  });
});

describe('an APQN three mdevs claim', () => {
  it('is reported for every pair of them, so fixing the first does not reveal a conflict check did not name', () => {
    const claim = (uuid: string): Claim => ({ uuid, adapters: IdSet.of([5]), domains: IdSet.of([4]) });
    const found = findSharedApqns([claim('a'), claim('b'), claim('c')], 'persistent').conflicts;
    expect(found.map((c) => `${c.owners[0].uuid}-${c.owners[1].uuid}`)).toEqual(['a-b', 'a-c', 'b-c']);
  });
});


describe('a guest mdev that overlaps auto mdevs', () => {
  const full = (uuid: string, start: 'auto' | 'guest'): MdevDefinition => ({ uuid: uuid as Uuid, adapters: IdSet.full(), domains: IdSet.full(), controlDomains: IdSet.empty(), start });
  it('is warned of with the whole count per auto mdev, not the part of it a capped list holds', () => {
    const none = IdSet.empty();
    const { warnings } = guestFindings([full('g', 'guest')], [full('a1', 'auto'), full('a2', 'auto')], { apmask: none, aqmask: none });
    const shares = warnings.map((w) => /shares (\d+) APQN\(s\)/.exec(w.message)?.[1]);
    // 65,536 with each auto mdev; the list behind them stops at MAX_REPORTED, which the last warning says.
    expect(shares.slice(0, 2)).toEqual(['65536', '65536']);
    expect(warnings.at(-1)!.message).toContain('more overlap(s) with auto mdevs');
    expect(MAX_REPORTED).toBeLessThan(65_536);
  });
});

describe('every mdev owning everything (the case the report cap is for)', () => {
  it('counts every pair past the cap without listing or remembering them', () => {
    const claims: Claim[] = Array.from({ length: 40 }, (_, i) => ({ uuid: `m${i}`, adapters: IdSet.full(), domains: IdSet.full() }));
    const found = findSharedApqns(claims, 'persistent');
    expect(found.conflicts).toHaveLength(MAX_REPORTED);
    expect(found.conflicts.length + found.omitted).toBe((65_536 * 40 * 39) / 2);
  });
});
