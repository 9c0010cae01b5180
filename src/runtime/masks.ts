// Converging the active masks on a target without ever giving the host, even
// for a moment, an APQN that neither the old nor the new masks give it:
// first take IDs away from the host on both masks, then add. And the target
// itself cut so that it gives the host no active mdev's APQN, by the rule of
// the kernel at hand (the hook, and mask set's roll-backs).

import type { Claim } from '../checks/conflicts.js';
import { formatAdapter, formatApqn, formatDomain } from '../model/apqn.js';
import { IdSet } from '../model/idset.js';
import { mdevLabel } from '../model/mdev.js';
import { AP_BUS } from '../sysfs/ap-host.js';
import type { Sysfs } from '../sysfs/sysfs.js';

export interface MaskPair {
  apmask: IdSet;
  aqmask: IdSet;
}

export interface MaskWrite {
  file: 'apmask' | 'aqmask';
  value: string;
}

/** The writes, in a safe order, that turn `current` into `target`. */
export function planMaskWrites(current: MaskPair, target: MaskPair): MaskWrite[] {
  const writes: MaskWrite[] = [];
  const state = { apmask: current.apmask, aqmask: current.aqmask };
  const step = (file: 'apmask' | 'aqmask', value: IdSet): void => {
    if (state[file].equals(value)) return;
    state[file] = value;
    writes.push({ file, value: value.toKernelHex() });
  };
  step('apmask', current.apmask.intersect(target.apmask));
  step('aqmask', current.aqmask.intersect(target.aqmask));
  step('apmask', target.apmask);
  step('aqmask', target.aqmask);
  return writes;
}

/** What a refused mask write means (ap_bus.c apmask_store/aqmask_store). */
export const MASK_ERRNO_MEANING: Record<string, string> = {
  EBUSY: 'an mdev holds an APQN the write would give the host, or (6.19+) an adapter or domain the write adds (ap-persist check --active)',
  EINVAL: 'the kernel did not take the value, or (6.19+) a queue has driver_override set',
};

/** Writes in order; each one the kernel takes goes to `taken` (after a refusal: what is in effect). */
export function applyMaskWrites(sysfs: Sysfs, writes: readonly MaskWrite[], taken: MaskWrite[] = []): void {
  for (const w of writes) {
    sysfs.write(`${AP_BUS}/${w.file}`, w.value);
    taken.push(w);
  }
}

/**
 * What the kernel checks when a mask write gives the host more: 'apqn', the
 * newly host-owned APQNs (6.0-6.18; up to 5.19 nothing, where we check the
 * same); 'id', every added adapter and domain against any mdev (6.19+).
 */
export type MaskCheckRule = 'apqn' | 'id';

/** 6.19 brought the whole-ID check and bindings_complete_count together. */
export function maskCheckRule(sysfs: Sysfs): MaskCheckRule {
  return sysfs.exists('bus/ap/bindings_complete_count') ? 'id' : 'apqn';
}

export interface KeptApqn {
  apqn: string;
  mdev: string;
  kept: string;
}

/**
 * Shrinks `target` until no active mdev's APQN is newly the host's: per such
 * APQN it keeps its adapter (or domain) out of the host pool, choosing the
 * side the active masks already keep out, so nothing is taken from a guest.
 * An APQN the host has already (an old kernel let it happen) is left as it is:
 * there is nothing left to protect. One pass over the mdevs' APQNs, no cap.
 */
export function protectActiveMdevs(
  target: MaskPair,
  current: MaskPair,
  active: readonly Claim[],
  rule: MaskCheckRule = 'apqn',
): { target: MaskPair; kept: KeptApqn[] } {
  let { apmask, aqmask } = target;
  const kept: KeptApqn[] = [];
  // Masks that give the host no adapter and no domain it lacks give it no APQN it lacks.
  if (apmask.minus(current.apmask).isEmpty() && aqmask.minus(current.aqmask).isEmpty()) return { target, kept };
  if (rule === 'id') {
    // 6.19+ (ap_bus.c apmask_commit with all-bits-one in_use checks): an added adapter is refused
    // if any mdev holds it with any domain, an added domain if any mdev holds it with any adapter.
    const addedAdapters = apmask.minus(current.apmask);
    const addedDomains = aqmask.minus(current.aqmask);
    for (const mdev of active) {
      // An mdev with nothing on the other axis holds no APQN: the kernel lets its IDs go.
      if (mdev.adapters.isEmpty() || mdev.domains.isEmpty()) continue;
      for (const adapter of mdev.adapters.intersect(addedAdapters).ids()) {
        if (!apmask.has(adapter)) continue;
        apmask = apmask.minus(IdSet.of([adapter]));
        kept.push({ apqn: `${formatAdapter(adapter)}.`, mdev: mdevLabel(mdev), kept: `adapter ${adapter} kept out of apmask (the kernel refuses to add an adapter an mdev holds)` });
      }
      for (const domain of mdev.domains.intersect(addedDomains).ids()) {
        if (!aqmask.has(domain)) continue;
        aqmask = aqmask.minus(IdSet.of([domain]));
        kept.push({ apqn: `.${formatDomain(domain)}`, mdev: mdevLabel(mdev), kept: `domain ${domain} kept out of aqmask (the kernel refuses to add a domain an mdev holds)` });
      }
    }
    return { target: { apmask, aqmask }, kept };
  }
  for (const mdev of active) {
    for (const adapter of mdev.adapters.ids()) {
      for (const domain of mdev.domains.ids()) {
        const gained = apmask.has(adapter) && aqmask.has(domain) && !(current.apmask.has(adapter) && current.aqmask.has(domain));
        if (!gained) continue;
        const apqn = formatApqn({ adapter, domain });
        // Not the host's now, so the active masks keep out its adapter or its domain.
        if (!current.apmask.has(adapter)) {
          apmask = apmask.minus(IdSet.of([adapter]));
          kept.push({ apqn, mdev: mdevLabel(mdev), kept: `adapter ${adapter} kept out of apmask` });
        } else {
          aqmask = aqmask.minus(IdSet.of([domain]));
          kept.push({ apqn, mdev: mdevLabel(mdev), kept: `domain ${domain} kept out of aqmask` });
        }
      }
    }
  }
  return { target: { apmask, aqmask }, kept };
}
