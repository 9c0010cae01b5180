// The conflict engine: pure, on bit sets. Every command that could create a
// conflict (check, mask set, mdev define/modify/start, hook, callout) asks it.

import { describeApqn, type Apqn } from '../model/apqn.js';
import type { IdSet } from '../model/idset.js';
import { mdevLabel, type StartMode } from '../model/mdev.js';

export type Scope = 'persistent' | 'active';
export type ConflictKind = 'mdev-mdev' | 'mdev-host' | 'active-mdev-host';

/** Something that claims APQNs: an mdev, or the host (uuid `host`). */
export interface Claim {
  uuid: string;
  name?: string | undefined;
  adapters: IdSet;
  domains: IdSet;
  /** An mdev's start mode, where it changes what a conflict means. */
  start?: StartMode;
}

export interface Conflict {
  scope: Scope;
  kind: ConflictKind;
  apqn: Apqn;
  /** The two owners; the host is `{ uuid: 'host' }`. */
  owners: [Claim, Claim];
  message: string;
}

export const HOST = 'host';

/** Stops a pathological input (every mdev owning everything) from filling memory. */
export const MAX_REPORTED = 10_000;

export interface ConflictList {
  conflicts: Conflict[];
  /** How many more were found past MAX_REPORTED. */
  omitted: number;
}

function describe(kind: ConflictKind, scope: Scope, apqn: Apqn, a: Claim, b: Claim): string {
  const where = describeApqn(apqn);
  switch (kind) {
    case 'mdev-mdev':
      return scope === 'persistent'
        ? `${where} is defined for autostart by both ${mdevLabel(a)} and ${mdevLabel(b)}; only one can start at boot`
        : `${where} is in use by both active mdevs ${mdevLabel(a)} and ${mdevLabel(b)}`;
    case 'mdev-host':
      if (scope === 'persistent' && b.start === 'guest') return `${where} of guest mdev ${mdevLabel(b)} belongs to the host by the persistent masks; it could never be made for its guest`;
      return scope === 'persistent'
        ? `${where} of autostart mdev ${mdevLabel(b)} belongs to the host by the persistent masks`
        : `${where} of active mdev ${mdevLabel(b)} belongs to the host by the active masks`;
    case 'active-mdev-host':
      return scope === 'persistent'
        ? `${where} is in use by active mdev ${mdevLabel(b)}; the persistent masks give it to the host at the next boot, so the mdev could not be made again there`
        : `${where} is in use by active mdev ${mdevLabel(b)}; the new masks would give it to the host, and with it the guest's keys`;
  }
}

class Collector {
  readonly conflicts: Conflict[] = [];
  omitted = 0;

  /** Past MAX_REPORTED: what is found is only counted. */
  get full(): boolean {
    return this.conflicts.length >= MAX_REPORTED;
  }

  push(scope: Scope, kind: ConflictKind, apqn: Apqn, a: Claim, b: Claim): void {
    if (this.conflicts.length >= MAX_REPORTED) {
      this.omitted++;
      return;
    }
    this.conflicts.push({ scope, kind, apqn, owners: [a, b], message: describe(kind, scope, apqn, a, b) });
  }

  result(): ConflictList {
    return { conflicts: this.conflicts, omitted: this.omitted };
  }
}

const ROW = 8;

/**
 * Every APQN that two claims share, with every pair of its claimants. Per
 * adapter it keeps the union of the domains claimed so far and, per APQN, the
 * first claimant (and any later ones); so the cost is one 8-word AND per
 * (mdev, adapter) plus one write per newly claimed APQN and one step per pair.
 */
export function findSharedApqns(claims: readonly Claim[], scope: Scope): ConflictList {
  const out = new Collector();
  const taken = new Uint32Array(256 * ROW);
  const owner = new Int32Array(256 * 256).fill(-1);
  /** Per APQN, how many claim it so far: each new claimant pairs with every one of them. */
  const claimants = new Uint32Array(256 * 256);
  /** Per APQN, its claimants after the first, while the report still lists pairs (then they are only counted). */
  const later = new Map<number, number[]>();
  claims.forEach((claim, index) => {
    const dw = claim.domains.words;
    for (const a of claim.adapters.ids()) {
      const base = a * ROW;
      for (let w = 0; w < ROW; w++) {
        const mine = dw[w]!;
        if (!mine) continue;
        let shared = taken[base + w]! & mine;
        let fresh = mine & ~taken[base + w]!;
        while (shared) {
          const low = shared & -shared;
          const d = w * 32 + (31 - Math.clz32(low));
          const key = a * 256 + d;
          if (out.full) {
            // Counted, not listed: no list of every mdev owning everything (the cap's case) is built.
            out.omitted += claimants[key]!;
          } else {
            out.push(scope, 'mdev-mdev', { adapter: a, domain: d }, claims[owner[key]!]!, claim);
            const before = later.get(key);
            for (const i of before ?? []) out.push(scope, 'mdev-mdev', { adapter: a, domain: d }, claims[i]!, claim);
            if (before) before.push(index);
            else later.set(key, [index]);
          }
          claimants[key]!++;
          shared ^= low;
        }
        while (fresh) {
          const low = fresh & -fresh;
          const key = a * 256 + (w * 32 + (31 - Math.clz32(low)));
          owner[key] = index;
          claimants[key] = 1;
          fresh ^= low;
        }
        taken[base + w]! |= mine;
      }
    }
  });
  return out.result();
}

/** Every APQN of a claim that the host owns by `apmask` x `aqmask`. */
export function findHostOwned(
  claims: readonly Claim[],
  apmask: IdSet,
  aqmask: IdSet,
  scope: Scope,
  kind: 'mdev-host' | 'active-mdev-host' = 'mdev-host',
): ConflictList {
  const out = new Collector();
  const host: Claim = { uuid: HOST, adapters: apmask, domains: aqmask };
  for (const claim of claims) {
    // Most claims meet no host ID: tested without building a set.
    if (!claim.domains.intersects(aqmask) || !claim.adapters.intersects(apmask)) continue;
    const domains = claim.domains.intersect(aqmask);
    for (const a of claim.adapters.intersect(apmask).ids()) {
      for (const d of domains.ids()) out.push(scope, kind, { adapter: a, domain: d }, host, claim);
    }
  }
  return out.result();
}

/** Host masks as a pair; the host owns apmask x aqmask. */
export interface HostPair {
  apmask: IdSet;
  aqmask: IdSet;
}

/**
 * What stands in the way of one claim: each of its APQNs that another claim
 * holds (paired with that owner) and each the host owns. Computed for `mine`
 * alone, so a capped report never hides one of its conflicts behind others'.
 */
export function checkClaim(mine: Claim, others: readonly Claim[], host: HostPair | undefined, scope: Scope): ConflictList {
  const out = new Collector();
  const found: [Apqn, Claim][] = [];
  for (const other of others) {
    if (other.uuid === mine.uuid || !other.adapters.intersects(mine.adapters) || !other.domains.intersects(mine.domains)) continue;
    const domains = other.domains.intersect(mine.domains).ids();
    for (const adapter of other.adapters.intersect(mine.adapters).ids()) for (const domain of domains) found.push([{ adapter, domain }, other]);
  }
  found.sort(([a], [b]) => a.adapter - b.adapter || a.domain - b.domain);
  for (const [apqn, other] of found) out.push(scope, 'mdev-mdev', apqn, other, mine);
  const shared = out.result();
  return host ? mergeConflicts(shared, findHostOwned([mine], host.apmask, host.aqmask, scope)) : shared;
}

/**
 * The claims so far, indexed by APQN, for checking many claims one after the
 * other (the hook: each auto mdev against the active ones and those started
 * before it). `check` finds exactly what `checkClaim` finds against the
 * claims added so far, in the same order, at a cost of one 8-word AND per
 * adapter of the claim checked plus one step per conflict found, whatever
 * the number of claims; `add` costs one step per APQN of the claim.
 */
export class ClaimIndex {
  private readonly claims: Claim[] = [];
  /** Per adapter, the domains some claim holds. */
  private readonly taken = new Uint32Array(256 * ROW);
  /** Per APQN (adapter * 256 + domain), the first claim's index; -1 when none. */
  private readonly first = new Int32Array(256 * 256).fill(-1);
  /** Per APQN with more than one claim, the later ones' indices in the order added. */
  private readonly more = new Map<number, number[]>();

  constructor(claims: Iterable<Claim> = []) {
    for (const c of claims) this.add(c);
  }

  add(claim: Claim): void {
    const index = this.claims.push(claim) - 1;
    const dw = claim.domains.words;
    for (const a of claim.adapters.ids()) {
      const base = a * ROW;
      for (let w = 0; w < ROW; w++) {
        let bits = dw[w]!;
        if (!bits) continue;
        const held = this.taken[base + w]!;
        this.taken[base + w] = held | bits;
        while (bits) {
          const low = bits & -bits;
          const key = a * 256 + w * 32 + (31 - Math.clz32(low));
          if (held & low) {
            const list = this.more.get(key);
            if (list) list.push(index);
            else this.more.set(key, [index]);
          } else {
            this.first[key] = index;
          }
          bits ^= low;
        }
      }
    }
  }

  /** `checkClaim(mine, <the claims added so far>, host, scope)`. */
  check(mine: Claim, host: HostPair | undefined, scope: Scope): ConflictList {
    const out = new Collector();
    const dw = mine.domains.words;
    for (const a of mine.adapters.ids()) {
      const base = a * ROW;
      for (let w = 0; w < ROW; w++) {
        let shared = dw[w]! & this.taken[base + w]!;
        while (shared) {
          const low = shared & -shared;
          const domain = w * 32 + (31 - Math.clz32(low));
          const key = a * 256 + domain;
          const apqn = { adapter: a, domain };
          const owner = this.claims[this.first[key]!]!;
          if (owner.uuid !== mine.uuid) out.push(scope, 'mdev-mdev', apqn, owner, mine);
          for (const i of this.more.get(key) ?? []) {
            const other = this.claims[i]!;
            if (other.uuid !== mine.uuid) out.push(scope, 'mdev-mdev', apqn, other, mine);
          }
          shared ^= low;
        }
      }
    }
    const shared = out.result();
    return host ? mergeConflicts(shared, findHostOwned([mine], host.apmask, host.aqmask, scope)) : shared;
  }
}

/**
 * What stops `mdev` from starting now: APQNs that active mdevs (other than
 * itself) or the active masks hold. `claimed` adds mdevs started earlier in
 * the same run that sysfs may not show yet.
 */
export function checkStart(mdev: Claim, live: { mdevs: readonly Claim[]; masks: HostPair | undefined }, claimed: readonly Claim[] = []): ConflictList {
  return checkClaim(mdev, [...live.mdevs, ...claimed], live.masks, 'active');
}

/** APQNs of `claims` that `after` gives the host and `before` did not: what a mask change would take. */
export function newlyHostOwned(claims: readonly Claim[], before: HostPair, after: HostPair, scope: Scope, kind: 'mdev-host' | 'active-mdev-host'): ConflictList {
  const out = new Collector();
  const host: Claim = { uuid: HOST, adapters: after.apmask, domains: after.aqmask };
  for (const claim of claims) {
    const domains = claim.domains.intersect(after.aqmask).ids();
    for (const adapter of claim.adapters.intersect(after.apmask).ids()) {
      for (const domain of domains) {
        if (!(before.apmask.has(adapter) && before.aqmask.has(domain))) out.push(scope, kind, { adapter, domain }, host, claim);
      }
    }
  }
  return out.result();
}

/** Names a conflict whatever order its owners were found in, to compare two checks. */
export function conflictKey(c: Conflict): string {
  const owners = c.owners.map((o) => o.uuid).sort();
  return `${c.scope}|${c.kind}|${c.apqn.adapter}.${c.apqn.domain}|${owners.join('|')}`;
}

export function mergeConflicts(...lists: ConflictList[]): ConflictList {
  const conflicts: Conflict[] = [];
  let omitted = 0;
  for (const l of lists) {
    for (const c of l.conflicts) {
      if (conflicts.length < MAX_REPORTED) conflicts.push(c);
      else omitted++;
    }
    omitted += l.omitted;
  }
  return { conflicts, omitted };
}
