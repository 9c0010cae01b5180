// The simulated kernel, told as the admin's story from the kernel's vfio-ap
// documentation (Documentation/s390/vfio-ap.rst, 5.4): every example there is
// replayed here through sysfs reads and writes, on every kernel flavour ('5.4':
// up to 5.19, '6.0': 6.0-6.18, '6.19': 6.19 and later). The last part tests
// each modelled kernel function by name, per flavour.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { buildFakeHost } from '../../src/fakehost/builder.js';
import { GUEST1, GUEST2, GUEST3 } from '../../src/fakehost/three-guests.js';
import { IdSet } from '../../src/model/idset.js';
import {
  AP_BUS,
  AP_DEVICES,
  MATRIX,
  PASSTHROUGH_CREATE,
  listActiveMdevs,
  listQueues,
  mdevPath,
  parseKernelMask,
} from '../../src/sysfs/ap-host.js';
import { FileSysfs } from '../../src/sysfs/file-sysfs.js';
import {
  KERNEL_FLAVOURS,
  KernelEventError,
  SimKernel,
  WouldBlockError,
  parseMaskWrite,
  type KernelFlavour,
  type SimKernelOptions,
} from '../../src/sysfs/sim-kernel.js';
import { isSysfsError, type Sysfs } from '../../src/sysfs/sysfs.js';

const APMASK = `${AP_BUS}/apmask`;
const AQMASK = `${AP_BUS}/aqmask`;
const KERNELS = KERNEL_FLAVOURS;

// The doc's three-guest mask strings, and what the secured example host reads.
const DOC_APMASK = '0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff';
const DOC_AQMASK = '0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe';
const DOC_QUEUES = ['05.0004', '05.0047', '05.00ab', '05.00ff', '06.0004', '06.0047', '06.00ab', '06.00ff'];
/** What the matrix device holds besides its mdevs. */
const MATRIX_FILES = ['driver', 'mdev_supported_types', 'subsystem', 'uevent'];

/** The doc's example host: CEX5 cards 05 and 06, usage domains 4, 0x47, 0xab, 0xff. */
function docHost(kernel: KernelFlavour, more: Partial<SimKernelOptions> = {}): SimKernel {
  return new SimKernel({
    kernel,
    cards: [
      { adapter: 5, hwtype: 11 },
      { adapter: 6, hwtype: 11 },
    ],
    domains: [0x04, 0x47, 0xab, 0xff],
    ...more,
  });
}

/** Steps 1 and 2: vfio_ap loaded, the eight queues secured with the doc's bit switches. */
function securedDocHost(kernel: KernelFlavour, more: Partial<SimKernelOptions> = {}): SimKernel {
  const k = docHost(kernel, more);
  k.loadVfioAp();
  k.write(APMASK, '-5,-6\n');
  k.write(AQMASK, '-4,-0x47,-0xab,-0xff\n');
  return k;
}

/** Step 3 and 4 for one guest: `echo $uuid > create`, then each `echo ID > attr`. */
function configure(k: Sysfs, uuid: string, steps: [string, string][]): void {
  k.write(PASSTHROUGH_CREATE, `${uuid}\n`);
  for (const [attr, id] of steps) k.write(mdevPath(uuid, attr), `${id}\n`);
}

/** The errno a write gets, or 'ok'. */
function errnoOf(k: Sysfs, path: string, data: string): string {
  try {
    k.write(path, data);
    return 'ok';
  } catch (err) {
    if (isSysfsError(err)) return err.code;
    throw err;
  }
}

function driverOf(k: Sysfs, queue: string): string | undefined {
  const path = `${AP_DEVICES}/${queue}/driver`;
  return k.exists(path) ? k.read(path).trim() : undefined;
}

function driversBy(k: Sysfs): Record<string, string> {
  return Object.fromEntries(listQueues(k).map((q) => [q.adapter.toString(16).padStart(2, '0') + '.' + q.domain.toString(16).padStart(4, '0'), q.driver ?? '-']));
}

function maskIds(k: Sysfs, path: string): IdSet {
  const mask = parseKernelMask(k.read(path));
  if (!mask) throw new Error(`${path} does not read as a kernel mask`);
  return mask;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});
function tempRoot(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sim-kernel-'));
  roots.push(dir);
  return dir;
}

describe('the AP masks (step 2: securing queues)', () => {
  it('read as 0x and 64 hex digits; a freshly booted host owns everything', () => {
    const k = docHost('6.0');
    expect(k.read(APMASK)).toBe(`0x${'f'.repeat(64)}\n`);
    expect(k.read(AQMASK)).toBe(`0x${'f'.repeat(64)}\n`);
  });

  it('0x7dff… gives adapters 0 and 6 to vfio_ap and keeps 1-5 and 7-255 for the host', () => {
    const k = docHost('6.0');
    k.write(APMASK, `0x7d${'f'.repeat(62)}`);
    const host = maskIds(k, APMASK);
    expect(host.has(0)).toBe(false);
    expect(host.has(6)).toBe(false);
    expect(host.toRanges()).toBe('1-5,7-255');
  });

  it('0x41 is shorter than the mask: padded with zeros on the right, it means IDs 1 and 7', () => {
    const k = docHost('6.0');
    k.write(APMASK, '0x41');
    expect(k.read(APMASK)).toBe(`0x41${'0'.repeat(62)}\n`);
    expect(maskIds(k, APMASK).ids()).toEqual([1, 7]);
  });

  it.each([
    ['+0', 0, true],
    ['-13', 13, false],
    ['+0x41', 65, true],
    ['-0xff', 255, false],
  ])('the bit switch "%s" sets bit %i to %s and leaves the others', (text, bit, on) => {
    const k = docHost('6.0');
    const start = on ? IdSet.full().minus(IdSet.of([bit])) : IdSet.full();
    k.write(APMASK, start.toKernelHex());
    k.write(APMASK, text);
    const mask = maskIds(k, APMASK);
    expect(mask.has(bit)).toBe(on);
    expect(mask.size).toBe(on ? 256 : 255);
  });

  it('+0,-6,+0x47,-0xf0 switches 0 and 71 on, 6 and 240 off, and nothing else', () => {
    const k = docHost('6.0');
    const before = IdSet.of([1, 6, 7, 100, 240]);
    k.write(AQMASK, before.toKernelHex());
    k.write(AQMASK, '+0,-6,+0x47,-0xf0');
    expect(maskIds(k, AQMASK).ids()).toEqual([0, 1, 7, 71, 100]);
  });

  it('ap.apmask=0xffff ap.aqmask=0x40: the host keeps adapters 0-15 on domain 1, vfio_ap gets the rest', () => {
    const k = new SimKernel({
      kernel: '6.0',
      cards: [
        { adapter: 0x0f, hwtype: 11 },
        { adapter: 0x10, hwtype: 11 },
      ],
      domains: [1, 2],
      vfioAp: true,
    });
    k.write(APMASK, '0xffff');
    k.write(AQMASK, '0x40');
    expect(k.read(APMASK)).toBe(`0xffff${'0'.repeat(60)}\n`);
    expect(k.read(AQMASK)).toBe(`0x40${'0'.repeat(62)}\n`);
    expect(maskIds(k, APMASK).toRanges()).toBe('0-15');
    expect(maskIds(k, AQMASK).toRanges()).toBe('1');
    expect(driversBy(k)).toEqual({ '0f.0001': 'cex4queue', '0f.0002': 'vfio_ap', '10.0001': 'vfio_ap', '10.0002': 'vfio_ap' });
  });

  it('a hex string longer than the mask is EINVAL, and the mask stays as it was', () => {
    const k = docHost('6.0');
    k.write(APMASK, DOC_APMASK);
    expect(errnoOf(k, APMASK, `0x${'f'.repeat(65)}`)).toBe('EINVAL');
    expect(k.read(APMASK)).toBe(`${DOC_APMASK}\n`);
  });

  it.each(['garbage', '5,6', '0x12345g', '+256', '-0x100', '+0,x', '+-1', '-5--6', '+0,-6,+300', '+08'])(
    '"%s" is EINVAL and nothing of it is applied',
    (text) => {
      const k = docHost('6.0');
      expect(errnoOf(k, AQMASK, text)).toBe('EINVAL');
      expect(k.read(AQMASK)).toBe(`0x${'f'.repeat(64)}\n`);
    },
  );

  it('takes ranges in bit switches and lower-case-optional 0x, as the AP bus parser does', () => {
    // Not in the 5.4 text, but in ap_parse_mask_str since the masks exist; chzdev relies on neither.
    expect(parseMaskWrite('-4-8,+6', IdSet.full())?.toRanges()).toBe('0-3,6,9-255');
    expect(parseMaskWrite('+010', IdSet.empty())?.ids()).toEqual([8]); // leading 0: octal, as strtoul reads it
    expect(parseMaskWrite('41\n', IdSet.full())?.ids()).toEqual([1, 7]);
    expect(parseMaskWrite('\n', IdSet.full())?.isEmpty()).toBe(true); // `echo > apmask` empties the mask
  });
});

describe('which driver gets each queue', () => {
  it('the AP bus makes one card and one queue device per adapter × usage domain (adapters 4, 0x0a; domains 6, 0x47)', () => {
    const k = new SimKernel({
      kernel: '5.4',
      cards: [
        { adapter: 4, hwtype: 11 },
        { adapter: 0x0a, hwtype: 11 },
      ],
      domains: [6, 0x47],
    });
    expect(k.list(AP_DEVICES)).toEqual(['04.0006', '04.0047', '0a.0006', '0a.0047', 'card04', 'card0a']);
    expect(k.read(`${AP_DEVICES}/card0a/hwtype`)).toBe('11\n');
  });

  it.each(KERNELS)('%s: echo -5,-6 > apmask; echo -4,-0x47,-0xab,-0xff > aqmask binds exactly the eight queues to vfio_ap', (kernel) => {
    const k = docHost(kernel, { vfioAp: true });
    expect(new Set(Object.values(driversBy(k)))).toEqual(new Set(['cex4queue']));
    k.write(APMASK, '-5,-6\n');
    k.write(AQMASK, '-4,-0x47,-0xab,-0xff\n');
    expect(k.read(APMASK)).toBe(`${DOC_APMASK}\n`);
    expect(k.read(AQMASK)).toBe(`${DOC_AQMASK}\n`);
    expect(driversBy(k)).toEqual(Object.fromEntries(DOC_QUEUES.map((q) => [q, 'vfio_ap'])));
  });

  it('the absolute masks 0xf9ff… and 0xf7ff…fe secure the same queues as the bit switches', () => {
    const bySwitches = securedDocHost('5.4');
    const absolute = docHost('5.4', { vfioAp: true });
    absolute.write(APMASK, `${DOC_APMASK}\n`);
    absolute.write(AQMASK, `${DOC_AQMASK}\n`);
    expect(absolute.read(APMASK)).toBe(bySwitches.read(APMASK));
    expect(absolute.read(AQMASK)).toBe(bySwitches.read(AQMASK));
    expect(driversBy(absolute)).toEqual(driversBy(bySwitches));
  });

  it('the host keeps only apmask × aqmask: a queue needs both bits to stay with cex4queue', () => {
    const k = securedDocHost('6.0', {
      cards: [5, 6, 7].map((adapter) => ({ adapter, hwtype: 11 })),
      domains: [0x04, 0x05, 0x47, 0xab, 0xff],
    });
    const drivers = driversBy(k);
    expect(drivers['07.0005']).toBe('cex4queue'); // both bits set
    expect(drivers['07.0004']).toBe('vfio_ap'); // host adapter, freed domain
    expect(drivers['05.0005']).toBe('vfio_ap'); // freed adapter, host domain
  });

  it('freed queues wait unbound until vfio_ap is loaded; loading it creates the matrix device', () => {
    const k = docHost('6.0');
    k.write(APMASK, '-5,-6');
    expect(driverOf(k, '05.0004')).toBeUndefined();
    expect(k.exists(`${AP_DEVICES}/05.0004`)).toBe(true);
    expect(k.exists(MATRIX)).toBe(false);
    expect(k.vfioApLoaded).toBe(false);
    k.loadVfioAp();
    expect(k.vfioApLoaded).toBe(true);
    expect(driverOf(k, '05.0004')).toBe('vfio_ap');
    expect(k.list(MATRIX)).toEqual(MATRIX_FILES);
    expect(k.exists(PASSTHROUGH_CREATE)).toBe(true);
  });

  it('a card older than CEX4 (hwtype below 10) never goes to vfio_ap, so 5.4 cannot assign it', () => {
    const k = securedDocHost('5.4', {
      cards: [
        { adapter: 5, hwtype: 11 },
        { adapter: 6, hwtype: 7 },
      ],
    });
    expect(k.read(`${AP_DEVICES}/card06/hwtype`)).toBe('7\n');
    expect(driverOf(k, '05.0004')).toBe('vfio_ap');
    expect(driverOf(k, '06.0004')).toBeUndefined();
    expect(k.list(`${AP_DEVICES}/06.0004`)).toEqual(['subsystem', 'uevent']); // no driver
    k.write(PASSTHROUGH_CREATE, GUEST3);
    expect(errnoOf(k, mdevPath(GUEST3, 'assign_adapter'), '6')).toBe('EADDRNOTAVAIL');
  });
});

describe('mediated devices for the three guests (steps 3 and 4)', () => {
  it.each(KERNELS)('%s: the doc’s assign sequences give each guest its matrix', (kernel) => {
    const k = securedDocHost(kernel);
    configure(k, GUEST1, [
      ['assign_adapter', '5'],
      ['assign_adapter', '6'],
      ['assign_domain', '4'],
      ['assign_domain', '0xab'],
      ['assign_control_domain', '0xab'],
    ]);
    configure(k, GUEST2, [
      ['assign_adapter', '5'],
      ['assign_domain', '0x47'],
      ['assign_domain', '0xff'],
    ]);
    configure(k, GUEST3, [
      ['assign_adapter', '6'],
      ['assign_domain', '0x47'],
      ['assign_domain', '0xff'],
    ]);
    expect(k.list(MATRIX)).toEqual([GUEST2, GUEST1, GUEST3, ...MATRIX_FILES].sort());
    expect(k.list(mdevPath(GUEST1))).toContain('assign_control_domain');
    expect(k.read(mdevPath(GUEST1, 'matrix'))).toBe('05.0004\n05.00ab\n06.0004\n06.00ab\n');
    expect(k.read(mdevPath(GUEST1, 'control_domains'))).toBe('00ab\n');
    expect(k.read(mdevPath(GUEST2, 'matrix'))).toBe('05.0047\n05.00ff\n');
    expect(k.read(mdevPath(GUEST3, 'matrix'))).toBe('06.0047\n06.00ff\n');
    expect(k.read(mdevPath(GUEST3, 'control_domains'))).toBe('');
  });

  it('matrix shows AA. lines before any domain and .DDDD lines before any adapter; unassign undoes a mistake', () => {
    const k = securedDocHost('6.0');
    configure(k, GUEST1, [
      ['assign_adapter', '6'],
      ['assign_adapter', '5'],
    ]);
    expect(k.read(mdevPath(GUEST1, 'matrix'))).toBe('05.\n06.\n');
    configure(k, GUEST2, [['assign_domain', '0xff']]);
    expect(k.read(mdevPath(GUEST2, 'matrix'))).toBe('.00ff\n');
    k.write(mdevPath(GUEST1, 'assign_domain'), '0x47');
    k.write(mdevPath(GUEST1, 'unassign_adapter'), '6');
    expect(k.read(mdevPath(GUEST1, 'matrix'))).toBe('05.0047\n');
  });

  it('create takes a UUID once: not a UUID is EINVAL, the same one again EEXIST', () => {
    const k = securedDocHost('6.0');
    expect(errnoOf(k, PASSTHROUGH_CREATE, 'guest1')).toBe('EINVAL');
    expect(errnoOf(k, PASSTHROUGH_CREATE, `${GUEST1}-x`)).toBe('EINVAL');
    expect(errnoOf(k, PASSTHROUGH_CREATE, `${GUEST1.toUpperCase()}\n`)).toBe('ok');
    expect(k.exists(mdevPath(GUEST1))).toBe(true); // named in lower case, as the kernel prints UUIDs
    expect(errnoOf(k, PASSTHROUGH_CREATE, GUEST1)).toBe('EEXIST');
  });

  it('no create before vfio_ap is loaded: there is no matrix device yet', () => {
    const k = docHost('6.0');
    expect(errnoOf(k, PASSTHROUGH_CREATE, GUEST1)).toBe('ENOENT');
  });

  it('IDs are read like kstrtoul: decimal, 0x hex or leading-0 octal; anything else is EINVAL', () => {
    const k = securedDocHost('6.0');
    k.write(PASSTHROUGH_CREATE, GUEST1);
    const cd = mdevPath(GUEST1, 'assign_control_domain');
    for (const id of ['171', '0xab', '0XAB\n', '010']) k.write(cd, id);
    expect(k.read(mdevPath(GUEST1, 'control_domains'))).toBe('0008\n00ab\n');
    for (const bad of ['five', '5 6', '0x', '-1', '08', '4,5']) expect(errnoOf(k, cd, bad)).toBe('EINVAL');
    expect(errnoOf(k, mdevPath(GUEST1, 'assign_adapter'), 'five')).toBe('EINVAL');
  });

  it.each(KERNELS)('%s: an ID above ap_max_adapter_id / ap_max_domain_id is ENODEV, control domains too', (kernel) => {
    const k = securedDocHost(kernel, { maxAdapterId: 63, maxDomainId: 0xff });
    const small = securedDocHost(kernel, { maxDomainId: 0xab });
    k.write(PASSTHROUGH_CREATE, GUEST1);
    small.write(PASSTHROUGH_CREATE, GUEST1);
    expect(errnoOf(k, mdevPath(GUEST1, 'assign_adapter'), '64')).toBe('ENODEV');
    expect(errnoOf(k, mdevPath(GUEST1, 'unassign_adapter'), '0x40')).toBe('ENODEV');
    expect(errnoOf(small, mdevPath(GUEST1, 'assign_domain'), '0xac')).toBe('ENODEV');
    expect(errnoOf(small, mdevPath(GUEST1, 'assign_control_domain'), '0xac')).toBe('ENODEV');
    expect(errnoOf(small, mdevPath(GUEST1, 'assign_control_domain'), '0xab')).toBe('ok');
    expect(errnoOf(k, mdevPath(GUEST1, 'assign_domain'), '18446744073709551615')).toBe('ENODEV');
    expect(errnoOf(k, mdevPath(GUEST1, 'assign_domain'), '18446744073709551616')).toBe('ERANGE'); // kstrtoul overflows
  });

  // Cards 5, 6, 7 and domains 4, 5, 0x47, 0xab, 0xff; the doc's masks: the host keeps 07.0005.
  const wider = (kernel: KernelFlavour): SimKernel =>
    securedDocHost(kernel, { cards: [5, 6, 7].map((adapter) => ({ adapter, hwtype: 11 })), domains: [4, 5, 0x47, 0xab, 0xff] });

  it.each(KERNELS)('%s: a domain whose APQN the host owns is EADDRNOTAVAIL', (kernel) => {
    const k = wider(kernel);
    k.write(PASSTHROUGH_CREATE, GUEST1);
    k.write(mdevPath(GUEST1, 'assign_adapter'), '7'); // 5.4: 07.0004 is bound to vfio_ap, that is enough
    expect(errnoOf(k, mdevPath(GUEST1, 'assign_domain'), '5')).toBe('EADDRNOTAVAIL');
    expect(k.read(mdevPath(GUEST1, 'matrix'))).toBe('07.\n');
    expect(errnoOf(k, mdevPath(GUEST1, 'assign_domain'), '4')).toBe('ok');
  });

  it('5.4: an adapter with no queue bound to vfio_ap is EADDRNOTAVAIL; current kernels take it (over-provisioning)', () => {
    const old = wider('5.4');
    const now = wider('6.0');
    for (const k of [old, now]) k.write(PASSTHROUGH_CREATE, GUEST1);
    expect(errnoOf(old, mdevPath(GUEST1, 'assign_adapter'), '9')).toBe('EADDRNOTAVAIL');
    expect(errnoOf(now, mdevPath(GUEST1, 'assign_adapter'), '9')).toBe('ok');
    // With a domain assigned first, 5.4 wants every derived APQN bound to vfio_ap.
    old.write(mdevPath(GUEST1, 'assign_domain'), '4');
    expect(errnoOf(old, mdevPath(GUEST1, 'assign_adapter'), '9')).toBe('EADDRNOTAVAIL');
    expect(errnoOf(old, mdevPath(GUEST1, 'assign_adapter'), '7')).toBe('ok');
    expect(errnoOf(now, mdevPath(GUEST1, 'assign_domain'), '4')).toBe('ok');
    expect(now.read(mdevPath(GUEST1, 'matrix'))).toBe('09.0004\n');
  });

  // The doc's "AP and SIE" examples: adapters 1-4 and domains 5-7 free for vfio_ap.
  function sieHost(kernel: KernelFlavour): SimKernel {
    const k = new SimKernel({ kernel, cards: [1, 2, 3, 4].map((adapter) => ({ adapter, hwtype: 12 })), domains: [5, 6, 7], vfioAp: true });
    k.write(APMASK, '-1,-2,-3,-4');
    k.write(AQMASK, '-5,-6,-7');
    configure(k, GUEST1, [
      ['assign_adapter', '1'],
      ['assign_adapter', '2'],
      ['assign_domain', '5'],
      ['assign_domain', '6'],
    ]);
    k.write(PASSTHROUGH_CREATE, GUEST2);
    return k;
  }
  const assignAll = (k: SimKernel, adapters: number[], domains: number[]): string[] => [
    ...adapters.map((a) => errnoOf(k, mdevPath(GUEST2, 'assign_adapter'), `${a}`)),
    ...domains.map((d) => errnoOf(k, mdevPath(GUEST2, 'assign_domain'), `${d}`)),
  ];

  it.each(KERNELS)('%s: examples 1 and 2 are valid configurations', (kernel) => {
    const example1 = sieHost(kernel);
    expect(assignAll(example1, [1, 2], [7])).toEqual(['ok', 'ok', 'ok']);
    expect(example1.read(mdevPath(GUEST2, 'matrix'))).toBe('01.0007\n02.0007\n');
    const example2 = sieHost(kernel);
    expect(assignAll(example2, [3, 4], [5, 6])).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(example2.read(mdevPath(GUEST2, 'matrix'))).toBe('03.0005\n03.0006\n04.0005\n04.0006\n');
  });

  // vfio_ap_mdev_verify_no_sharing answers EADDRINUSE in every version (the model's old
  // EBUSY for 6.0+ was wrong: EBUSY is the AP bus's answer to a mask change, not vfio_ap's).
  it.each(KERNELS)('%s: example 3 shares APQN (1,6) with guest1, refused with EADDRINUSE (vfio_ap_mdev_verify_no_sharing)', (kernel) => {
    const k = sieHost(kernel);
    expect(assignAll(k, [1], [6, 7])).toEqual(['ok', 'EADDRINUSE', 'ok']);
    expect(k.read(mdevPath(GUEST2, 'matrix'))).toBe('01.0007\n');
    expect(k.read(mdevPath(GUEST1, 'matrix'))).toBe('01.0005\n01.0006\n02.0005\n02.0006\n');
  });
});

describe('a running guest (step 5 and removing the mdev)', () => {
  // The old model answered EBUSY; the kernel never does: vfio_unregister_group_dev waits.
  it.each(KERNELS)('%s: remove of a guest-held mdev would hang (WouldBlockError, listed in hungRemoves), and works once the guest is shut down', (kernel) => {
    const k = securedDocHost(kernel);
    configure(k, GUEST1, [['assign_adapter', '5']]);
    k.setGuestRunning(GUEST1, true);
    expect(() => k.write(mdevPath(GUEST1, 'remove'), '1\n')).toThrow(WouldBlockError);
    expect(errnoOf(k, mdevPath(GUEST1, 'remove'), '1')).toBe('EWOULDHANG');
    expect(k.hungRemoves).toEqual([
      { path: mdevPath(GUEST1, 'remove'), uuid: GUEST1, data: '1\n' },
      { path: mdevPath(GUEST1, 'remove'), uuid: GUEST1, data: '1' },
    ]);
    expect(k.state().hungRemoves).toHaveLength(2);
    expect(k.writes.filter((w) => w.path.endsWith('/remove'))).toEqual([]);
    expect(k.exists(mdevPath(GUEST1))).toBe(true);
    expect(errnoOf(k, mdevPath(GUEST1, 'remove'), '0')).toBe('ok'); // 0 removes nothing, and does not wait
    k.setGuestRunning(GUEST1, false);
    expect(errnoOf(k, mdevPath(GUEST1, 'remove'), '0')).toBe('ok'); // 0 removes nothing
    expect(k.exists(mdevPath(GUEST1))).toBe(true);
    expect(errnoOf(k, mdevPath(GUEST1, 'remove'), 'yes')).toBe('EINVAL');
    k.write(mdevPath(GUEST1, 'remove'), '1\n');
    expect(k.exists(mdevPath(GUEST1))).toBe(false);
    expect(k.list(MATRIX)).toEqual(MATRIX_FILES);
  });

  it('5.4 cannot change a running guest’s matrix (EBUSY); current kernels hot-plug', () => {
    const old = securedDocHost('5.4');
    const now = securedDocHost('6.0');
    for (const k of [old, now]) {
      configure(k, GUEST1, [['assign_adapter', '5']]);
      k.setGuestRunning(GUEST1, true);
    }
    expect(errnoOf(old, mdevPath(GUEST1, 'assign_domain'), '4')).toBe('EBUSY');
    expect(errnoOf(old, mdevPath(GUEST1, 'unassign_adapter'), '5')).toBe('EBUSY');
    expect(errnoOf(now, mdevPath(GUEST1, 'assign_domain'), '4')).toBe('ok');
  });

  it('6.0 and 6.19 refuse (EBUSY) a mask change that gives the host an mdev’s APQN; 5.4 gives it away silently', () => {
    const run = (kernel: KernelFlavour): { k: SimKernel; plus5: string } => {
      const k = securedDocHost(kernel);
      configure(k, GUEST1, [
        ['assign_adapter', '5'],
        ['assign_adapter', '6'],
        ['assign_domain', '4'],
        ['assign_domain', '0xab'],
      ]);
      k.setGuestRunning(GUEST1, true);
      // Adapter 5 back to the host takes no APQN yet: the host has none of guest1's domains.
      // 6.19 checks adapter 5 against every domain, so guest1's 05.0004 makes it EBUSY.
      return { k, plus5: errnoOf(k, APMASK, '+5') };
    };
    for (const kernel of ['6.0', '6.19'] as const) {
      const { k: now, plus5 } = run(kernel);
      expect(plus5).toBe(kernel === '6.0' ? 'ok' : 'EBUSY');
      if (kernel === '6.19') now.write(APMASK, '+7'); // an adapter no mdev has: allowed
      expect(errnoOf(now, AQMASK, '+4')).toBe('EBUSY');
      expect(now.read(AQMASK)).toBe(`${DOC_AQMASK}\n`);
      expect(driverOf(now, '05.0004')).toBe('vfio_ap');
      expect(errnoOf(now, AQMASK, `0x${'f'.repeat(64)}`)).toBe('EBUSY');
    }

    const { k: old, plus5 } = run('5.4');
    expect(plus5).toBe('ok');
    expect(errnoOf(old, AQMASK, '+4')).toBe('ok');
    // The doc's "Limitations": the host now has the queue of a running guest.
    expect(driverOf(old, '05.0004')).toBe('cex4queue');
    expect(old.read(mdevPath(GUEST1, 'matrix'))).toContain('05.0004');
  });
});

describe('sysfs semantics', () => {
  it('write-only and read-only attributes, missing paths, listings', () => {
    const k = securedDocHost('6.0');
    k.write(PASSTHROUGH_CREATE, GUEST1);
    const codeOf = (fn: () => unknown): string | undefined => {
      try {
        fn();
        return undefined;
      } catch (err) {
        return isSysfsError(err) ? err.code : 'not a SysfsError';
      }
    };
    expect(codeOf(() => k.read(mdevPath(GUEST1, 'assign_adapter')))).toBe('EACCES');
    expect(codeOf(() => k.read(PASSTHROUGH_CREATE))).toBe('EACCES');
    expect(errnoOf(k, mdevPath(GUEST1, 'matrix'), '05.0004')).toBe('EACCES');
    expect(errnoOf(k, `${AP_DEVICES}/card05/hwtype`, '12')).toBe('EACCES');
    expect(errnoOf(k, `${AP_BUS}/ap_max_domain_id`, '12')).toBe('EACCES');
    expect(codeOf(() => k.read(`${AP_DEVICES}/card07/hwtype`))).toBe('ENOENT');
    expect(codeOf(() => k.read(mdevPath(GUEST2, 'matrix')))).toBe('ENOENT');
    expect(k.read(`${AP_BUS}/ap_max_adapter_id`)).toBe('255\n');
    expect(k.list(`${AP_DEVICES}/card07`)).toEqual([]);
    expect(k.list(AP_BUS)).toEqual(['ap_max_adapter_id', 'ap_max_domain_id', 'apmask', 'aqmask', 'bindings', 'devices', 'drivers']);
    expect(k.list(AP_DEVICES)).toEqual([...DOC_QUEUES, 'card05', 'card06']);
    expect(k.exists(`/${AP_DEVICES}/05.0004/driver`)).toBe(true);
    expect(k.exists(`${AP_DEVICES}/05.0004/driver`)).toBe(true);
  });

  it('keeps a log of the writes it accepted, not of those it refused', () => {
    const k = docHost('6.0');
    k.write(APMASK, '-5');
    expect(errnoOf(k, APMASK, 'garbage')).toBe('EINVAL');
    expect(k.writes).toEqual([{ path: APMASK, data: '-5' }]);
  });
});

describe('fault injection', () => {
  it('the next matching write fails with the given errno and changes nothing; the one after works', () => {
    const k = securedDocHost('6.0');
    k.failWrite(PASSTHROUGH_CREATE, 'EIO');
    expect(errnoOf(k, PASSTHROUGH_CREATE, GUEST1)).toBe('EIO');
    expect(k.exists(mdevPath(GUEST1))).toBe(false);
    expect(errnoOf(k, PASSTHROUGH_CREATE, GUEST1)).toBe('ok');
    expect(k.exists(mdevPath(GUEST1))).toBe(true);
  });

  it('a pattern and a count: two assigns fail, the third goes through, other paths are untouched', () => {
    const k = securedDocHost('6.0');
    k.write(PASSTHROUGH_CREATE, GUEST1);
    k.failWrite(/\/assign_domain$/, 'ENOMEM', 2);
    k.write(mdevPath(GUEST1, 'assign_adapter'), '5');
    const tries = [0, 1, 2].map(() => errnoOf(k, mdevPath(GUEST1, 'assign_domain'), '4'));
    expect(tries).toEqual(['ENOMEM', 'ENOMEM', 'ok']);
    expect(k.read(mdevPath(GUEST1, 'matrix'))).toBe('05.0004\n');
    expect(k.writes.filter((w) => w.path.endsWith('assign_domain'))).toHaveLength(1);
  });

  it('a failed mask write leaves the masks and bindings alone', () => {
    const k = docHost('5.4', { vfioAp: true });
    k.failWrite(APMASK, 'EAGAIN');
    expect(errnoOf(k, APMASK, '-5,-6')).toBe('EAGAIN');
    expect(driverOf(k, '05.0004')).toBe('cex4queue');
    expect(k.read(APMASK)).toBe(`0x${'f'.repeat(64)}\n`);
  });
});

describe('the tree a real sysfs has, for a filesystem face (mdevctl, libvirt, a booted container)', () => {
  const TYPE = `${MATRIX}/mdev_supported_types/vfio_ap-passthrough`;
  const MTTY_TYPES = 'devices/virtual/mtty/mtty/mdev_supported_types';
  const SERIAL = '7e9d0989-8c3e-4c4e-9a5b-0123456789ab';

  it('bus/ap/devices links to the devices under devices/ap, a queue’s driver links to the driver’s directory, and reads as its name', () => {
    const k = securedDocHost('6.0');
    expect(k.stat(AP_DEVICES)).toEqual({ kind: 'dir' });
    expect(k.stat(`${AP_DEVICES}/card05`)).toEqual({ kind: 'link', target: '../../../devices/ap/card05' });
    expect(k.stat(`${AP_DEVICES}/05.0004`)).toEqual({ kind: 'link', target: '../../../devices/ap/card05/05.0004' });
    expect(k.list('devices/ap')).toEqual(['card05', 'card06', 'subsystem', 'uevent']);
    expect(k.list('devices/ap/card05')).toEqual(['05.0004', '05.0047', '05.00ab', '05.00ff', 'hwtype', 'subsystem', 'uevent']);
    expect(k.stat(`${AP_DEVICES}/05.0004/driver`)).toEqual({ kind: 'link', target: '../../../../bus/ap/drivers/vfio_ap' });
    expect(k.stat('devices/ap/card05/05.0004/driver')).toEqual(k.stat(`${AP_DEVICES}/05.0004/driver`));
    expect(k.read(`${AP_DEVICES}/05.0004/driver`)).toBe('vfio_ap');
    // Both drivers are directories a link resolves to, each listing what it binds.
    expect(k.list(`${AP_BUS}/drivers`)).toEqual(['cex4queue', 'vfio_ap']);
    expect(k.list(`${AP_DEVICES}/05.0004/driver`)).toEqual(DOC_QUEUES);
    expect(k.list(`${AP_BUS}/drivers/cex4queue`)).toEqual([]);
    expect(k.stat(`${AP_BUS}/drivers/vfio_ap/06.00ff`)).toEqual({ kind: 'link', target: '../../../../devices/ap/card06/06.00ff' });
    // `..` after a link is the parent of where the link led, as in the VFS.
    expect(k.list(`${AP_DEVICES}/05.0004/driver/06.00ff/..`)).toEqual(['06.0004', '06.0047', '06.00ab', '06.00ff', 'hwtype', 'subsystem', 'uevent']);
    expect(k.stat(`${AP_DEVICES}/05.0004/hwtype`)).toBeUndefined();
  });

  it('every device has the driver core’s uevent and subsystem link, so udev (sd-device) takes it for a device', () => {
    const k = securedDocHost('6.0');
    expect(k.stat('devices/ap/subsystem')).toEqual({ kind: 'link', target: '../../bus/ap' });
    expect(k.stat('devices/ap/card05/05.0004/subsystem')).toEqual({ kind: 'link', target: '../../../../bus/ap' });
    expect(k.read('devices/ap/card05/uevent')).toBe('DEVTYPE=ap_card\nDEV_TYPE=000B\nMODALIAS=ap:t0B\n');
    expect(k.read(`${AP_DEVICES}/05.0004/uevent`)).toBe('DEVTYPE=ap_queue\nDRIVER=vfio_ap\n');
    // The matrix device sits on vfio_ap's own bus `matrix`, bound to the driver vfio_ap.
    expect(k.stat(`${MATRIX}/subsystem`)).toEqual({ kind: 'link', target: '../../../bus/matrix' });
    expect(k.stat(`${MATRIX}/driver`)).toEqual({ kind: 'link', target: '../../../bus/matrix/drivers/vfio_ap' });
    expect(k.list(`${MATRIX}/driver`)).toEqual(['matrix']);
    expect(k.read(`${MATRIX}/uevent`)).toBe('DRIVER=vfio_ap\n');
    expect(k.list('bus/matrix/devices/matrix/mdev_supported_types')).toEqual(['vfio_ap-passthrough']);
    k.write(PASSTHROUGH_CREATE, GUEST1);
    expect(k.stat(mdevPath(GUEST1, 'subsystem'))).toEqual({ kind: 'link', target: '../../../../bus/mdev' });
    expect(k.list(mdevPath(GUEST1, 'subsystem/devices'))).toEqual([GUEST1]);
  });

  it('bindings counts bound queues as ap_bus.c prints them; devices/ap has an empty uevent that takes a synthetic event', () => {
    const k = docHost('6.0');
    expect(k.read(`${AP_BUS}/bindings`)).toBe('8/8 (complete)\n');
    k.write(APMASK, '-5'); // freed, and vfio_ap is not there to take them
    expect(k.read(`${AP_BUS}/bindings`)).toBe('4/8\n');
    k.loadVfioAp();
    expect(k.read(`${AP_BUS}/bindings`)).toBe('8/8 (complete)\n');
    expect(k.stat(`${AP_BUS}/bindings`)).toEqual({ kind: 'attr', readable: true, writable: false });
    expect(k.read('devices/ap/uevent')).toBe('');
    expect(errnoOf(k, 'devices/ap/uevent', 'change\n')).toBe('ok');
    expect(errnoOf(k, 'devices/ap/uevent', 'reboot\n')).toBe('EINVAL');
    expect(docHost('5.4').exists(`${AP_BUS}/bindings`)).toBe(false); // came later, with BINDINGS=complete
  });

  it('loading vfio_ap registers the matrix with the mdev core: class/mdev_bus, the type’s files, module/vfio_ap', () => {
    const k = docHost('6.0');
    expect(k.list('class')).toEqual([]);
    expect(k.list('module')).toEqual([]);
    expect(k.list('bus')).toEqual(['ap']);
    k.loadVfioAp();
    expect(k.stat('class/mdev_bus/matrix')).toEqual({ kind: 'link', target: '../../devices/vfio_ap/matrix' });
    expect(k.list('class/mdev_bus/matrix')).toEqual(MATRIX_FILES);
    expect(k.list(TYPE)).toEqual(['available_instances', 'create', 'device_api', 'devices', 'name']);
    expect([k.read(`${TYPE}/name`), k.read(`${TYPE}/device_api`), k.read(`${TYPE}/available_instances`)]).toEqual([
      'VFIO AP Passthrough Device\n',
      'vfio-ap\n',
      '65536\n',
    ]);
    expect(k.stat(`${TYPE}/create`)).toEqual({ kind: 'attr', readable: false, writable: true });
    expect(k.read('module/vfio_ap/initstate')).toBe('live\n');
  });

  it('an mdev as mdevctl finds it: bus/mdev/devices links to it, mdev_type links to its type, the type lists it; remove through the link', () => {
    const k = securedDocHost('6.0');
    k.write(PASSTHROUGH_CREATE, GUEST1);
    expect(k.stat(`bus/mdev/devices/${GUEST1}`)).toEqual({ kind: 'link', target: `../../../devices/vfio_ap/matrix/${GUEST1}` });
    expect(k.stat(mdevPath(GUEST1, 'mdev_type'))).toEqual({ kind: 'link', target: '../mdev_supported_types/vfio_ap-passthrough' });
    expect(k.read(mdevPath(GUEST1, 'mdev_type'))).toBe('vfio_ap-passthrough');
    expect(k.list(mdevPath(GUEST1))).toEqual([
      'ap_config',
      'assign_adapter',
      'assign_control_domain',
      'assign_domain',
      'control_domains',
      'guest_matrix',
      'iommu_group',
      'matrix',
      'mdev_type',
      'remove',
      'subsystem',
      'uevent',
      'unassign_adapter',
      'unassign_control_domain',
      'unassign_domain',
    ]);
    expect(k.stat(`${TYPE}/devices/${GUEST1}`)).toEqual({ kind: 'link', target: `../../../${GUEST1}` });
    expect(k.read(`${TYPE}/available_instances`)).toBe('65535\n');
    k.write(`bus/mdev/devices/${GUEST1}/assign_adapter`, '5');
    k.write(`class/mdev_bus/matrix/${GUEST1}/remove`, '1');
    expect(k.exists(mdevPath(GUEST1))).toBe(false);
    expect(k.list('bus/mdev/devices')).toEqual([]);
    // Logged by the paths the links lead to: the same whichever way a tool went.
    expect(k.writes.slice(-2)).toEqual([
      { path: mdevPath(GUEST1, 'assign_adapter'), data: '5' },
      { path: mdevPath(GUEST1, 'remove'), data: '1' },
    ]);
  });

  it('mtty, a second parent of another type: create and remove only; a UUID is unique over every parent; ports run out', () => {
    const k = securedDocHost('6.0', { mtty: true });
    expect(k.list('class/mdev_bus')).toEqual(['matrix', 'mtty']);
    expect(k.stat('class/mdev_bus/mtty')).toEqual({ kind: 'link', target: '../../devices/virtual/mtty/mtty' });
    expect(k.list(MTTY_TYPES)).toEqual(['mtty-1', 'mtty-2']);
    expect([k.read(`${MTTY_TYPES}/mtty-2/name`), k.read(`${MTTY_TYPES}/mtty-2/device_api`), k.read(`${MTTY_TYPES}/mtty-2/available_instances`)]).toEqual([
      'Dual port serial\n',
      'vfio-pci\n',
      '12\n',
    ]);
    k.write(PASSTHROUGH_CREATE, GUEST1);
    expect(errnoOf(k, `${MTTY_TYPES}/mtty-1/create`, GUEST1)).toBe('EEXIST');
    expect(errnoOf(k, `${MTTY_TYPES}/mtty-1/create`, 'serial-1')).toBe('EINVAL');
    expect(errnoOf(k, `${MTTY_TYPES}/mtty-2/create`, SERIAL)).toBe('ok');
    expect(errnoOf(k, PASSTHROUGH_CREATE, SERIAL)).toBe('EEXIST');
    expect(k.list(`devices/virtual/mtty/mtty/${SERIAL}`)).toEqual(['iommu_group', 'mdev_type', 'remove', 'subsystem', 'uevent']);
    expect(k.read(`bus/mdev/devices/${SERIAL}/mdev_type`)).toBe('mtty-2');
    expect(k.read(`${MTTY_TYPES}/mtty-1/available_instances`)).toBe('22\n');
    // 24 ports: eleven more dual-port devices fit, a twelfth does not.
    const uuids = Array.from({ length: 12 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
    expect(uuids.map((u) => errnoOf(k, `${MTTY_TYPES}/mtty-2/create`, u))).toEqual([...Array(11).fill('ok'), 'ENOSPC']);
    k.write(`bus/mdev/devices/${SERIAL}/remove`, '1');
    expect(k.read(`${MTTY_TYPES}/mtty-1/available_instances`)).toBe('2\n');
    expect(k.state().mdevs.filter((m) => m.parent === 'mtty')).toHaveLength(11);
  });

  it('a module load can be made to fail, as a fake modprobe must; the next one works', () => {
    const k = docHost('6.0');
    k.failLoad('vfio_ap');
    expect(() => k.loadVfioAp()).toThrow(expect.objectContaining({ code: 'ENODEV' }));
    expect(k.vfioApLoaded).toBe(false);
    expect(k.exists(MATRIX)).toBe(false);
    k.failLoad('vfio_ap', 'ENOENT', 2);
    expect(() => k.loadModule('vfio_ap')).toThrow(KernelEventError);
    expect(() => k.loadModule('vfio_ap')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    k.loadModule('vfio_ap');
    expect(k.vfioApLoaded).toBe(true);
  });

  it('a card added while guests run brings its queues, bound by the masks; a card that is there already is EEXIST', () => {
    const k = securedDocHost('6.0');
    configure(k, GUEST1, [['assign_adapter', '7'], ['assign_domain', '4']]); // over-provisioned: no card 07 yet
    k.addCard(7, 12);
    expect(k.list('devices/ap/card07')).toEqual(['07.0004', '07.0047', '07.00ab', '07.00ff', 'hwtype', 'subsystem', 'uevent']);
    expect(driverOf(k, '07.0004')).toBe('vfio_ap'); // adapter 7 is the host's, domain 4 is not
    expect(() => k.addCard(7, 12)).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    expect(k.state()).toMatchObject({
      modules: ['vfio_ap'],
      apmask: DOC_APMASK,
      cards: [
        { adapter: 5, hwtype: 11 },
        { adapter: 6, hwtype: 11 },
        { adapter: 7, hwtype: 12 },
      ],
      mdevs: [{ uuid: GUEST1, parent: 'matrix', type: 'vfio_ap-passthrough', adapters: [7], domains: [4], controlDomains: [], running: false }],
    });
    expect(k.state().queues).toContainEqual({ apqn: '07.0004', driver: 'vfio_ap' });
  });
});

describe('a fake root on disk', () => {
  /** Every path the runtime reads, with what this Sysfs answers. */
  function view(s: Sysfs): Record<string, string> {
    const out: Record<string, string> = {};
    // What the tree shows twice is walked once: a driver lists its queues, a type its mdevs,
    // a card its queues (bus/ap/devices has them all).
    const links = new Set(['driver', 'drivers', 'subsystem', 'mdev_type', 'mdev_supported_types', 'iommu_group']);
    const walked = (dir: string, name: string): boolean => !links.has(name) && !(/card[0-9a-f]{2}$/.test(dir) && name.includes('.'));
    const walk = (dir: string): void => {
      for (const name of s.list(dir)) {
        const path = dir ? `${dir}/${name}` : name;
        const children = walked(dir, name) ? s.list(path) : [];
        if (children.length > 0) walk(path);
        else if (/(mask|_id|hwtype|^matrix|control_domains)$/.test(name) || (name === 'driver' && dir.startsWith(AP_DEVICES))) out[path] = s.read(path).trim();
      }
    };
    for (const top of ['bus/ap', 'devices/vfio_ap']) walk(top);
    return out;
  }

  function guestsRunning(kernel: KernelFlavour): SimKernel {
    const k = securedDocHost(kernel, { cards: [{ adapter: 5, hwtype: 11 }, { adapter: 6, hwtype: 11 }, { adapter: 7, hwtype: 6 }] });
    configure(k, GUEST1, [
      ['assign_adapter', '5'],
      ['assign_domain', '4'],
      ['assign_control_domain', '4'],
    ]);
    configure(k, GUEST2, [['assign_adapter', '6']]);
    return k;
  }

  it('saveTo lays out what FileSysfs reads back as the same host, and fromDisk restores it', () => {
    const root = tempRoot();
    const k = guestsRunning('6.0');
    k.saveTo(root);
    const disk = new FileSysfs(root);
    expect(disk.read(`${AP_DEVICES}/05.0004/driver`)).toBe('vfio_ap\n');
    expect(disk.exists(`${AP_DEVICES}/07.0004/driver`)).toBe(false); // a CEX2 card's freed queue stays unbound
    expect(disk.exists(PASSTHROUGH_CREATE)).toBe(true);
    expect(listActiveMdevs(disk).map((m) => [m.uuid, m.adapters.ids(), m.domains.ids(), m.controlDomains.ids()])).toEqual([
      [GUEST2, [6], [], []],
      [GUEST1, [5], [4], [4]],
    ]);
    expect(view(disk)).toEqual(view(k));

    const back = SimKernel.fromDisk(root, '6.0');
    expect(view(back)).toEqual(view(k));
    expect(back.list(AP_DEVICES)).toEqual(k.list(AP_DEVICES));
    // The restored kernel keeps enforcing: guest1's 05.0004 is taken (EADDRINUSE, not the old model's EBUSY).
    expect(errnoOf(back, mdevPath(GUEST2, 'assign_domain'), '4')).toBe('ok');
    expect(errnoOf(back, mdevPath(GUEST2, 'assign_adapter'), '5')).toBe('EADDRINUSE');
  });

  it('saveTo removes what is gone: a removed mdev’s dir, the driver of a queue no one binds, vfio_ap’s tree', () => {
    const root = tempRoot();
    const k = guestsRunning('5.4');
    k.write(AQMASK, '+4'); // 5.4 lets the host have domain 4 back: card 07's queue goes to cex4queue
    k.saveTo(root);
    expect(new FileSysfs(root).read(`${AP_DEVICES}/07.0004/driver`)).toBe('cex4queue\n');
    k.write(AQMASK, '-4');
    k.write(mdevPath(GUEST2, 'remove'), '1');
    k.saveTo(root);
    const disk = new FileSysfs(root);
    expect(disk.exists(`${AP_DEVICES}/07.0004/driver`)).toBe(false);
    expect(disk.exists(mdevPath(GUEST2))).toBe(false);
    expect(disk.exists(mdevPath(GUEST1, 'matrix'))).toBe(true);

    docHost('5.4').saveTo(root); // a host where vfio_ap is not loaded
    expect(disk.exists(MATRIX)).toBe(false);
    expect(disk.list(AP_DEVICES)).toEqual([...DOC_QUEUES, 'card05', 'card06']);
  });

  it('reads the shipped example host: default masks, eight queues with cex4queue, no vfio_ap', () => {
    const example = fileURLToPath(new URL('../../examples/three-guests', import.meta.url));
    const k = SimKernel.fromDisk(example, '5.4');
    expect(k.read(APMASK)).toBe(`0x${'f'.repeat(64)}\n`);
    expect(driversBy(k)).toEqual(Object.fromEntries(DOC_QUEUES.map((q) => [q, 'cex4queue'])));
    expect(k.vfioApLoaded).toBe(false);
  });

  it('the fake host builder lays out sysfs through the simulated kernel, adopting states no kernel would build', () => {
    const root = tempRoot();
    const ON_HOST = '11111111-2222-4333-8444-555555555555';
    buildFakeHost(root, {
      cards: [
        { adapter: 5, hwtype: 11 },
        { adapter: 6, hwtype: 11 },
      ],
      domains: [0x04, 0x47, 0xab, 0xff],
      masks: { apmask: IdSet.of(range(0, 255).filter((a) => a !== 5 && a !== 6)), aqmask: IdSet.full() },
      vfioAp: true,
      activeMdevs: [
        { uuid: GUEST1, adapters: [5, 6], domains: [4, 0xab], controlDomains: [0xab] },
        // No kernel builds this: the host owns 07.0004 (adapter 7 is in apmask), and 05.0004 is guest1's.
        { uuid: ON_HOST, adapters: [5, 7], domains: [4, 0x47] },
      ],
    });
    const disk = new FileSysfs(root);
    expect(disk.read(mdevPath(GUEST1, 'matrix'))).toBe('05.0004\n05.00ab\n06.0004\n06.00ab\n');
    expect(disk.read(mdevPath(GUEST1, 'control_domains'))).toBe('00ab\n');
    expect(disk.read(mdevPath(ON_HOST, 'matrix'))).toBe('05.0004\n05.0047\n07.0004\n07.0047\n');
    expect(disk.read(`${AP_DEVICES}/05.0047/driver`)).toBe('vfio_ap\n');
    expect(disk.read(`${AP_BUS}/bindings`)).toBe('complete (8/8)\n');
    expect(view(disk)).toEqual(view(SimKernel.fromDisk(root, '6.0')));
  });
});

describe('kernel functions, per flavour', () => {
  const FULL = `0x${'f'.repeat(64)}`;
  const ZERO = `0x${'0'.repeat(64)}`;
  const hex = (ids: number[]): string => IdSet.of(ids).toKernelHex();
  const bindingsEvents = (k: SimKernel): string[] =>
    k
      .takeEvents()
      .filter((e) => e.properties['BINDINGS'] === 'complete')
      .map((e) => `${e.action} ${e.devpath} ${e.properties['COMPLETECOUNT']}`);

  describe('ap_bus.c apmask_store/aqmask_store: ap_parse_bitmap_str (hex2bitmap, modify_bitmap)', () => {
    it.each(KERNELS)('%s: absolute hex: optional lower-case 0x or x, upper- or lower-case digits, padded right; "\\n" and "0x" clear the mask', (kernel) => {
      const k = docHost(kernel);
      for (const [text, ids] of [
        ['x41', [1, 7]],
        ['0xFF\n', range(0, 7)],
        ['80', [0]],
        ['\n', []],
        ['0x', []],
        [`${'f'.repeat(64)}\n`, range(0, 255)],
      ] as const) {
        k.write(APMASK, text);
        expect(maskIds(k, APMASK).ids(), text).toEqual(ids);
      }
      for (const bad of ['0X41', ' 41', '41 ', '41,42', '0x41\n\n', 'xx41', `0x${'0'.repeat(65)}`, '4\n1']) {
        expect(errnoOf(k, APMASK, bad), JSON.stringify(bad)).toBe('EINVAL');
      }
      expect(k.read(APMASK)).toBe(`${FULL}\n`);
    });

    it.each(KERNELS)('%s: relative terms +n, +n-m, -n, -n-m, base 0, each followed by any run of , and \\n; anything else EINVAL, all or nothing', (kernel) => {
      const k = docHost(kernel);
      k.write(AQMASK, ZERO);
      k.write(AQMASK, '+1,,+0x10-0x12\n,+010,+255,\n');
      expect(maskIds(k, AQMASK).ids()).toEqual([1, 8, 16, 17, 18, 255]);
      k.write(AQMASK, '-0-16,+3');
      expect(maskIds(k, AQMASK).ids()).toEqual([3, 17, 18, 255]);
      for (const bad of ['+1 +2', '+1;+2', '+', '-', '+0x', '+5-3', '+256', '+0-256', '+1,x', '+1-', '++1', '+1,-2,+999']) {
        expect(errnoOf(k, AQMASK, bad), bad).toBe('EINVAL');
      }
      expect(maskIds(k, AQMASK).ids()).toEqual([3, 17, 18, 255]);
    });

    it.each(KERNELS)('%s: a zero-length write never reaches the store (sysfs_kf_write)', (kernel) => {
      const k = docHost(kernel);
      expect(errnoOf(k, APMASK, '')).toBe('ok');
      expect(k.read(APMASK)).toBe(`${FULL}\n`);
    });

    it('since 5.19 a mask equal to the current one is not committed: no rebind, no event; 6.0 and 6.19 send APMASK=/AQMASK= on a change, 5.4 nothing', () => {
      for (const kernel of KERNELS) {
        const k = docHost(kernel, { vfioAp: true });
        k.takeEvents();
        k.write(APMASK, FULL);
        expect(k.takeEvents(), kernel).toEqual([]);
        k.write(AQMASK, '-4');
        const events = k.takeEvents().filter((e) => !e.properties['BINDINGS']);
        expect(events, kernel).toEqual(
          kernel === '5.4' ? [] : [{ action: 'change', devpath: '/devices/ap', properties: { AQMASK: `${IdSet.full().minus(IdSet.of([4])).toKernelHex()}\n` } }],
        );
      }
    });
  });

  describe('ap_bus.c apmask_commit/aqmask_commit -> vfio_ap in_use (vfio_ap_mdev_resource_in_use)', () => {
    /** guest1 holds 05.0004 (no guest runs); apmask lacks 5 and 6, aqmask lacks 4, 0x47, 0xab, 0xff. */
    function held(kernel: KernelFlavour): SimKernel {
      const k = securedDocHost(kernel);
      configure(k, GUEST1, [
        ['assign_adapter', '5'],
        ['assign_domain', '4'],
      ]);
      return k;
    }

    it('5.4: no check at all; 6.0: only APQNs the host gains (added adapters x current aqmask), of every mdev, running or not', () => {
      expect(errnoOf(held('5.4'), APMASK, FULL)).toBe('ok');
      const k = held('6.0');
      // Adapter 5 back: the host gains 05.xxxx only for domains in aqmask, and 4 is not: allowed.
      expect(errnoOf(k, APMASK, '+5')).toBe('ok');
      expect(errnoOf(k, AQMASK, '+4')).toBe('EBUSY'); // now 05.0004 would go to the host
      expect(errnoOf(k, AQMASK, '+0x47')).toBe('ok');
      expect(k.read(AQMASK)).toBe(`${IdSet.full().minus(IdSet.of([4, 0xab, 0xff])).toKernelHex()}\n`);
    });

    it('6.19: added adapters x all 256 domains and all adapters x added domains: EBUSY for any mdev holding one, even if the APQN stays with vfio_ap', () => {
      const k = held('6.19');
      expect(errnoOf(k, APMASK, '+5')).toBe('EBUSY'); // 05.0004 would not go to the host (aqmask lacks 4), still refused
      expect(errnoOf(k, APMASK, '+6')).toBe('ok');
      expect(errnoOf(k, APMASK, '-6')).toBe('ok');
      expect(errnoOf(k, AQMASK, '+4')).toBe('EBUSY'); // adapter 5 is not the host's: refused all the same
      expect(errnoOf(k, AQMASK, '+0x47')).toBe('ok');
      // An mdev with an adapter but no domain holds no APQN: nothing to refuse.
      configure(k, GUEST2, [['assign_adapter', '6']]);
      expect(errnoOf(k, APMASK, '+6')).toBe('ok');
    });

    it.each(KERNELS)('%s: clearing bits (host -> vfio_ap) is never checked', (kernel) => {
      const k = held(kernel);
      expect(errnoOf(k, APMASK, '-0-255')).toBe('ok');
      expect(errnoOf(k, AQMASK, ZERO)).toBe('ok');
    });
  });

  describe('ap_bus.c ap_device_probe, ap_bus_revise_bindings', () => {
    it.each(KERNELS)('%s: a mask change reprobes the queues whose ownership changed, CEX4 and newer to vfio_ap, older ones unbound', (kernel) => {
      const k = docHost(kernel, { vfioAp: true, cards: [{ adapter: 5, hwtype: 11 }, { adapter: 6, hwtype: 7 }] });
      k.write(AQMASK, '-4');
      expect(driverOf(k, '05.0004')).toBe('vfio_ap');
      expect(driverOf(k, '06.0004')).toBeUndefined();
      expect(driverOf(k, '05.0047')).toBe('cex4queue');
      k.write(AQMASK, '+4');
      expect(driverOf(k, '06.0004')).toBe('cex4queue');
      if (kernel !== '5.4') expect(k.read(`${AP_BUS}/bindings`)).toBe('8/8 (complete)\n');
    });
  });

  describe('BINDINGS=complete (ap_check_bindings_complete, ap_send_bindings_complete_uevent) and bus attributes', () => {
    it('5.4: no BINDINGS=complete, no bindings attribute', () => {
      const k = docHost('5.4');
      k.write(APMASK, '-5,-6');
      k.loadVfioAp();
      k.addCard(7, 12);
      k.scan();
      expect(bindingsEvents(k)).toEqual([]);
      expect(k.list(AP_BUS)).toEqual(['apmask', 'aqmask', 'devices', 'drivers']);
    });

    it('6.0 (as up to 6.8): after every probe that leaves all bound, COMPLETECOUNT counting; a rebind of k queues sends k', () => {
      const k = docHost('6.0', { vfioAp: true });
      k.write(APMASK, '-5'); // four queues, each reprobed to vfio_ap with all bound after it
      expect(bindingsEvents(k)).toEqual(['change /devices/ap 2', 'change /devices/ap 3', 'change /devices/ap 4', 'change /devices/ap 5']);
      k.addCard(7, 12); // each new queue probed as it is added
      expect(bindingsEvents(k)).toEqual(['change /devices/ap 6', 'change /devices/ap 7', 'change /devices/ap 8', 'change /devices/ap 9']);
      k.scan();
      expect(bindingsEvents(k)).toEqual([]);
      expect(k.exists(`${AP_BUS}/bindings_complete_count`)).toBe(false);
    });

    it('6.0: loading vfio_ap binds the freed queues; only the last probe leaves all bound', () => {
      const k = docHost('6.0');
      k.write(APMASK, '-5,-6');
      k.takeEvents();
      k.loadVfioAp();
      expect(k.takeEvents()).toEqual([
        { action: 'add', devpath: '/devices/vfio_ap/matrix', properties: {} },
        { action: 'change', devpath: '/devices/ap', properties: { BINDINGS: 'complete', COMPLETECOUNT: '2' } },
        { action: 'change', devpath: '/devices/vfio_ap/matrix', properties: { MDEV_STATE: 'registered' } },
      ]);
      k.loadVfioAp(); // loaded already: nothing happens
      expect(k.takeEvents()).toEqual([]);
    });

    it('6.19 (as from 6.10): once per transition to all bound, at the end of a bus scan; bindings_complete_count counts them', () => {
      const k = docHost('6.19', { vfioAp: true });
      expect(k.read(`${AP_BUS}/bindings_complete_count`)).toBe('1\n'); // the boot's
      k.write(APMASK, '-5,-6');
      expect(bindingsEvents(k)).toEqual([]);
      k.scan();
      expect(bindingsEvents(k)).toEqual(['change /devices/ap 2']);
      k.scan();
      expect(bindingsEvents(k)).toEqual([]);
      k.addCard(7, 12);
      expect(k.scanPending).toBe(true);
      expect(bindingsEvents(k)).toEqual([]);
      k.scan();
      expect(k.scanPending).toBe(false);
      expect(bindingsEvents(k)).toEqual(['change /devices/ap 3']);
      expect(k.read(`${AP_BUS}/bindings_complete_count`)).toBe('3\n');
      expect(k.list(AP_BUS)).toEqual(['ap_max_adapter_id', 'ap_max_domain_id', 'apmask', 'aqmask', 'bindings', 'bindings_complete_count', 'devices', 'drivers']);
    });

    it('6.19: a scan while a queue is unbound sends nothing; the scan after vfio_ap bound it does', () => {
      const k = docHost('6.19');
      k.write(APMASK, '-5');
      k.scan();
      expect(bindingsEvents(k)).toEqual([]);
      k.loadVfioAp();
      expect(bindingsEvents(k)).toEqual([]);
      k.scan();
      expect(bindingsEvents(k)).toEqual(['change /devices/ap 2']);
    });

    it('ap_max_adapter_id/ap_max_domain_id: shown on 6.0 and 6.19, on 5.4 only with maxIdAttrs; the limits hold either way', () => {
      expect(docHost('6.0').read(`${AP_BUS}/ap_max_domain_id`)).toBe('255\n');
      expect(docHost('6.19', { maxAdapterId: 63 }).read(`${AP_BUS}/ap_max_adapter_id`)).toBe('63\n');
      const old = securedDocHost('5.4', { maxAdapterId: 63 });
      expect(old.exists(`${AP_BUS}/ap_max_adapter_id`)).toBe(false);
      expect(old.exists(`${AP_BUS}/ap_max_domain_id`)).toBe(false);
      old.write(PASSTHROUGH_CREATE, GUEST1);
      expect(errnoOf(old, mdevPath(GUEST1, 'assign_adapter'), '64')).toBe('ENODEV');
      expect(docHost('5.4', { maxIdAttrs: true }).read(`${AP_BUS}/ap_max_adapter_id`)).toBe('255\n');
      expect(docHost('6.0', { maxIdAttrs: false }).exists(`${AP_BUS}/ap_max_adapter_id`)).toBe(false);
    });

    it.each(KERNELS)('%s: a write to a device’s uevent sends a synthetic event (kobject_synth_uevent) with its variables', (kernel) => {
      const k = securedDocHost(kernel);
      k.takeEvents();
      k.write(`${AP_DEVICES}/05.0004/uevent`, 'change\n');
      k.write('devices/ap/uevent', 'add 0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9 A=1\n');
      expect(k.takeEvents()).toEqual([
        { action: 'change', devpath: '/devices/ap/card05/05.0004', properties: { DEVTYPE: 'ap_queue', DRIVER: 'vfio_ap', SYNTH_UUID: '0' } },
        { action: 'add', devpath: '/devices/ap', properties: { SYNTH_UUID: '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9', SYNTH_ARG_A: '1' } },
      ]);
    });
  });

  describe('6.19 driver_override (ap_queue.c driver_override_store, ap_device_probe; "Restrict driver_override versus apmask and aqmask use")', () => {
    it('only 6.19 queues have it; it reads "\\n" while unset', () => {
      expect(docHost('5.4').exists(`${AP_DEVICES}/05.0004/driver_override`)).toBe(false);
      expect(docHost('6.0').exists(`${AP_DEVICES}/05.0004/driver_override`)).toBe(false);
      const k = docHost('6.19');
      expect(k.list(`${AP_DEVICES}/05.0004`)).toEqual(['driver', 'driver_override', 'subsystem', 'uevent']);
      expect(k.read(`${AP_DEVICES}/05.0004/driver_override`)).toBe('\n');
    });

    it('is EINVAL while apmask or aqmask is not all ones; while one is set, every mask write is EINVAL, even an unchanged one', () => {
      const k = docHost('6.19', { vfioAp: true });
      const override = `${AP_DEVICES}/05.0004/driver_override`;
      k.write(APMASK, '-9');
      expect(errnoOf(k, override, 'vfio_ap\n')).toBe('EINVAL');
      k.write(APMASK, '+9');
      expect(errnoOf(k, override, 'vfio_ap\n')).toBe('ok');
      expect(k.read(override)).toBe('vfio_ap\n');
      expect(errnoOf(k, APMASK, '-5')).toBe('EINVAL');
      expect(errnoOf(k, AQMASK, FULL)).toBe('EINVAL');
      expect(errnoOf(k, APMASK, 'garbage')).toBe('EINVAL');
      expect(k.state().queues).toContainEqual({ apqn: '05.0004', driver: 'cex4queue', driverOverride: 'vfio_ap' });
      expect(errnoOf(k, override, '\n')).toBe('ok'); // clears
      expect(k.read(override)).toBe('\n');
      expect(errnoOf(k, APMASK, '-5')).toBe('ok');
    });

    it('the queue keeps its driver until it is reprobed; then only the named driver takes it, the masks aside', () => {
      const k = docHost('6.19', { vfioAp: true });
      k.write(`${AP_DEVICES}/05.0004/driver_override`, 'vfio_ap\n');
      k.write(`${AP_DEVICES}/05.0047/driver_override`, 'none');
      expect(driverOf(k, '05.0004')).toBe('cex4queue');
      k.reprobeQueue('05.0004');
      k.reprobeQueue('05.0047');
      expect(driverOf(k, '05.0004')).toBe('vfio_ap');
      expect(driverOf(k, '05.0047')).toBeUndefined();
      expect(k.read(`${AP_BUS}/bindings`)).toBe('7/8\n');
      expect(() => k.reprobeQueue('09.0004')).toThrow(KernelEventError);
    });

    it('assign (ap_owned_by_def_drv): a queue with an override counts by its binding, the others by the (all-ones) masks', () => {
      const k = docHost('6.19', { vfioAp: true });
      k.write(`${AP_DEVICES}/05.0004/driver_override`, 'vfio_ap\n');
      k.write(`${AP_DEVICES}/05.0047/driver_override`, 'cex4queue\n');
      k.reprobeQueue('05.0004');
      k.write(PASSTHROUGH_CREATE, GUEST1);
      k.write(mdevPath(GUEST1, 'assign_adapter'), '5');
      expect(errnoOf(k, mdevPath(GUEST1, 'assign_domain'), '4')).toBe('ok');
      expect(errnoOf(k, mdevPath(GUEST1, 'assign_domain'), '0x47')).toBe('EADDRNOTAVAIL'); // override names the default driver
      expect(errnoOf(k, mdevPath(GUEST1, 'assign_domain'), '0xab')).toBe('EADDRNOTAVAIL'); // no override: the masks give it to the host
      expect(k.read(mdevPath(GUEST1, 'matrix'))).toBe('05.0004\n');
    });
  });

  describe('mdev_sysfs.c create_store and remove_store', () => {
    it.each(KERNELS)('%s: create takes 36 or 37 bytes (the 37th not looked at), a UUID in the first 36 (guid_parse), else EINVAL; once (EEXIST)', (kernel) => {
      const k = securedDocHost(kernel);
      expect(errnoOf(k, PASSTHROUGH_CREATE, GUEST1.slice(0, 35))).toBe('EINVAL');
      expect(errnoOf(k, PASSTHROUGH_CREATE, `${GUEST1}\n\n`)).toBe('EINVAL');
      expect(errnoOf(k, PASSTHROUGH_CREATE, ` ${GUEST1}`)).toBe('EINVAL');
      expect(errnoOf(k, PASSTHROUGH_CREATE, GUEST1.replace(/-/g, '_'))).toBe('EINVAL');
      expect(errnoOf(k, PASSTHROUGH_CREATE, `${GUEST1} `)).toBe('ok');
      expect(errnoOf(k, PASSTHROUGH_CREATE, GUEST2.toUpperCase())).toBe('ok');
      expect(k.exists(mdevPath(GUEST2))).toBe(true);
      expect(errnoOf(k, PASSTHROUGH_CREATE, `${GUEST1}\n`)).toBe('EEXIST');
    });

    it.each(KERNELS)('%s: remove reads kstrtoul base 0 (EINVAL otherwise); 0 does nothing; a guest-held mdev blocks, never EBUSY', (kernel) => {
      const k = securedDocHost(kernel);
      configure(k, GUEST1, [['assign_adapter', '5']]);
      configure(k, GUEST2, [['assign_adapter', '6']]);
      expect(errnoOf(k, mdevPath(GUEST1, 'remove'), '1 ')).toBe('EINVAL');
      expect(errnoOf(k, mdevPath(GUEST1, 'remove'), '00')).toBe('ok');
      expect(k.exists(mdevPath(GUEST1))).toBe(true);
      k.setGuestRunning(GUEST2, true);
      expect(errnoOf(k, mdevPath(GUEST2, 'remove'), '0x1')).toBe('EWOULDHANG');
      expect(k.hungRemoves).toEqual([{ path: mdevPath(GUEST2, 'remove'), uuid: GUEST2, data: '0x1' }]);
      expect(errnoOf(k, mdevPath(GUEST1, 'remove'), '0x1\n')).toBe('ok');
      expect(k.exists(mdevPath(GUEST1))).toBe(false);
    });
  });

  describe('vfio_ap_ops.c assign_*/unassign_*', () => {
    it('6.0 and 6.19: an ID assigned already is a success that checks nothing; 5.4 checks it again', () => {
      for (const kernel of KERNELS) {
        // Cards 5, 6, 7; 07.0005 stays the host's. An mdev left on it (adopted) has adapter 7 already.
        const k = securedDocHost(kernel, { cards: [5, 6, 7].map((adapter) => ({ adapter, hwtype: 11 })), domains: [4, 5, 0x47, 0xab, 0xff] });
        k.adoptMdev(GUEST1, [7], [5]);
        expect(errnoOf(k, mdevPath(GUEST1, 'assign_adapter'), '7'), kernel).toBe(kernel === '5.4' ? 'EADDRNOTAVAIL' : 'ok');
      }
    });

    it('6.0 and 6.19: the whole new matrix must be free of host APQNs (EADDRNOTAVAIL), then of other mdevs’ (EADDRINUSE); over-provisioning and hot plug are fine', () => {
      for (const kernel of ['6.0', '6.19'] as const) {
        const k = securedDocHost(kernel);
        configure(k, GUEST1, [
          ['assign_adapter', '5'],
          ['assign_domain', '4'],
        ]);
        k.setGuestRunning(GUEST1, true);
        configure(k, GUEST2, [['assign_domain', '4']]);
        expect(errnoOf(k, mdevPath(GUEST2, 'assign_adapter'), '5')).toBe('EADDRINUSE');
        expect(errnoOf(k, mdevPath(GUEST2, 'assign_adapter'), '0x20')).toBe('ok'); // no card 0x20: over-provisioned
        // Domain 1 is in aqmask, adapter 0x20 in apmask: 20.0001 is the host's.
        expect(errnoOf(k, mdevPath(GUEST2, 'assign_domain'), '1')).toBe('EADDRNOTAVAIL');
        k.write(APMASK, '-0x20');
        expect(errnoOf(k, mdevPath(GUEST2, 'assign_domain'), '1')).toBe('ok');
        expect(k.read(mdevPath(GUEST2, 'matrix'))).toBe('20.0001\n20.0004\n');
        expect(errnoOf(k, mdevPath(GUEST1, 'assign_domain'), '0xab')).toBe('ok'); // guest1 runs: hot plug
        expect(errnoOf(k, mdevPath(GUEST1, 'unassign_adapter'), '5')).toBe('ok');
        expect(errnoOf(k, mdevPath(GUEST1, 'unassign_domain'), '0x99')).toBe('ok'); // never assigned: nothing to check
      }
    });
  });

  describe('vfio_ap_ops.c guest_matrix_show (vfio_ap_mdev_filter_matrix)', () => {
    it('absent on 5.4', () => {
      const k = securedDocHost('5.4');
      k.write(PASSTHROUGH_CREATE, GUEST1);
      expect(k.exists(mdevPath(GUEST1, 'guest_matrix'))).toBe(false);
      expect(k.exists(mdevPath(GUEST1, 'ap_config'))).toBe(false);
    });

    it.each(['6.0', '6.19'] as const)('%s: the matrix less IDs the host lacks and every adapter with a queue not bound to vfio_ap', (kernel) => {
      // Card 6 is a CEX3 (hwtype 7): its freed queues stay unbound.
      const k = securedDocHost(kernel, { cards: [{ adapter: 5, hwtype: 11 }, { adapter: 6, hwtype: 7 }] });
      k.write(APMASK, '-7');
      k.write(AQMASK, '-0x10');
      configure(k, GUEST1, [
        ['assign_adapter', '5'],
        ['assign_adapter', '6'],
        ['assign_adapter', '7'], // no card 07
        ['assign_domain', '4'],
        ['assign_domain', '0xab'],
        ['assign_domain', '0x10'], // no queue has domain 0x10
      ]);
      expect(k.read(mdevPath(GUEST1, 'matrix'))).toContain('07.0010\n');
      expect(k.read(mdevPath(GUEST1, 'guest_matrix'))).toBe('05.0004\n05.00ab\n');
      configure(k, GUEST2, [['assign_domain', '0x47']]);
      expect(k.read(mdevPath(GUEST2, 'guest_matrix'))).toBe('.0047\n');
    });
  });

  describe('vfio_ap_ops.c ap_config_show/ap_config_store (6.10+, in 6.0 and 6.19)', () => {
    it.each(['6.0', '6.19'] as const)('%s: reads apm,aqm,adm; a write sets all three, validated first, the old matrix kept on any error', (kernel) => {
      const k = securedDocHost(kernel, { maxDomainId: 0xfe });
      configure(k, GUEST1, [
        ['assign_adapter', '5'],
        ['assign_domain', '4'],
        ['assign_control_domain', '4'],
      ]);
      configure(k, GUEST2, [
        ['assign_adapter', '6'],
        ['assign_domain', '0x47'],
      ]);
      const config = mdevPath(GUEST1, 'ap_config');
      expect(k.read(config)).toBe(`${hex([5])},${hex([4])},${hex([4])}\n`);
      const before = k.read(config);
      expect(errnoOf(k, config, `${hex([5])},${hex([4])}`)).toBe('EINVAL'); // the third is missing
      expect(errnoOf(k, config, `${hex([5])},0xzz,${hex([4])}\n`)).toBe('EINVAL');
      expect(errnoOf(k, config, `${hex([5, 1])},${hex([4, 1])},${hex([])}\n`)).toBe('EADDRNOTAVAIL'); // 01.0001 is the host's
      expect(errnoOf(k, config, `${hex([5, 6])},${hex([4, 0x47])},${hex([])}\n`)).toBe('EADDRINUSE'); // 06.0047 is guest2's
      k.write(APMASK, '-0x20');
      k.write(AQMASK, '-0xfe');
      expect(errnoOf(k, config, `${hex([5])},${hex([4])},${hex([0xff])}\n`)).toBe('ENODEV'); // above ap_max_domain_id
      expect(k.read(config)).toBe(before);
      k.setGuestRunning(GUEST1, true);
      expect(errnoOf(k, config, `${hex([5, 0x20])},${hex([4, 0xab])},${hex([0xab])}\n`)).toBe('ok');
      expect(k.read(mdevPath(GUEST1, 'matrix'))).toBe('05.0004\n05.00ab\n20.0004\n20.00ab\n');
      expect(k.read(mdevPath(GUEST1, 'control_domains'))).toBe('00ab\n');
      // strsep: "A,B\n" has an empty third field, an empty mask.
      expect(errnoOf(k, config, `${hex([5])},${hex([4])}\n`)).toBe('ok');
      expect(k.read(mdevPath(GUEST1, 'control_domains'))).toBe('');
    });
  });
});

describe('the mdev’s emulated IOMMU group (mdev_attach_iommu; vfio_register_emulated_iommu_dev)', () => {
  it.each(KERNELS)('%s: each mdev gets the lowest free group, linked both ways; a removed mdev frees it', (kernel) => {
    const k = securedDocHost(kernel, { mtty: true });
    k.write(PASSTHROUGH_CREATE, GUEST1);
    k.write(PASSTHROUGH_CREATE, GUEST2);
    expect(k.stat(mdevPath(GUEST2, 'iommu_group'))).toEqual({ kind: 'link', target: '../../../../kernel/iommu_groups/1' });
    expect(k.read(mdevPath(GUEST1, 'iommu_group'))).toBe('0');
    expect(k.list('kernel/iommu_groups')).toEqual(['0', '1']);
    expect(k.list('kernel/iommu_groups/1/devices')).toEqual([GUEST2]);
    expect(k.stat(`kernel/iommu_groups/1/devices/${GUEST2}`)).toEqual({ kind: 'link', target: `../../../../devices/vfio_ap/matrix/${GUEST2}` });
    k.write(mdevPath(GUEST1, 'remove'), '1');
    k.write('devices/virtual/mtty/mtty/mdev_supported_types/mtty-1/create', GUEST3);
    expect(k.read(`bus/mdev/devices/${GUEST3}/iommu_group`)).toBe('0');
  });
});
