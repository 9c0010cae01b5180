// An admin names mdevs by the names in the store where a UUID is expected:
// mdev modify, undefine, start and stop. A name two mdevs share is refused
// with both candidates; an unknown one says so. Nothing changes on an error.

import { describe, expect, it } from 'vitest';
import { GUEST1, GUEST2, GUEST3, THREE_GUESTS_STORE, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { givenHost } from '../support/host.js';
import { givenSimulatedHost } from '../support/sim-host.js';

const TWIN = 'a0a0a0a0-0000-4000-8000-000000000001';
/** A second mdev named guest2 (the store was edited by hand). */
const WITH_TWIN = `${THREE_GUESTS_STORE}\n[mdev.${TWIN}]\nname = guest2\nadapters = 6\ndomains = 4\nstart = manual\n`;

describe('a name where a UUID is expected', () => {
  it('mdev modify guest3 changes guest3', async () => {
    const host = givenHost(threeGuestsHost());
    const r = await host.run('mdev', 'modify', 'guest3', '--start', 'manual');
    expect(r.code, r.stderr).toBe(0);
    const list = (await host.json('mdev', 'list')).doc as { uuid: string; start: string }[];
    expect(list.find((m) => m.uuid === GUEST3)!.start).toBe('manual');
    expect(list.filter((m) => m.start === 'manual').map((m) => m.uuid)).toEqual([GUEST3]);
  });

  it('mdev undefine guest1 removes guest1 only', async () => {
    const host = givenHost(threeGuestsHost());
    const r = await host.run('mdev', 'undefine', 'guest1');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`undefined mdev ${GUEST1} (guest1)`);
    expect(host.storeText()).not.toContain(GUEST1);
    expect(host.storeText()).toContain(GUEST2);
  });

  it('an ambiguous name exits 2, lists every candidate with its UUID, and changes nothing', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: WITH_TWIN });
    const before = host.snapshot();
    for (const args of [['modify', 'guest2', '--name', 'x'], ['undefine', 'guest2'], ['start', 'guest2'], ['stop', 'guest2']]) {
      const r = await host.run('mdev', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain("the name 'guest2' is ambiguous: 2 mdevs in the store have it:");
      expect(r.stderr).toContain(`    ${GUEST2}  adapters 05, domains 0047,00ff, start auto`);
      expect(r.stderr).toContain(`    ${TWIN}  adapters 06, domains 0004, start manual`);
      expect(r.stderr).toContain('give the UUID of the one you mean');
    }
    expect(host.snapshot()).toEqual(before);
  });

  it('an unknown name exits 2 and says it is neither a name in the store nor a UUID', async () => {
    const host = givenHost(threeGuestsHost());
    const before = host.snapshot();
    for (const args of [['modify', 'guest9', '--name', 'x'], ['undefine', 'guest9'], ['start', 'guest9'], ['stop', 'guest9']]) {
      const r = await host.run('mdev', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain("no mdev named 'guest9' in the store, and 'guest9' is not a UUID");
      expect(r.stderr).toContain("'ap-persist mdev list' shows every mdev with its name and UUID");
    }
    expect(host.snapshot()).toEqual(before);
  });

  it('a UUID still works as before, and a name that is a UUID (a libvirt domain\'s) is found when no mdev has that UUID', async () => {
    const LIBVIRT = '77777777-0000-4000-8000-000000000000';
    const host = givenHost({ ...threeGuestsHost(), store: THREE_GUESTS_STORE.replace('name = guest3', `name = ${LIBVIRT}`) });
    expect((await host.run('mdev', 'modify', GUEST1, '--start', 'manual')).code).toBe(0);
    expect((await host.run('mdev', 'modify', LIBVIRT, '--start', 'manual')).code).toBe(0);
    const list = (await host.json('mdev', 'list')).doc as { uuid: string; start: string }[];
    expect(list.filter((m) => m.start === 'manual').map((m) => m.uuid).sort()).toEqual([GUEST1, GUEST3].sort());
  });

  it('defining a second mdev with a name in use warns that commands will ask for the UUID', async () => {
    const host = givenHost(threeGuestsHost());
    const r = await host.run('mdev', 'define', TWIN, '--adapters', '6', '--domains', '4', '--start', 'manual', '--name', 'guest2');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`warning: the name 'guest2' is also that of mdev ${GUEST2}; commands given this name will ask for the UUID`);
  });

  it('mdev start guest1 and mdev stop guest1 create and remove guest1 on the kernel', async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0');
    // The masks free the guests' queues and vfio_ap is there, as after the hook.
    expect((await host.run(['mask', 'set', '--active', 'apmask=0-4,7-255', 'aqmask=0-3,5-70,72-170,172-254'])).code).toBe(0);
    host.kernel().loadVfioAp();
    const start = await host.run(['mdev', 'start', 'guest1']);
    expect(start.code, start.stderr).toBe(0);
    expect(start.stdout).toContain(`started mdev ${GUEST1} (guest1)`);
    expect(host.kernel().read(`devices/vfio_ap/matrix/${GUEST1}/matrix`)).toBe('05.0004\n05.00ab\n06.0004\n06.00ab\n');
    const stop = await host.run(['mdev', 'stop', 'guest1']);
    expect(stop.code, stop.stderr).toBe(0);
    expect(host.kernel().exists(`devices/vfio_ap/matrix/${GUEST1}`)).toBe(false);
  });

  it('mdev start by a name that is a UUID (a libvirt domain\'s) makes the mdev of that name, after generate as before it', async () => {
    const LIBVIRT = '77777777-0000-4000-8000-000000000000';
    const host = givenSimulatedHost({ ...threeGuestsHost(), store: THREE_GUESTS_STORE.replace('name = guest3', `name = ${LIBVIRT}`) }, '6.0');
    // generate's record names guest3's mdevctl definition: it is guest3's, not the name's, that the start reads.
    expect((await host.run(['generate', '--no-reload'])).code).toBe(0);
    expect((await host.run(['mask', 'set', '--active', 'apmask=0-4,7-255', 'aqmask=0-3,5-70,72-170,172-254'])).code).toBe(0);
    host.kernel().loadVfioAp();
    const start = await host.run(['mdev', 'start', LIBVIRT]);
    expect(start.code, start.stderr).toBe(0);
    expect(start.stdout).toContain(`started mdev ${GUEST3} (${LIBVIRT})`);
    expect(host.kernel().read(`devices/vfio_ap/matrix/${GUEST3}/matrix`)).toBe('06.0047\n06.00ff\n');
  });
});
