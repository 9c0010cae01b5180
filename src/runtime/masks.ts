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

export function applyMaskWrites(sysfs: Sysfs, writes: readonly MaskWrite[]): void {
  for (const w of writes) sysfs.write(`${AP_BUS}/${w.file}`, w.value);
}
