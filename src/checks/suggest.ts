// suggest-masks: host masks that free exactly what the auto mdevs need while
// the host keeps as many queues as possible. The host owns apmask x aqmask,
// so every APQN (a, d) of an auto mdev needs a out of apmask or d out of
// aqmask. Choosing which adapters to keep out fixes the domains that must go;
// with few mdev adapters (or domains) every choice is tried, otherwise the
// better of the simple and greedy choices is taken. Pure.

import { ApqnSet, type Apqn } from '../model/apqn.js';
import { IdSet } from '../model/idset.js';
import type { Claim } from './conflicts.js';

export interface MaskSuggestion {
  apmask: IdSet;
  aqmask: IdSet;
  /** Queues the host keeps: present ones (all 65,536 when none are known). */
  hostQueues: number;
  /** Whether every way of keeping out adapters (or domains) was tried. */
  exhaustive: boolean;
}

const EXHAUSTIVE_LIMIT = 16;

/** Counts the queues in apmask x aqmask: among `present` (a row of 8 words per adapter), or of all 256 x 256. */
function hostCount(apmask: IdSet, aqmask: IdSet, present: ApqnSet | undefined): number {
  if (!present) return apmask.size * aqmask.size;
  return present.countCross(apmask, aqmask);
}

/**
 * With `out` kept out of apmask (a subset of the mdevs' adapters), the domains
 * that must leave aqmask: those of APQNs on the adapters still in.
 */
function domainsToFree(need: ApqnSet, adapters: IdSet, out: IdSet): IdSet {
  let domains = IdSet.empty();
  for (const a of adapters.minus(out).ids()) domains = domains.union(need.row(a));
  return domains;
}

export function suggestMasks(autos: readonly Claim[], presentList?: readonly Apqn[]): MaskSuggestion {
  // Counted for every candidate (up to 65,536 of them): a set, not a list of up to 65,536 queues.
  const present = presentList ? ApqnSet.of(presentList) : undefined;
  const need = new ApqnSet();
  let adapters = IdSet.empty();
  let domains = IdSet.empty();
  for (const m of autos) {
    if (m.adapters.isEmpty() || m.domains.isEmpty()) continue;
    need.addCross(m.adapters, m.domains);
    adapters = adapters.union(m.adapters);
    domains = domains.union(m.domains);
  }
  const candidate = (outAdapters: IdSet): MaskSuggestion => {
    const apmask = IdSet.full().minus(outAdapters);
    const aqmask = IdSet.full().minus(domainsToFree(need, adapters, outAdapters));
    return { apmask, aqmask, hostQueues: hostCount(apmask, aqmask, present), exhaustive: false };
  };
  // More present queues for the host wins; on a tie, more APQNs overall (cards added later).
  const total = (m: MaskSuggestion): number => m.apmask.size * m.aqmask.size;
  const better = (a: MaskSuggestion, b: MaskSuggestion): MaskSuggestion =>
    b.hostQueues > a.hostQueues || (b.hostQueues === a.hostQueues && total(b) > total(a)) ? b : a;

  const ids = adapters.ids();
  if (ids.length <= EXHAUSTIVE_LIMIT) {
    let best = candidate(IdSet.empty());
    for (let bits = 1; bits < 1 << ids.length; bits++) {
      best = better(best, candidate(IdSet.of(ids.filter((_, i) => bits & (1 << i)))));
    }
    return { ...best, exhaustive: true };
  }
  // Many adapters: all out, none out, and a greedy walk that keeps an adapter
  // out whenever that lets the host keep more queues.
  let best = better(candidate(adapters), candidate(IdSet.empty()));
  let out = IdSet.empty();
  let current = candidate(out);
  for (const a of ids) {
    const next = candidate(out.union(IdSet.of([a])));
    if (next.hostQueues >= current.hostQueues) {
      out = out.union(IdSet.of([a]));
      current = next;
    }
  }
  best = better(best, current);
  return best;
}
