// mdev define / modify / undefine / list, and the usage errors around them.

import { describe, expect, it } from 'vitest';
import { GUEST1, GUEST2, GUEST3, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { IdSet } from '../../src/model/idset.js';
import { givenHost } from '../support/host.js';

describe('mdev define', () => {
  it('makes and prints a UUID when none is given, and stores the mdev', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: '[masks]\napmask = 0-4,7-255\naqmask = 0-3,5-70,72-170,172-254\n' });
    const r = await host.run('mdev', 'define', '--adapters', '5', '--domains', '0x47', '--name', 'guest2');
    expect(r.code).toBe(0);
    const uuid = r.stdout.split('\n')[0]!;
    expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(host.storeText()).toContain(`[mdev.${uuid}]\nname = guest2\nadapters = 5\ndomains = 71\nstart = auto\n`);
    const list = await host.json('mdev', 'list');
    expect(list.doc).toEqual([
      { uuid, name: 'guest2', adapters: [5], domains: [71], control_domains: [], start: 'auto', defined: true, defined_by: 'store', active: false, guests: [], held_by: [] },
    ]);
  });

  it('creates the store when there is none', async () => {
    const host = givenHost({ cards: [], domains: [], masks: null });
    const r = await host.run('mdev', 'define', GUEST1, '--adapters', '5', '--domains', '4', '--start', 'manual');
    expect(r.code).toBe(0);
    expect(host.storeText()).toMatch(/^; ap-persist store/);
    expect(host.storeText()).toContain(`[mdev.${GUEST1}]`);
  });

  it('refuses a UUID that is already defined (exit 2)', async () => {
    const host = givenHost(threeGuestsHost());
    const before = host.snapshot();
    const r = await host.run('mdev', 'define', GUEST1, '--adapters', '5', '--domains', '4', '--start', 'manual');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`mdev ${GUEST1} is already defined`);
    expect(r.stderr).toContain('mdev modify');
    expect(host.snapshot()).toEqual(before);
  });

  const bad: [string[], RegExp][] = [
    [['not-a-uuid', '--adapters', '5', '--domains', '4'], /'not-a-uuid' is not a UUID/],
    [['--adapters', '5-3', '--domains', '4'], /--adapters: range '5-3' is reversed/],
    [['--adapters', '5', '--domains', '256'], /--domains: domain '256' is above 255/],
    [['--adapters', '5'], /needs --adapters and --domains/],
    [['--adapters', '5', '--domains', '4', '--start', 'sometimes'], /Allowed choices are auto, manual/],
    [['--adapters', '5', '--domains', '4', '--bogus'], /unknown option '--bogus'/],
    [['--adapters', '5', '--domains', '4', '--name', 'a;b'], /--name: the name 'a;b' contains/],
  ];
  for (const [args, message] of bad) {
    it(`mdev define ${args.join(' ')} exits 2 and changes nothing`, async () => {
      const host = givenHost(threeGuestsHost());
      const before = host.snapshot();
      const r = await host.run('mdev', 'define', ...args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(host.snapshot()).toEqual(before);
    });
  }
});

describe('mdev modify and undefine', () => {
  it('modify changes only what is given', async () => {
    const host = givenHost(threeGuestsHost());
    const r = await host.run('mdev', 'modify', GUEST2, '--start', 'manual');
    expect(r.code).toBe(0);
    const list = (await host.json('mdev', 'list')).doc as { uuid: string; start: string; domains: number[] }[];
    expect(list.find((m) => m.uuid === GUEST2)).toMatchObject({ start: 'manual', domains: [0x47, 0xff] });
  });

  it('an unknown UUID exits 2 and says how to list', async () => {
    const host = givenHost(threeGuestsHost());
    const UNKNOWN = '99999999-9999-4999-8999-999999999999';
    for (const args of [['modify', UNKNOWN, '--name', 'x'], ['undefine', UNKNOWN]]) {
      const r = await host.run('mdev', ...args);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`no mdev ${UNKNOWN} in the store`);
      expect(r.stderr).toContain('mdev list');
    }
  });

  it('undefine removes the mdev and warns when it is still active', async () => {
    const free = { apmask: IdSet.full().minus(IdSet.of([5, 6])), aqmask: IdSet.full().minus(IdSet.of([4, 0x47, 0xab, 0xff])) };
    const host = givenHost({ ...threeGuestsHost(), masks: free, vfioAp: true, activeMdevs: [{ uuid: GUEST3, adapters: [6], domains: [0x47, 0xff] }] });
    const r = await host.run('mdev', 'undefine', GUEST3);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`mdev ${GUEST3} is still active`);
    expect(host.storeText()).not.toContain(GUEST3);
    const active = (await host.json('mdev', 'list', '--active')).doc;
    expect(active).toEqual([
      { uuid: GUEST3, name: null, adapters: [6], domains: [0x47, 0xff], control_domains: [], start: null, defined: false, defined_by: null, active: true, guests: [], held_by: [] },
    ]);
  });
});

describe('usage', () => {
  it('an unknown command exits 2 through commander', async () => {
    const host = givenHost(threeGuestsHost());
    const r = await host.run('frobnicate');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'frobnicate'");
  });

  it('--help exits 0 and lists the commands', async () => {
    const host = givenHost(threeGuestsHost());
    const r = await host.run('--help');
    expect(r.code).toBe(0);
    for (const command of ['status', 'mask', 'mdev', 'check', 'generate', 'install', 'import', 'hook', 'wait', 'callout']) {
      expect(r.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
    }
  });
});
