// The mask SPEC grammar chzdev accepts: an absolute LIST of host-owned IDs,
// a list of `+LIST`/`-LIST` changes, or the full 64-hex-digit sysfs form.

import { InputError } from '../errors.js';
import { IdSet } from './idset.js';
import { parseIdItem, parseIdList } from './idlist.js';

export interface MaskChange {
  /** `+` gives the IDs to the host, `-` frees them for vfio_ap. */
  op: '+' | '-';
  ids: IdSet;
}

export type MaskSpec = { kind: 'absolute'; mask: IdSet } | { kind: 'relative'; changes: MaskChange[] };

export function parseMaskSpec(text: string, what: 'apmask' | 'aqmask', allowEmpty = false): MaskSpec {
  const t = text.trim();
  const idWhat = what === 'apmask' ? 'adapter' : 'domain';
  const full = IdSet.fromKernelHex(t);
  if (full) return { kind: 'absolute', mask: full };
  if (/^0x[0-9a-f]{17,}$/i.test(t) && t.length !== 66) {
    throw new InputError(`${what} '${t}' has ${t.length - 2} hex digits; a full mask has exactly 64`, {
      hint: 'write 0x and exactly 64 hex digits, or a list of IDs such as 0-4,7-255',
    });
  }
  const items = t === '' ? [] : t.split(',').map((s) => s.trim());
  const signed = items.filter((i) => i.startsWith('+') || i.startsWith('-'));
  if (signed.length === 0) {
    if (t === '' && !allowEmpty) {
      throw new InputError(`${what} is empty`, {
        hint: `give host-owned ${idWhat}s (0-255 for all), +/- changes such as -5,+6, or a 64-digit mask`,
      });
    }
    return { kind: 'absolute', mask: withMaskHint(() => parseIdList(t, idWhat, true)) };
  }
  if (signed.length !== items.length) {
    throw new InputError(`${what} '${t}' mixes absolute IDs and +/- changes`, {
      hint: 'either list the host-owned IDs (absolute) or prefix every item with + or -',
    });
  }
  return {
    kind: 'relative',
    changes: items.map((item) => ({ op: item[0] as '+' | '-', ids: withMaskHint(() => parseIdItem(item.slice(1), idWhat)) })),
  };
}

/** In a mask, an ID too big is most likely a mask in the kernel's short form: say how to write a whole mask. */
function withMaskHint<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof InputError && /above 255|not a valid/.test(err.message)) {
      throw new InputError(err.message, { where: err.where, hint: 'IDs are 0-255; to give a whole mask write 0x and exactly 64 hex digits, as sysfs prints it' });
    }
    throw err;
  }
}

/** The mask that results from `spec` applied to `base` (the current mask). */
export function applyMaskSpec(spec: MaskSpec, base: IdSet): IdSet {
  if (spec.kind === 'absolute') return spec.mask.clone();
  let mask = base.clone();
  for (const change of spec.changes) mask = change.op === '+' ? mask.union(change.ids) : mask.minus(change.ids);
  return mask;
}
