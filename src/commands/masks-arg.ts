// `apmask=SPEC aqmask=SPEC` arguments of `mask set`.

import { InputError } from '../errors.js';
import { parseMaskSpec, type MaskSpec } from '../model/maskspec.js';

export interface MaskArgs {
  apmask?: MaskSpec;
  aqmask?: MaskSpec;
}

export function parseMaskArgs(args: readonly string[]): MaskArgs {
  const out: MaskArgs = {};
  if (args.length === 0) {
    throw new InputError('mask set needs apmask=SPEC and/or aqmask=SPEC', {
      hint: 'e.g. ap-persist mask set apmask=-5,-6 aqmask=-4,-0x47',
    });
  }
  for (const arg of args) {
    const eq = arg.indexOf('=');
    const key = eq < 0 ? arg : arg.slice(0, eq);
    if (key !== 'apmask' && key !== 'aqmask') {
      throw new InputError(`'${arg}' is not apmask=SPEC or aqmask=SPEC`, {
        where: 'mask set',
        hint: 'SPEC is a list of host-owned IDs (0-4,7-255), +/- changes (-5,+6) or 0x and 64 hex digits',
      });
    }
    if (eq < 0) throw new InputError(`${key} needs a value: ${key}=SPEC`, { where: 'mask set', hint: `e.g. ${key}=-5,-6 or ${key}=0-4,7-255` });
    if (out[key]) throw new InputError(`${key} is given twice`, { where: 'mask set' });
    try {
      out[key] = parseMaskSpec(arg.slice(eq + 1), key);
    } catch (err) {
      if (err instanceof InputError) throw new InputError(err.message, { where: `mask set ${key}`, hint: err.hint });
      throw err;
    }
  }
  return out;
}
