// Converging the active masks on a target without ever giving the host, even
// for a moment, an APQN that neither the old nor the new masks give it:
// first take IDs away from the host on both masks, then add.

import type { IdSet } from '../model/idset.js';
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
