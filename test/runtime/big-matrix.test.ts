// A guest with 512 APQNs or more. vfio_ap's matrix_show prints 8 bytes per
// APQN into the one page sysfs gives it, and sysfs hands out the first 4,095
// bytes (fs/sysfs/file.c sysfs_kf_seq_show): the cut ends in a whole
// `AA.DDDD`, so the text parses as a smaller matrix. Read as it is, the
// queues past the cut would look free, and a mask change could give them to
// the host while the guest runs. The tool reads such an mdev from its
// ap_config (6.10 and later); on a kernel without one, from the cut listing
// taken as an upper bound (every adapter past the last one shown).

import { describe, expect, it } from 'vitest';
import type { FakeHost } from '../../src/fakehost/builder.js';
import { IdSet } from '../../src/model/idset.js';
import { parseMatrix } from '../../src/sysfs/ap-host.js';
import { BINDINGS_COMPLETE, givenSimulatedHost } from '../support/sim-host.js';

const BIG = '6d4c3b2a-1f0e-4d9c-8b7a-695847362514';
const SMALL = '0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3';
const MATRIX = `devices/vfio_ap/matrix/${BIG}/matrix`;
const ADAPTERS = [1, 2, 3, 4, 5, 6, 7, 8];
const DOMAINS = Array.from({ length: 85 }, (_, d) => d);

/** Cards 1-8 with 85 domains each, all of them vfio_ap's, and one running guest that holds all 680 queues. */
function bigGuestHost(storeApmask: string): FakeHost {
  return {
    cards: ADAPTERS.map((adapter) => ({ adapter, hwtype: 11 })),
    domains: DOMAINS,
    masks: { apmask: IdSet.full().minus(IdSet.of(ADAPTERS)), aqmask: IdSet.full() },
    vfioAp: true,
    activeMdevs: [{ uuid: BIG, adapters: ADAPTERS, domains: DOMAINS }],
    store: `[masks]\napmask = ${storeApmask}\naqmask = 0-255\n\n[mdev.${BIG}]\nname = big\nadapters = 1-8\ndomains = 0-84\nstart = auto\n`,
  };
}

describe('the kernel shows a guest of 680 APQNs as a cut matrix', () => {
  it('sysfs hands out 4,095 bytes, ending in a whole APQN of adapter 7: read as it is, adapter 8 looks free', () => {
    const host = givenSimulatedHost(bigGuestHost('0,9-255'), '6.0');
    const text = host.kernel().read(MATRIX);
    expect(text.length).toBe(4095);
    expect(text.endsWith('\n07.0001')).toBe(true);
    expect(parseMatrix(text).adapters.ids()).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });
});

describe('the store gives adapter 8 back to the host while the big guest runs', () => {
  // 5.4: no ap_config and nothing in the kernel checks, the cut listing read as its upper bound; 6.0: read whole from ap_config.
  for (const [flavour, read] of [
    ['5.4', 'from its cut listing, as an upper bound'],
    ['6.0', 'whole, from ap_config'],
  ] as const) {
    it(`${flavour}: the hook reads its matrix ${read} and keeps adapter 8 out of the host pool`, async () => {
      const host = givenSimulatedHost(bigGuestHost('0,8-255'), flavour);
      const before = host.kernel().read('bus/ap/apmask');
      const r = await host.run(['--json', 'hook'], BINDINGS_COMPLETE);
      const report = JSON.parse(r.stdout);
      expect(report.errors).toEqual([]);
      expect(report.masks.kept_for_active_mdevs).toEqual([`08.0000 of ${BIG} (big): adapter 8 kept out of apmask`]);
      expect(report.mdevs).toEqual([{ uuid: BIG, name: 'big', outcome: 'already-active' }]);
      expect(host.kernel().read('bus/ap/apmask')).toBe(before);
    });

    it(`${flavour}: mask set --active apmask=+8 is a conflict (exit 3) naming the big guest for each of adapter 8's queues, its matrix read ${read}`, async () => {
      const host = givenSimulatedHost(bigGuestHost('0,9-255'), flavour);
      const before = host.kernel().read('bus/ap/apmask');
      const r = await host.run(['mask', 'set', '--active', 'apmask=+8']);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toContain('this mask change would create 85 conflict(s); nothing was changed');
      expect(r.stderr).toContain(`APQN 08.0054 (8.84) is in use by active mdev ${BIG}`);
      expect(host.kernel().read('bus/ap/apmask')).toBe(before);
    });
  }

  it('5.4: an mdev on an adapter before it still starts and stops (the cut listing bounds the big one, it does not stop the host)', async () => {
    const spec = bigGuestHost('0,9-255');
    const host = givenSimulatedHost(
      {
        ...spec,
        cards: [{ adapter: 0, hwtype: 11 }, ...spec.cards],
        masks: { apmask: IdSet.full().minus(IdSet.of([0, ...ADAPTERS])), aqmask: IdSet.full() },
        store: `[masks]\napmask = 9-255\naqmask = 0-255\n\n[mdev.${SMALL}]\nname = small\nadapters = 0\ndomains = 0\nstart = manual\n`,
      },
      '5.4',
    );
    const start = await host.run(['mdev', 'start', SMALL]);
    expect(start.code, start.stderr).toBe(0);
    expect(host.kernel().read(`devices/vfio_ap/matrix/${SMALL}/matrix`)).toBe('00.0000\n');
    const stop = await host.run(['mdev', 'stop', SMALL]);
    expect(stop.code, stop.stderr).toBe(0);
    expect(host.kernel().exists(`devices/vfio_ap/matrix/${SMALL}`)).toBe(false);
    expect(host.kernel().exists(`devices/vfio_ap/matrix/${BIG}`)).toBe(true);
  });

});
