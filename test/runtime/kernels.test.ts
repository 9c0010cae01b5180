// The three-guest host on each kernel flavour, with the events that flavour
// really sends: a card added while the guests run, a rescan, no event at all,
// and 6.19's stricter mask checks. Whatever the kernel allows, no running
// guest's APQN goes to the host, and every mask write the hook makes is one
// the kernel accepts.

import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GUEST1, GUEST2, GUEST3, THREE_GUESTS_STORE, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { KERNEL_FLAVOURS, type KernelEvent, type SimKernel } from '../../src/sysfs/sim-kernel.js';
import { onFakeClock } from '../support/clock.js';
import { BINDINGS_COMPLETE, givenSimulatedHost, type SimHost, type SimHostOptions } from '../support/sim-host.js';

const GUESTS = [GUEST1, GUEST2, GUEST3];

/** The udev properties of a kernel event, as the hook would get them. */
const properties = (e: KernelEvent): Record<string, string> => ({ ACTION: e.action, DEVPATH: e.devpath, ...e.properties });

/** Runs the hook for every BINDINGS=complete the kernel sent; returns their reports. */
async function deliverBindings(host: SimHost, events: KernelEvent[]): Promise<{ code: number; report: any }[]> {
  const out: { code: number; report: any }[] = [];
  for (const e of events.filter((x) => x.devpath === '/devices/ap' && x.properties['BINDINGS'] === 'complete')) {
    const r = await host.run(['--json', 'hook'], properties(e));
    out.push({ code: r.code, report: JSON.parse(r.stdout) });
  }
  return out;
}

/** Every APQN of a running guest is still the guest's: not in the host pool, still in its matrix. */
function expectGuestsKeepTheirQueues(kernel: SimKernel): void {
  const state = kernel.state();
  const apmask = BigInt(state.apmask.trim());
  const aqmask = BigInt(state.aqmask.trim());
  const bit = (mask: bigint, id: number): boolean => ((mask >> BigInt(255 - id)) & 1n) === 1n;
  for (const m of state.mdevs) {
    if (m.parent !== 'matrix' || !m.running) continue;
    for (const a of m.adapters) for (const d of m.domains) expect(bit(apmask, a) && bit(aqmask, d), `${m.uuid} ${a}.${d}`).toBe(false);
  }
}

async function bootedWithGuestsRunning(flavour: (typeof KERNEL_FLAVOURS)[number], options: SimHostOptions = {}): Promise<SimHost> {
  const host = givenSimulatedHost(threeGuestsHost(), flavour, options);
  expect((await host.run(['hook'], BINDINGS_COMPLETE)).code).toBe(0);
  for (const uuid of GUESTS) host.kernel().setGuestRunning(uuid, true);
  host.kernel().takeEvents();
  return host;
}

for (const flavour of KERNEL_FLAVOURS) {
  describe(`a ${flavour} kernel`, () => {
    it('a card added while the guests run: the events this kernel sends change nothing the guests hold', async () => {
      const host = await bootedWithGuestsRunning(flavour);
      const before = host.kernel().writes.length;
      host.kernel().addCard(7, 11);
      // 6.19 reports bindings complete only at the end of the bus scan that follows.
      if (host.kernel().scanPending) host.kernel().scan();
      const events = host.kernel().takeEvents();
      const hooks = await deliverBindings(host, events);
      if (flavour === '5.4') expect(hooks).toEqual([]); // no BINDINGS=complete before 5.11
      else expect(hooks.length).toBeGreaterThan(0);
      for (const h of hooks) {
        expect(h.report.errors, JSON.stringify(h.report)).toEqual([]);
        expect(h.report.mdevs.map((m: { outcome: string }) => m.outcome)).toEqual(['already-active', 'already-active', 'already-active']);
      }
      // Card 7 is the host's by the store (apmask 0-4,7-255): nothing to write, and nothing was.
      expect(host.kernel().writes.slice(before)).toEqual([]);
      expectGuestsKeepTheirQueues(host.kernel());
      expect(host.kernel().state().mdevs.filter((m) => m.parent === 'matrix').map((m) => m.uuid).sort()).toEqual([...GUESTS].sort());
    });

    it('the store gives the host domain 0x47 while guest2 and guest3 run on it: every write the hook makes is accepted', async () => {
      const store = THREE_GUESTS_STORE.replace('aqmask = 0-3,5-70,72-170,172-254', 'aqmask = 0-3,5-170,172-254');
      const host = await bootedWithGuestsRunning(flavour);
      writeFileSync(`${host.root}/etc/ap-persist/ap-persist.conf`, store);
      const r = await host.run(['--json', 'hook'], { ...BINDINGS_COMPLETE, COMPLETECOUNT: '2' });
      const report = JSON.parse(r.stdout);
      // No write refused (on 6.19 one adding domain 0x47 would be, EBUSY): the hook knew the kernel's rule.
      expect(report.errors).toEqual([]);
      expect(host.kernel().refusedWrites).toEqual([]);
      expect(report.masks.applied).toBe(true);
      const aqmask = BigInt(host.kernel().state().aqmask.trim());
      const hostHas0x47 = ((aqmask >> BigInt(255 - 0x47)) & 1n) === 1n;
      if (flavour === '6.19') {
        // 6.19 refuses adding a domain any mdev holds, whatever the adapters: the hook keeps it out.
        expect(report.masks.kept_for_active_mdevs).toEqual([`.0047 of ${GUEST2} (guest2): domain 71 kept out of aqmask (the kernel refuses to add a domain an mdev holds)`]);
        expect(hostHas0x47).toBe(false);
      } else {
        // Cards 5 and 6 stay out of apmask, so 0x47 gives the host no guest's APQN: it gets the domain.
        expect(report.masks.kept_for_active_mdevs).toEqual([]);
        expect(hostHas0x47).toBe(true);
      }
      expectGuestsKeepTheirQueues(host.kernel());
    });

    it('no event at all: the wait runs the hook itself and the guests get their mdevs', async () => {
      const host = givenSimulatedHost(threeGuestsHost(), flavour);
      // Its grace period (a third of --timeout) on the fake clock: test/support/clock.ts.
      const r = await onFakeClock(() => host.run(['wait', '--timeout', '3']));
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('no BINDINGS=complete event seen; running the hook now');
      expect(host.kernel().state().mdevs.filter((m) => m.parent === 'matrix')).toHaveLength(3);
    }, 20_000);
  });
}

describe('a kernel with 6.19\'s mask checks but no bindings_complete_count (a backport)', () => {
  it('the first write is refused (EBUSY), the hook plans again with the whole-ID rule, and the rest is accepted', async () => {
    const host = await bootedWithGuestsRunning('6.19', { kernel: { bindingsCompleteCountAttr: false } });
    writeFileSync(`${host.root}/etc/ap-persist/ap-persist.conf`, THREE_GUESTS_STORE.replace('aqmask = 0-3,5-70,72-170,172-254', 'aqmask = 0-3,5-170,172-254'));
    const r = await host.run(['--json', 'hook'], { ...BINDINGS_COMPLETE, COMPLETECOUNT: '2' });
    const report = JSON.parse(r.stdout);
    expect(report.errors).toEqual([]);
    expect(host.kernel().refusedWrites.map((w) => [w.path, w.errno])).toEqual([['bus/ap/aqmask', 'EBUSY']]);
    expect(report.masks.kept_for_active_mdevs).toEqual([`.0047 of ${GUEST2} (guest2): domain 71 kept out of aqmask (the kernel refuses to add a domain an mdev holds)`]);
    expectGuestsKeepTheirQueues(host.kernel());
  });
});

describe('a 6.19 kernel with a driver_override set', () => {
  it('the hook writes no mask (the kernel would refuse every one) and names the queue to clear', async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.19');
    // An admin handed 05.0004 to a driver by name; 6.19 then refuses every mask write (EINVAL).
    host.kernel().write('bus/ap/devices/05.0004/driver_override', 'cex4queue');
    const r = await host.run(['--json', 'hook'], BINDINGS_COMPLETE);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.errors[0]).toContain('mask writes skipped: queue(s) 05.0004 (cex4queue) have driver_override set');
    expect(host.kernel().writes.filter((w) => w.path.startsWith('bus/ap/a'))).toEqual([]);
  });
});
