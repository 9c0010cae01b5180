// suggest-masks: free exactly what the auto mdevs need, the host keeps the most.

import { describe, expect, it } from 'vitest';
import { parseIdList } from '../../src/model/idlist.js';
import { findHostOwned } from '../../src/checks/conflicts.js';
import { suggestMasks } from '../../src/checks/suggest.js';
import { threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { IdSet } from '../../src/model/idset.js';
import { givenHost } from '../support/host.js';

const claim = (uuid: string, adapters: number[], domains: number[]) => ({ uuid, adapters: IdSet.of(adapters), domains: IdSet.of(domains) });
const grid = (adapters: number[], domains: number[]) => adapters.flatMap((adapter) => domains.map((domain) => ({ adapter, domain })));
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('suggestMasks', () => {
  it('frees one domain rather than four whole adapters when that keeps more host queues', () => {
    const s = suggestMasks([claim('a', [0, 1, 2, 3], [5])], grid([0, 1, 2, 3], range(0, 15)));
    expect(s.apmask.toRanges()).toBe('0-255');
    expect(s.aqmask.toRanges()).toBe('0-4,6-255');
    expect(s.hostQueues).toBe(60);
    expect(s.exhaustive).toBe(true);
  });

  it('mixes both when the mdevs differ: adapter 0 out for one, domain 8 out for the other', () => {
    const autos = [claim('a', [0], range(0, 7)), claim('b', [1, 2, 3], [8])];
    const s = suggestMasks(autos, grid([0, 1, 2, 3], range(0, 9)));
    expect(s.apmask.toRanges()).toBe('1-255');
    expect(s.aqmask.toRanges()).toBe('0-7,9-255');
    expect(s.hostQueues).toBe(27);
    expect(findHostOwned(autos, s.apmask, s.aqmask, 'persistent').conflicts).toEqual([]);
  });

  it('with many mdev adapters it still frees everything they need', () => {
    const autos = range(0, 39).map((a) => claim(`m${a}`, [a], [a % 7]));
    const s = suggestMasks(autos);
    expect(s.exhaustive).toBe(false);
    expect(findHostOwned(autos, s.apmask, s.aqmask, 'persistent').conflicts).toEqual([]);
    // Freeing the 7 domains keeps far more than freeing 40 adapters.
    expect(s.hostQueues).toBeGreaterThanOrEqual(256 * 249);
  });
});

describe('ap-persist suggest-masks', () => {
  it('on the three-guest host suggests keeping cards 5 and 6 out, and the suggestion passes check', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: threeGuestsHost().store!.replace(/\[masks\][^[]*/, '') });
    const r = await host.run('suggest-masks');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('apmask=0-4,7-255 aqmask=0-255');
    expect(r.stdout).toContain('to apply: ap-persist mask set --persistent apmask=0-4,7-255 aqmask=0-255');
    expect((await host.run('check', '--persistent')).code).toBe(3);
    expect((await host.run('mask', 'set', '--persistent', 'apmask=0-4,7-255', 'aqmask=0-255')).code).toBe(0);
    expect((await host.run('check', '--persistent')).code).toBe(0);
    const json = await host.json('suggest-masks');
    expect(json.doc).toMatchObject({ apmask: '0-4,7-255', aqmask: '0-255', counted: 'present', exhaustive: true, auto_mdevs: 3 });
  });

  it('keeps a running mdev\'s queues out too, even one the store does not hold', async () => {
    const free = { apmask: IdSet.full().minus(IdSet.of([5, 6, 7])), aqmask: IdSet.full().minus(IdSet.of([4, 0x47, 0xab, 0xff, 9])) };
    const host = givenHost({
      ...threeGuestsHost(),
      cards: [...threeGuestsHost().cards, { adapter: 7, hwtype: 11 }],
      store: threeGuestsHost().store!.replace(/\[masks\][^[]*/, ''),
      masks: free,
      vfioAp: true,
      activeMdevs: [{ uuid: 'dddddddd-0000-4000-8000-000000000007', adapters: [7], domains: [9] }],
    });
    const json = await host.json('suggest-masks');
    expect(json.doc).toMatchObject({ auto_mdevs: 3, running_mdevs: 1 });
    const apmask = parseIdList(json.doc.apmask, 'ID', true);
    const aqmask = parseIdList(json.doc.aqmask, 'ID', true);
    expect(apmask.has(7) && aqmask.has(9)).toBe(false);
    // Applying it persistently is accepted: it gives no running mdev's queue away.
    expect((await host.run('mask', 'set', '--persistent', `apmask=${json.doc.apmask}`, `aqmask=${json.doc.aqmask}`)).code).toBe(0);
  });
});

describe('suggest-masks and manual mdevs', () => {
  const MANUAL = 'eeeeeeee-0000-4000-8000-000000000001';
  const MDEVCTL_MANUAL = 'eeeeeeee-0000-4000-8000-000000000002';
  // guest3 is manual in the store; mdevctl holds a manual mdev of its own on card 7.
  const host = () =>
    givenHost({
      ...threeGuestsHost(),
      cards: [...threeGuestsHost().cards, { adapter: 7, hwtype: 11 }],
      store: `${threeGuestsHost().store!.replace(/\[masks\][^[]*/, '')}\n[mdev.${MANUAL}]\nname = spare\nadapters = 6\ndomains = 9\nstart = manual\n`,
      mdevctl: [{ uuid: MDEVCTL_MANUAL, start: 'manual', adapters: [7], domains: [10] }],
    });

  it('without --include-manual it says which manual mdevs were not counted', async () => {
    const h = host();
    const r = await h.run('suggest-masks');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('apmask=0-4,7-255 aqmask=0-255');
    expect(r.stdout).toContain(`note: 2 manual mdev(s) not running were not counted (${MANUAL} (spare), ${MDEVCTL_MANUAL}); these masks may give the host their queues, so they could not start; --include-manual counts them`);
    const json = await h.json('suggest-masks');
    expect(json.doc).toMatchObject({ manual_mdevs: 2, manual_counted: false, manual_not_counted: [MANUAL, MDEVCTL_MANUAL] });
  });

  it('--include-manual frees their queues too, and the result gives the host none of them', async () => {
    const h = host();
    const r = await h.run('suggest-masks', '--include-manual');
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('not counted');
    expect(r.stdout).toContain('3 auto mdev(s) get theirs, 2 manual mdev(s) get theirs too');
    const json = await h.json('suggest-masks', '--include-manual');
    expect(json.doc).toMatchObject({ manual_mdevs: 2, manual_counted: true });
    const apmask = parseIdList(json.doc.apmask, 'ID', true);
    const aqmask = parseIdList(json.doc.aqmask, 'ID', true);
    for (const [a, d] of [[6, 9], [7, 10], [5, 4], [6, 0xff]] as const) expect(apmask.has(a) && aqmask.has(d), `${a}.${d}`).toBe(false);
  });

  it('a host with no manual mdev gets no note', async () => {
    const h = givenHost({ ...threeGuestsHost(), store: threeGuestsHost().store!.replace(/\[masks\][^[]*/, '') });
    expect((await h.run('suggest-masks')).stdout).not.toContain('manual');
  });
});
