// What an mdev holds while mdevctl writes its attributes: vfio_ap checks each
// assign_* write on its own, so an APQN assigned and later unassigned (or
// replaced by an ap_config) must be free too. s390-tools' ap-check refuses
// those (it ignores unassign_*); test/interop/ap-check-differential.test.ts
// compares with the real one.

import { describe, expect, it } from 'vitest';
import { IdSet } from '../../src/model/idset.js';
import { mdevPath, PASSTHROUGH_CREATE } from '../../src/sysfs/ap-host.js';
import { SimKernel } from '../../src/sysfs/sim-kernel.js';
import { givenHost } from '../support/host.js';
import { ACTIVE, callout, exampleHost, GUEST1, GUEST1_STORE, GUEST2, GUEST3 } from './support.js';

type Attr = Record<string, string>;
const json = (start: 'auto' | 'manual', attrs: Attr[]): string => JSON.stringify({ mdev_type: 'vfio_ap-passthrough', start, attrs });
const apConfig = (adapter: number, domain: number): string => [IdSet.of([adapter]), IdSet.of([domain]), IdSet.empty()].map((m) => m.toKernelHex()).join(',');

describe('the matrices an mdev holds on the way to its own', () => {
  it('the kernel refuses the assign that would share an APQN, even if a later unassign drops it', () => {
    const kernel = new SimKernel({ kernel: '6.0', cards: [1, 2].map((adapter) => ({ adapter, hwtype: 13 })), domains: [6, 9], vfioAp: true, apmask: IdSet.empty(), aqmask: IdSet.empty() });
    kernel.write(PASSTHROUGH_CREATE, GUEST1);
    kernel.write(mdevPath(GUEST1, 'assign_adapter'), '1');
    kernel.write(mdevPath(GUEST1, 'assign_domain'), '6');
    kernel.write(PASSTHROUGH_CREATE, GUEST2);
    kernel.write(mdevPath(GUEST2, 'assign_adapter'), '1');
    expect(() => kernel.write(mdevPath(GUEST2, 'assign_domain'), '6')).toThrow(/EADDRINUSE/);
  });

  it('define auto: assign 1 x 6,9 then unassign 6 holds guest1\'s 1.6 on the way', async () => {
    const host = givenHost(exampleHost({ store: GUEST1_STORE }));
    const attrs: Attr[] = [{ assign_adapter: '1' }, { assign_domain: '6' }, { assign_domain: '9' }, { unassign_domain: '6' }];
    const r = await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST2 }, json('auto', attrs));
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')).toEqual([
      `refused to define mdev ${GUEST2}:`,
      `  APQN 01.0006 (1.6) is defined for autostart by ${GUEST1} (guest1)`,
      '  (its attributes assign APQNs that a later unassign_* or ap_config takes away again: vfio_ap checks each assign_* write on its own)',
      expect.stringContaining('give the mdev other APQNs'),
      '',
    ]);
  });

  it('define auto: an ap_config after a conflicting assign does not undo it', async () => {
    const host = givenHost(exampleHost({ store: GUEST1_STORE }));
    const attrs: Attr[] = [{ assign_adapter: '1' }, { assign_domain: '6' }, { ap_config: apConfig(1, 7) }];
    const r = await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST2 }, json('auto', attrs));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`APQN 01.0006 (1.6) is defined for autostart by ${GUEST1} (guest1)`);
  });

  it('define auto: unassigning what was never anyone else\'s is fine', async () => {
    const host = givenHost(exampleHost({ store: GUEST1_STORE }));
    const attrs: Attr[] = [{ assign_adapter: '1' }, { assign_domain: '7' }, { assign_domain: '9' }, { unassign_domain: '9' }];
    expect(await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST2 }, json('auto', attrs))).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it("define auto: another auto definition's unassigned APQN is held while mdevctl starts it", async () => {
    const host = givenHost(
      exampleHost({
        files: { [`etc/mdevctl.d/matrix/${GUEST3}`]: json('auto', [{ assign_adapter: '1' }, { assign_domain: '9' }, { assign_domain: '7' }, { unassign_domain: '7' }]) },
      }),
    );
    const r = await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST2 }, json('auto', [{ assign_adapter: '1' }, { assign_domain: '7' }]));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`APQN 01.0007 (1.7) is defined for autostart by ${GUEST3}`);
  });

  it('start: an unassigned APQN an active mdev holds is refused before mdevctl writes anything', async () => {
    const host = givenHost(exampleHost({ activeMdevs: [{ uuid: ACTIVE, adapters: [1], domains: [6] }] }));
    const attrs: Attr[] = [{ assign_adapter: '1' }, { assign_domain: '6' }, { assign_domain: '7' }, { unassign_domain: '6' }];
    const r = await callout(host.root, { event: 'pre', action: 'start', uuid: GUEST2 }, json('manual', attrs));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`APQN 01.0006 (1.6) is in use by active mdev ${ACTIVE}`);
  });
});
