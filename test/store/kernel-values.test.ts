// mdevctl writes a definition's attribute values to sysfs as they are, and
// the kernel reads them with kstrtoul(s, 0): so do we. A value read any other
// way is a conflict missed or invented.

import { describe, expect, it } from 'vitest';
import { kstrtoul } from '../../src/model/kstrtoul.js';
import { parseMdevctlJson } from '../../src/store/mdevctl-defs.js';

const device = (attrs: Record<string, string>[]): string => JSON.stringify({ mdev_type: 'vfio_ap-passthrough', start: 'auto', attrs });

describe('kstrtoul(s, 0), lib/kstrtox.c', () => {
  it('reads decimal, 0x hex, a leading 0 as octal, an optional + and one newline', () => {
    expect(['5', '0x5', '0X1f', '0010', '+5', '5\n', '0'].map(kstrtoul)).toEqual([5n, 5n, 31n, 8n, 5n, 5n, 0n]);
  });
  it('refuses everything else (EINVAL), and what does not fit an unsigned long (ERANGE)', () => {
    expect(['08', '5,6', ' 5', '5 ', '', '-1', '0x', '5\n\n', 'zz'].map(kstrtoul)).toEqual(Array(9).fill('EINVAL'));
    expect(kstrtoul('18446744073709551616')).toBe('ERANGE');
  });
});

describe('an mdevctl definition read as the kernel will', () => {
  it('"0010" is domain 8, "+5" adapter 5', () => {
    const d = parseMdevctlJson(device([{ assign_adapter: '+5' }, { assign_domain: '0010' }]), 'f');
    expect([d.adapters.ids(), d.domains.ids()]).toEqual([[5], [8]]);
  });
  for (const [value, errno] of [['08', 'EINVAL'], ['5,6', 'EINVAL'], [' 5', 'EINVAL']] as const) {
    it(`"${value}" is refused, saying the kernel would refuse it (${errno})`, () => {
      expect(() => parseMdevctlJson(device([{ assign_adapter: value }]), '/etc/mdevctl.d/matrix/x')).toThrow(
        new RegExp(`attrs\\[0\\]\\.assign_adapter: '${value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}' is not a valid adapter: the kernel reads it with kstrtoul .* \\(${errno}\\)`),
      );
    });
  }
  it('an ID above 255 is refused', () => {
    expect(() => parseMdevctlJson(device([{ assign_domain: '0x100' }]), 'f')).toThrow(/domain '0x100' \(256\) is above 255/);
  });
});

describe('an mdevctl definition read as mdevctl reads it (mdev.rs load_from_json, add_attributes)', () => {
  const raw = (doc: Record<string, unknown>): string => JSON.stringify({ mdev_type: 'vfio_ap-passthrough', attrs: [], ...doc });
  it('a start other than "auto" is manual, as mdevctl starts nothing else at boot', () => {
    for (const start of ['manual', 'AUTO', 'Auto', 'never', 1, true]) expect(parseMdevctlJson(raw({ start }), 'f').start, String(start)).toBe('manual');
    expect(parseMdevctlJson(raw({ start: 'auto' }), 'f').start).toBe('auto');
  });
  it('no start at all is a file mdevctl refuses as invalid: unreadable, never taken as manual or auto', () => {
    expect(() => parseMdevctlJson(raw({}), 'f')).toThrow(/start is missing: mdevctl refuses the file \("invalid json"\)/);
    expect(() => parseMdevctlJson(raw({ start: null }), 'f')).toThrow(/start is missing/);
  });
  it('an attribute object of two fields is refused, as mdevctl refuses the whole definition', () => {
    expect(() => parseMdevctlJson(raw({ start: 'auto', attrs: [{ assign_adapter: '5', assign_domain: '4' }] }), 'f')).toThrow(/attrs\[0\] has 2 fields: mdevctl takes one per attribute, refuses the file/);
  });
});
