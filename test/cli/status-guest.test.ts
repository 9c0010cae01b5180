// status tells when a started mdev gives its guest less than it was
// assigned: vfio_ap's guest_matrix (6.0+) leaves out an adapter that has a
// queue not bound to vfio_ap.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GUEST1, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { IdSet } from '../../src/model/idset.js';
import { givenHost } from '../support/host.js';

const FREE = { apmask: IdSet.full().minus(IdSet.of([5, 6])), aqmask: IdSet.full().minus(IdSet.of([4, 0x47, 0xab, 0xff])) };

describe('status and the guest matrix', () => {
  const host = () =>
    givenHost({ ...threeGuestsHost(), masks: FREE, vfioAp: true, activeMdevs: [{ uuid: GUEST1, adapters: [5, 6], domains: [4, 0xab] }] });

  it('names the APQNs guest1 was assigned but does not get (card 6 filtered out)', async () => {
    const h = host();
    writeFileSync(join(h.root, `sys/devices/vfio_ap/matrix/${GUEST1}/guest_matrix`), '05.0004\n05.00ab\n');
    const r = await h.run('status');
    expect(r.stdout).toContain(`mdev ${GUEST1} (guest1): its guest gets 2 of 4 assigned APQN(s); missing 06.0004 06.00ab`);
    const json = await h.json('status');
    expect(json.doc.guest_shortfalls).toEqual([{ uuid: GUEST1, assigned: ['05.0004', '05.00ab', '06.0004', '06.00ab'], guest_gets: ['05.0004', '05.00ab'], missing: ['06.0004', '06.00ab'] }]);
  });

  it('says nothing when the guest gets all of it, or the kernel has no guest_matrix', async () => {
    const h = host();
    expect((await h.json('status')).doc.guest_shortfalls).toEqual([]);
    writeFileSync(join(h.root, `sys/devices/vfio_ap/matrix/${GUEST1}/guest_matrix`), '05.0004\n05.00ab\n06.0004\n06.00ab\n');
    expect((await h.run('status')).stdout).not.toContain('its guest gets');
  });
});
