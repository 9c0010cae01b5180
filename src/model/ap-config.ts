// The kernel's absolute-mask parsers, shared by the simulated kernel and by
// the readers of mdevctl definitions, so an `ap_config` value means the same
// to both: what vfio_ap would make of it. Pure.

import { IdSet } from './idset.js';

/**
 * ap_bus.c hex2bitmap (ap_hex2bitmap since 6.10): an optional lower-case
 * `0x` or `x`, at most 64 hex digits padded with zeros on the right, one
 * optional newline; no digits at all is an empty mask. Undefined: EINVAL.
 */
export function hex2bitmap(text: string): IdSet | undefined {
  const m = /^(?:0?x)?([0-9a-fA-F]*)\n?$/.exec(text);
  if (!m || m[1]!.length > 64) return undefined;
  return m[1] ? IdSet.fromHexDigits(m[1]) : IdSet.empty();
}

/**
 * vfio_ap_ops.c ap_config_store's fields (6.10+, parse_bitmap): three
 * strsep(",\n") tokens, adapters, usage domains and control domains, each an
 * absolute mask; a missing one (the string ended) or a bad one is undefined
 * (EINVAL). An empty token is an empty mask, so `A,B\n` leaves no control
 * domains; anything after the third token is not looked at.
 */
export function apConfigFields(data: string): [IdSet, IdSet, IdSet] | undefined {
  let rest: string | undefined = data;
  const out: IdSet[] = [];
  for (let i = 0; i < 3; i++) {
    if (rest === undefined) return undefined;
    const at: number = rest.search(/[,\n]/);
    const token: string = at < 0 ? rest : rest.slice(0, at);
    rest = at < 0 ? undefined : rest.slice(at + 1);
    const mask = hex2bitmap(token);
    if (!mask) return undefined;
    out.push(mask);
  }
  return [out[0]!, out[1]!, out[2]!];
}
