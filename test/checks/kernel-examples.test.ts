// The kernel documentation's three guest configurations (vfio-ap.rst,
// "AP and SIE"): examples 1 and 2 are valid, example 3 shares APQN (1,6).

import { describe, expect, it } from 'vitest';
import type { FakeHost } from '../../src/fakehost/builder.js';
import { givenHost } from '../support/host.js';

const GUEST1 = '0e3e1a54-7a4f-4d5c-9f0a-1c2b3d4e5f60';
const GUEST2 = '7b9c2d11-3e4f-4a5b-8c6d-7e8f9a0b1c2d';

// Adapters 1-4 and domains 5-7 are free for vfio_ap; everything else is the host's.
function hostWith(guest2: { adapters: string; domains: string; start?: string }): FakeHost {
  return {
    cards: [1, 2, 3, 4].map((adapter) => ({ adapter, hwtype: 12 })),
    domains: [5, 6, 7],
    store: `[masks]
apmask = 0,5-255
aqmask = 0-4,8-255

[mdev.${GUEST1}]
name = guest1
adapters = 1,2
domains = 5,6
start = auto

[mdev.${GUEST2}]
name = guest2
adapters = ${guest2.adapters}
domains = ${guest2.domains}
start = ${guest2.start ?? 'auto'}
`,
  };
}

describe('the kernel documentation examples', () => {
  it('example 1 (guest2: adapters 1,2 domain 7) passes check', async () => {
    const host = givenHost(hostWith({ adapters: '1,2', domains: '7' }));
    const r = await host.json('check', '--persistent');
    expect(r.code).toBe(0);
    expect(r.doc.ok).toBe(true);
    expect(r.doc.conflicts).toEqual([]);
  });

  it('example 2 (guest2: adapters 3,4 domains 5,6) passes check', async () => {
    const host = givenHost(hostWith({ adapters: '3,4', domains: '5,6' }));
    expect((await host.run('check')).code).toBe(0);
  });

  it('example 3 in a hand-edited store makes check exit 3 naming 01.0006 and both UUIDs', async () => {
    const host = givenHost(hostWith({ adapters: '1', domains: '6,7' }));
    const text = await host.run('check');
    expect(text.code).toBe(3);
    expect(text.stdout).toContain('APQN 01.0006 (1.6)');
    expect(text.stdout).toContain(`${GUEST1} (guest1)`);
    expect(text.stdout).toContain(`${GUEST2} (guest2)`);
    const json = await host.json('check');
    expect(json.code).toBe(3);
    expect(json.doc.ok).toBe(false);
    expect(json.doc.conflicts).toEqual([
      {
        scope: 'persistent',
        kind: 'mdev-mdev',
        adapter: 1,
        domain: 6,
        apqn: '01.0006',
        owners: [GUEST1, GUEST2],
        message: expect.stringContaining('01.0006'),
      },
    ]);
  });

  it('example 3 is refused at mdev define (auto), allowed as manual, refused again when made auto', async () => {
    const host = givenHost(hostWith({ adapters: '3', domains: '7' }));
    const before = host.snapshot();
    const NEW = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
    const refused = await host.run('mdev', 'define', NEW, '--adapters', '1', '--domains', '6,7', '--name', 'guest3');
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('APQN 01.0006 (1.6)');
    expect(refused.stderr).toContain(GUEST1);
    expect(host.snapshot()).toEqual(before);

    const json = await host.json('mdev', 'define', NEW, '--adapters', '1', '--domains', '6,7');
    expect(json.code).toBe(3);
    expect(json.doc.conflicts.map((c: { apqn: string }) => c.apqn)).toEqual(['01.0006']);

    const manual = await host.run('mdev', 'define', NEW, '--adapters', '1', '--domains', '6,7', '--start', 'manual');
    expect(manual.code).toBe(0);
    expect(host.storeText()).toContain(`[mdev.${NEW}]`);

    const afterManual = host.snapshot();
    const toAuto = await host.run('mdev', 'modify', NEW, '--start', 'auto');
    expect(toAuto.code).toBe(3);
    expect(toAuto.stderr).toContain('APQN 01.0006 (1.6)');
    expect(host.snapshot()).toEqual(afterManual);
  });

  it('manual mdevs may overlap each other and anything else', async () => {
    const host = givenHost(hostWith({ adapters: '1', domains: '6,7', start: 'manual' }));
    expect((await host.run('check')).code).toBe(0);
  });

  it('an auto mdev on a host-owned APQN is a mdev-host conflict', async () => {
    const host = givenHost(hostWith({ adapters: '5', domains: '8' }));
    const r = await host.json('check', '--persistent');
    expect(r.code).toBe(3);
    expect(r.doc.conflicts[0]).toMatchObject({ kind: 'mdev-host', apqn: '05.0008', owners: ['host', GUEST2] });
  });
});
