// mask show / mask set on a fake host: the admin's chzdev habits, and the
// one thing never allowed, handing an active guest's queue to the host.

import { describe, expect, it } from 'vitest';
import { IdSet } from '../../src/model/idset.js';
import { threeGuestsHost, GUEST1 } from '../../src/fakehost/three-guests.js';
import { givenHost } from '../support/host.js';
import { TALK_GUEST1, talkGuestsHost } from '../../src/fakehost/talk-guests.js';

const FREE_AP = IdSet.full().minus(IdSet.of([5, 6]));
const FREE_AQ = IdSet.full().minus(IdSet.of([4, 0x47, 0xab, 0xff]));

describe('mask show', () => {
  it('shows persistent and active masks as chzdev does, and null for what cannot be read', async () => {
    const host = givenHost(threeGuestsHost());
    const r = await host.json('mask', 'show');
    expect(r.code).toBe(0);
    expect(r.doc).toEqual({
      persistent: { apmask: '0-4,7-255', aqmask: '0-3,5-70,72-170,172-254' },
      active: { apmask: '0-255', aqmask: '0-255' },
    });
    const bare = givenHost({ cards: [], domains: [], masks: null });
    expect((await bare.json('mask', 'show')).doc).toEqual({ persistent: { apmask: null, aqmask: null }, active: null });
  });
});

describe('mask set', () => {
  it("chzdev's sequence: apmask=-2 aqmask=-43, then +2,-4-8 / +43,-0-42, on both sides", async () => {
    const host = givenHost({ cards: [{ adapter: 2, hwtype: 11 }], domains: [43], store: '' });
    expect((await host.run('mask', 'set', 'apmask=-2', 'aqmask=-43')).code).toBe(0);
    let shown = (await host.json('mask', 'show')).doc;
    expect(shown.persistent).toEqual({ apmask: '0-1,3-255', aqmask: '0-42,44-255' });
    expect(shown.active).toEqual({ apmask: '0-1,3-255', aqmask: '0-42,44-255' });
    expect((await host.run('mask', 'set', 'apmask=+2,-4-8', 'aqmask=+43,-0-42')).code).toBe(0);
    shown = (await host.json('mask', 'show')).doc;
    expect(shown.persistent).toEqual({ apmask: '0-3,9-255', aqmask: '43-255' });
    expect(shown.active).toEqual({ apmask: '0-3,9-255', aqmask: '43-255' });
    // sysfs holds the kernel's 64-digit form.
    expect(host.read('sys/bus/ap/apmask').trim()).toBe(IdSet.full().minus(IdSet.of([4, 5, 6, 7, 8])).toKernelHex());
  });

  it('--persistent changes the store only, --active the kernel only', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: '' });
    expect((await host.run('mask', 'set', '--persistent', 'apmask=-5,-6')).code).toBe(0);
    expect(host.read('sys/bus/ap/apmask').trim()).toBe(IdSet.full().toKernelHex());
    expect(host.storeText()).toContain('apmask = 0-4,7-255');
    expect((await host.run('mask', 'set', '--active', 'aqmask=-4,-0x47,-0xab,-0xff')).code).toBe(0);
    expect(host.read('sys/bus/ap/aqmask').trim()).toBe('0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe');
    expect(host.storeText()).not.toContain('aqmask');
  });

  it('relative changes start from the active mask when the store has none', async () => {
    const host = givenHost({ ...threeGuestsHost(), masks: { apmask: FREE_AP, aqmask: IdSet.full() }, store: '' });
    expect((await host.run('mask', 'set', '--persistent', 'apmask=-7')).code).toBe(0);
    expect(host.storeText()).toContain('apmask = 0-4,8-255');
  });

  it('--dry-run says what would change and changes nothing', async () => {
    const host = givenHost(threeGuestsHost());
    const before = host.snapshot();
    const r = await host.run('mask', 'set', '--dry-run', 'apmask=-5,-6');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('would set active apmask "0-4,7-255" (was "0-255")');
    expect(host.snapshot()).toEqual(before);
  });

  it('refuses to hand an active mdev’s queues to the host, listing each APQN; sysfs untouched', async () => {
    const host = givenHost({
      ...threeGuestsHost(),
      masks: { apmask: FREE_AP, aqmask: FREE_AQ },
      vfioAp: true,
      activeMdevs: [{ uuid: GUEST1, adapters: [5, 6], domains: [4, 0xab] }],
    });
    const before = host.snapshot();
    // Adapter 5 alone gives the host nothing: none of the guest's domains is the host's.
    const harmless = await host.run('mask', 'set', '--active', '--dry-run', 'apmask=+5');
    expect(harmless.code).toBe(0);
    const r = await host.run('mask', 'set', '--active', 'apmask=+5,+6', 'aqmask=+4,+0x47');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('APQN 05.0004 (5.4)');
    expect(r.stderr).toContain('APQN 06.0004 (6.4)');
    expect(r.stderr).not.toContain('05.0047'); // not the mdev's: the host may have it
    expect(host.snapshot()).toEqual(before);
    const json = await host.json('mask', 'set', 'apmask=+5', 'aqmask=+4');
    expect(json.code).toBe(3);
    expect(json.doc.ok).toBe(false);
    expect(json.doc.conflicts.filter((c: { kind: string }) => c.kind === 'active-mdev-host').map((c: { apqn: string }) => c.apqn)).toEqual(['05.0004']);
    expect(host.snapshot()).toEqual(before);
  });

  it("refuses a persistent mask that gives the host a guest mdev's queue (it could never be made), naming the mdev", async () => {
    const host = givenHost(talkGuestsHost());
    const before = host.storeText();
    const r = await host.run('mask', 'set', '--persistent', 'apmask=+1', 'aqmask=+1');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('01.0001');
    expect(r.stderr).toContain(TALK_GUEST1);
    expect(host.storeText()).toBe(before);
  });

  it('refuses a persistent mask that takes an auto mdev’s queue, naming the mdev', async () => {
    const host = givenHost(threeGuestsHost());
    const before = host.snapshot();
    const r = await host.run('mask', 'set', '--persistent', 'apmask=+5', 'aqmask=+0xff');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('APQN 05.00ff (5.255)');
    expect(r.stderr).not.toContain('06.00ff'); // adapter 6 stays with vfio_ap
    expect(r.stderr).toContain('guest2');
    expect(host.snapshot()).toEqual(before);
  });

  it('refuses persistent masks that give a running mdev\'s queues to the host (it could not be made at the next boot); --force persists them with a warning', async () => {
    // A guest runs on 05.0004 through an mdev that is no auto mdev of the store (libvirt's, say).
    const store = '[masks]\napmask = 0-4,7-255\naqmask = 0-3,5-70,72-170,172-254\n';
    const host = givenHost({
      ...threeGuestsHost(),
      store,
      masks: { apmask: FREE_AP, aqmask: FREE_AQ },
      vfioAp: true,
      activeMdevs: [{ uuid: GUEST1, adapters: [5], domains: [4] }],
    });
    const before = host.snapshot();
    const r = await host.run('mask', 'set', '--persistent', 'apmask=+5', 'aqmask=+4');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`APQN 05.0004 (5.4) is in use by active mdev ${GUEST1}; the persistent masks give it to the host at the next boot`);
    expect(r.stderr).toContain('add --force');
    expect(host.snapshot()).toEqual(before);
    const json = await host.json('mask', 'set', '--persistent', 'apmask=+5', 'aqmask=+4');
    expect(json.doc.conflicts.map((c: { scope: string; kind: string; apqn: string }) => [c.scope, c.kind, c.apqn])).toEqual([['persistent', 'active-mdev-host', '05.0004']]);

    const forced = await host.run('mask', 'set', '--persistent', '--force', 'apmask=+5', 'aqmask=+4');
    expect(forced.code).toBe(0);
    expect(forced.stderr).toContain('warning: --force: APQN 05.0004 (5.4) is in use by active mdev');
    expect(host.storeText()).toContain('apmask = 0-5,7-255');
    // check warns about it, until the guest stops.
    const check = await host.json('check', '--persistent');
    expect(check.doc.warnings.filter((w: { kind: string }) => w.kind === 'running-mdev-given-away').map((w: { message: string }) => w.message)).toEqual([
      `APQN 05.0004 (5.4) is in use by active mdev ${GUEST1}; the persistent masks give it to the host at the next boot, so the mdev could not be made again there`,
    ]);
  });

  const bad: [string[], RegExp][] = [
    [['apmask=5-3'], /reversed/],
    // chzdev reads 010 as octal 8: never a third meaning.
    [['apmask=010'], /'010' has a leading zero \(chzdev and the kernel read it as octal 8\); refused so that it means one thing/],
    [['aqmask=-08'], /'08' has a leading zero; refused/],
    [['apmask=300'], /above 255/],
    [['apmask='], /empty/],
    [['apmask=1,+2'], /mixes/],
    [['bogus=1'], /not apmask=SPEC/],
    [['apmask=1', 'apmask=2'], /given twice/],
    [['apmask'], /apmask needs a value: apmask=SPEC/],
  ];
  for (const [args, message] of bad) {
    it(`'${args.join(' ')}' exits 2 with the place and changes nothing`, async () => {
      const host = givenHost(threeGuestsHost());
      const before = host.snapshot();
      const r = await host.run('mask', 'set', ...args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/mask set/);
      expect(host.snapshot()).toEqual(before);
    });
  }

  it('--active without an AP bus is a runtime error (exit 1)', async () => {
    const host = givenHost({ cards: [], domains: [], masks: null, store: '' });
    const r = await host.run('mask', 'set', '--active', 'apmask=-5');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/active masks cannot be read/);
  });
});

describe('mask set of what is there already', () => {
  const freed = () => givenHost({ ...threeGuestsHost(), masks: { apmask: FREE_AP, aqmask: FREE_AQ }, vfioAp: true });

  it('says "unchanged" for a mask the store and the kernel already have, never "set"', async () => {
    const host = freed();
    const before = host.snapshot();
    const r = await host.run('mask', 'set', 'apmask=0-4,7-255', 'aqmask=0-3,5-70,72-170,172-254');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('unchanged: the store and the kernel already have apmask "0-4,7-255"');
    expect(r.stdout).toContain('unchanged: the store and the kernel already have aqmask "0-3,5-70,72-170,172-254"');
    expect(r.stdout).not.toMatch(/^(would )?set /m);
    expect(host.snapshot()).toEqual(before);
    const json = await host.json('mask', 'set', '--persistent', 'apmask=0-4,7-255');
    expect(json.doc).toEqual({ dry_run: false, changes: [], unchanged: [{ scope: 'persistent', key: 'apmask', value: '0-4,7-255' }] });
  });

  it('says per side what was there and what it set, a relative change included', async () => {
    // The kernel still has its default masks; the store has the guests' freed.
    const host = givenHost(threeGuestsHost());
    const r = await host.run('mask', 'set', 'apmask=-5,-6');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('unchanged: the store already has apmask "0-4,7-255"');
    expect(r.stdout).toContain('set active apmask "0-4,7-255" (was "0-255")');
    expect(r.stdout).not.toContain('set persistent');
    expect(host.read('sys/bus/ap/apmask').trim()).toBe(FREE_AP.toKernelHex());
    const again = await host.run('mask', 'set', '--active', 'apmask=-5,-6');
    expect(again.stdout.trim()).toBe('unchanged: the kernel already has apmask "0-4,7-255"');
  });
});
