// Every mask string of the seeds, as the kernel documentation, the s390-tools
// blog post and DESIGN.md give them.

import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { IdSet } from '../../src/model/idset.js';
import { parseIdList } from '../../src/model/idlist.js';
import { applyMaskSpec, parseMaskSpec } from '../../src/model/maskspec.js';

const apply = (spec: string, base: IdSet, key: 'apmask' | 'aqmask' = 'apmask'): IdSet => applyMaskSpec(parseMaskSpec(spec, key), base);

describe('the kernel documentation mask examples', () => {
  it('0x7dff..ff gives 0 and 6 to vfio_ap and keeps 1-5, 7-255 for the host', () => {
    const mask = IdSet.fromHexDigits('7d' + 'f'.repeat(62))!;
    expect(mask.toRanges()).toBe('1-5,7-255');
  });

  it('a short absolute hex is padded on the right: 0x41 means IDs 1 and 7 to the kernel', () => {
    expect(IdSet.fromHexDigits('41')!.toRanges()).toBe('1,7');
    expect(IdSet.fromHexDigits('41')!.toKernelHex()).toBe('0x41' + '0'.repeat(62));
  });

  it('ap.apmask=0xffff ap.aqmask=0x40 leave adapters 0-15 and domain 1 to the host', () => {
    expect(IdSet.fromHexDigits('ffff')!.toRanges()).toBe('0-15');
    expect(IdSet.fromHexDigits('40')!.toRanges()).toBe('1');
  });

  it('-5,-6 and -4,-0x47,-0xab,-0xff equal the absolute masks 0xf9ff.. and 0xf7ff..fe', () => {
    const apmask = apply('-5,-6', IdSet.full());
    const aqmask = apply('-4,-0x47,-0xab,-0xff', IdSet.full(), 'aqmask');
    expect(apmask.toKernelHex()).toBe('0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff');
    expect(aqmask.toKernelHex()).toBe('0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe');
    expect(apmask.toRanges()).toBe('0-4,7-255');
    expect(aqmask.toRanges()).toBe('0-3,5-70,72-170,172-254');
  });

  it('the full 64-digit form is read as sysfs prints it', () => {
    const spec = parseMaskSpec('0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', 'apmask');
    expect(applyMaskSpec(spec, IdSet.empty()).toRanges()).toBe('0-4,7-255');
  });
});

describe("chzdev's mask grammar from the s390-tools 2.22 post", () => {
  it('apmask=-2 aqmask=-43 gives 0-1,3-255 and 0-42,44-255', () => {
    const apmask = apply('-2', IdSet.full());
    const aqmask = apply('-43', IdSet.full(), 'aqmask');
    expect(apmask.toRanges()).toBe('0-1,3-255');
    expect(aqmask.toRanges()).toBe('0-42,44-255');
  });

  it('then +2,-4-8 and +43,-0-42 give 0-3,9-255 and 43-255', () => {
    const apmask = apply('+2,-4-8', apply('-2', IdSet.full()));
    const aqmask = apply('+43,-0-42', apply('-43', IdSet.full(), 'aqmask'), 'aqmask');
    expect(apmask.toRanges()).toBe('0-3,9-255');
    expect(aqmask.toRanges()).toBe('43-255');
  });

  it('apmask=0-255 resets everything to the host', () => {
    expect(apply('0-255', IdSet.empty()).equals(IdSet.full())).toBe(true);
  });

  it('0x41 is the ID 65, as in chzdev, not the kernel short mask', () => {
    expect(apply('0x41', IdSet.full()).toRanges()).toBe('65');
    expect(apply('+0x41', IdSet.empty()).toRanges()).toBe('65');
  });
});

describe('what chzdev gets wrong is an error here', () => {
  const bad: [string, RegExp][] = [
    ['5-3', /reversed/],
    ['256', /above 255/],
    ['0x4100', /above 255.*|64 hex digits/],
    ['', /empty/],
    ['1,+2', /mixes absolute/],
    ['-2,3', /mixes absolute/],
    ['zz', /not a valid/],
    ['1,,2', /empty item/],
    ['0x' + 'f'.repeat(65), /exactly 64/],
  ];
  for (const [spec, message] of bad) {
    it(`'${spec}' is refused`, () => {
      let error: unknown;
      try {
        parseMaskSpec(spec, 'apmask');
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).message + ((error as InputError).hint ?? '')).toMatch(message);
      expect((error as InputError).exitCode).toBe(2);
    });
  }

  it('in a mask, an ID above 255 points to the 64-digit form; in an mdev list it does not', () => {
    expect(() => parseMaskSpec('0x4100', 'apmask')).toThrow(InputError);
    try {
      parseMaskSpec('0x4100', 'apmask');
    } catch (err) {
      expect((err as InputError).hint).toMatch(/64 hex digits/);
    }
    try {
      parseIdList('300', 'domain');
    } catch (err) {
      expect((err as InputError).message).toMatch(/above 255/);
      expect((err as InputError).hint).toBe('IDs are 0-255, decimal or 0x hex');
    }
    expect(() => parseIdList('300')).toThrow(InputError);
  });
});

describe('mask formats', () => {
  it('prints the empty mask as the empty string and reads it back', () => {
    expect(IdSet.empty().toRanges()).toBe('');
    expect(applyMaskSpec(parseMaskSpec('', 'apmask', true), IdSet.full()).isEmpty()).toBe(true);
  });

  it('round-trips every single ID through the kernel hex form', () => {
    for (let id = 0; id < 256; id++) {
      const set = IdSet.of([id]);
      expect(IdSet.fromHexDigits(set.toKernelHex().slice(2))!.ids()).toEqual([id]);
    }
  });

  it('lists mix decimal, hex and ranges', () => {
    expect(parseIdList('4,0xab,0x10-0x12,200-201').ids()).toEqual([4, 16, 17, 18, 171, 200, 201]);
  });
});
