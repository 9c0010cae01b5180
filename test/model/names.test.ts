// The names the hook reads on every run, tested without regular expressions
// where it reads them once (src/model/chars.ts): the hook's event, a unit's
// name, a path in generate's record, the kernel's mask text.

import { describe, expect, it } from 'vitest';
import { hasControlChar, isDecimalDigits } from '../../src/model/chars.js';
import { eventProperties } from '../../src/runtime/hook.js';
import { mdevUnit, mdevUnitUuid } from '../../src/generate/unit-names.js';
import { isPlainPath } from '../../src/generate/host-files.js';
import { IdSet } from '../../src/model/idset.js';

const UUID = 'bfccf00d-21f1-448c-9979-b7341129d985';

describe('the hook instance names the AP bus event', () => {
  it('add, change and change-<COMPLETECOUNT>, and nothing else', () => {
    expect(eventProperties('add')).toEqual({ ACTION: 'add', DEVPATH: '/bus/ap' });
    expect(eventProperties('change')).toEqual({ ACTION: 'change', DEVPATH: '/devices/ap', BINDINGS: 'complete' });
    expect(eventProperties('change-12')).toEqual({ ACTION: 'change', DEVPATH: '/devices/ap', BINDINGS: 'complete', COMPLETECOUNT: '12' });
    for (const name of ['change-', 'change-1a', 'change-+1', 'change--1', 'changes', 'change 1', 'remove', '', 'add-1']) expect(eventProperties(name), name).toBeUndefined();
  });

  it('counts digits and control characters by code', () => {
    expect(isDecimalDigits('0123456789')).toBe(true);
    expect(isDecimalDigits('')).toBe(false);
    expect(isDecimalDigits('12/')).toBe(false);
    expect(isDecimalDigits('x12', 1)).toBe(true);
    expect(isDecimalDigits('x12', 3)).toBe(false);
    expect(['a\nb', '\t', 'x\x7f', '\x00'].map(hasControlChar)).toEqual([true, true, true, true]);
    expect([' a b', '/srv/host', 'é', '~'].map(hasControlChar)).toEqual([false, false, false, false]);
  });
});

describe("an mdev unit's name", () => {
  it('gives the UUID of the units generate links, and of no other name', () => {
    expect(mdevUnitUuid(mdevUnit(UUID))).toBe(UUID);
    for (const name of [
      'ap-persist-mdev@.service',
      `ap-persist-mdev@${UUID.toUpperCase()}.service`,
      `ap-persist-mdev@ ${UUID}.service`,
      `ap-persist-mdev@${UUID}.service.tmp`,
      `.ap-persist-mdev@${UUID}.service`,
      `ap-persist-mdev@${UUID}.socket`,
      `ap-persist-hook@${UUID}.service`,
      'ap-persist-mdev@------------------------------------.service',
    ]) {
      expect(mdevUnitUuid(name), name).toBeUndefined();
    }
  });
});

describe('a path in the record', () => {
  it('is plain: segments, none empty, . or ..', () => {
    for (const path of ['etc/x', 'x', 'etc/.hidden', 'etc/..x', 'a/b/c']) expect(isPlainPath(path), path).toBe(true);
    for (const path of ['', '.', '..', '/etc/x', 'etc/x/', 'etc//x', 'etc/./x', 'etc/../x', './x', 'x/.', 'x/..']) expect(isPlainPath(path), path).toBe(false);
  });
});

describe("the kernel's mask text", () => {
  it('is 0x and 64 hex digits, of either case', () => {
    const hex = `0x${'ab'.padEnd(64, '0')}`;
    expect(IdSet.fromKernelHex(hex)?.toRanges()).toBe('0,2,4,6-7');
    expect(IdSet.fromKernelHex(hex.toUpperCase().replace('0X', '0x'))?.toRanges()).toBe('0,2,4,6-7');
    for (const text of [hex.slice(0, -1), `${hex}0`, `0X${hex.slice(2)}`, `0x${'g'.padEnd(64, '0')}`, `  ${hex.slice(2)}`]) expect(IdSet.fromKernelHex(text), text).toBeUndefined();
  });
});
