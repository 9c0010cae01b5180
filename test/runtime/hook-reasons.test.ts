// The hook says why an auto mdev was not started, truthfully: another auto
// mdev that starts first, an active mdev, or the host's masks (and why they
// are so). A skipped or failed auto mdev fails the hook and the wait.

import { describe, expect, it } from 'vitest';
import { GUEST1, GUEST2, THREE_GUESTS_STORE, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { IdSet } from '../../src/model/idset.js';
import { onFakeClock } from '../support/clock.js';
import { givenHost } from '../support/host.js';
import { BINDINGS_COMPLETE, givenSimulatedHost } from '../support/sim-host.js';

const INTRUDER = 'deadbeef-0000-4000-8000-000000000001';
const STRANGER = 'deadbeef-0000-4000-8000-000000000002';
const FREE = { apmask: IdSet.full().minus(IdSet.of([5, 6])), aqmask: IdSet.full().minus(IdSet.of([4, 0x47, 0xab, 0xff])) };
/** An auto mdev after guest1 in the store that wants guest1's 05.0004. */
const WITH_INTRUDER = `${THREE_GUESTS_STORE}\n[mdev.${INTRUDER}]\nname = intruder\nadapters = 5\ndomains = 4\nstart = auto\n`;

type Outcome = { uuid: string; outcome: string; reason?: string; apqns?: string[] };
const outcomeOf = (report: { mdevs: Outcome[] }, uuid: string): Outcome => report.mdevs.find((m) => m.uuid === uuid)!;

describe('why the hook skipped an auto mdev', () => {
  it('nothing active: it names the auto mdev that starts first and the APQN, never "active mdevs"; exit 1', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: WITH_INTRUDER }, { env: BINDINGS_COMPLETE });
    const r = await host.json('hook');
    expect(r.code).toBe(1);
    expect(r.doc.exit_code).toBe(1);
    expect(outcomeOf(r.doc, INTRUDER)).toEqual({
      uuid: INTRUDER,
      name: 'intruder',
      outcome: 'skipped',
      apqns: ['05.0004'],
      reason: `APQN 05.0004 (5.4) is also assigned to auto mdev ${GUEST1} (guest1), which comes earlier in the store and is started first; only one of them can have it ('ap-persist check' lists every such APQN)`,
    });
    expect(outcomeOf(r.doc, GUEST1).outcome).toBe('would-start');
    const status = await host.run('status');
    expect(status.stdout).toContain(`mdev ${INTRUDER} (intruder): skipped - APQN 05.0004 (5.4) is also assigned to auto mdev ${GUEST1} (guest1)`);
    expect(status.stdout).not.toContain('active mdevs');
  });

  it('an active mdev holds the APQN: it names that mdev as active', async () => {
    const host = givenHost(
      { ...threeGuestsHost(), store: WITH_INTRUDER, masks: FREE, vfioAp: true, activeMdevs: [{ uuid: GUEST1, adapters: [5, 6], domains: [4, 0xab] }, { uuid: STRANGER, adapters: [5], domains: [0x47] }] },
      { env: BINDINGS_COMPLETE },
    );
    const r = await host.json('hook');
    expect(r.code).toBe(1);
    expect(outcomeOf(r.doc, INTRUDER).reason).toBe(`APQN 05.0004 (5.4) is in use by active mdev ${GUEST1} (guest1)`);
    // guest2 wants 05.0047, which an mdev the store does not know holds.
    expect(outcomeOf(r.doc, GUEST2)).toMatchObject({ outcome: 'skipped', apqns: ['05.0047'], reason: `APQN 05.0047 (5.71) is in use by active mdev ${STRANGER}` });
  });

  it("the host's: it says which masks give it to the host, and that the boot's masks say so", async () => {
    // The store gives the host adapter 5 and domain 4: guest1's 05.0004 is the host's.
    const store = THREE_GUESTS_STORE.replace('apmask = 0-4,7-255', 'apmask = 0-5,7-255').replace('aqmask = 0-3,5-70,72-170,172-254', 'aqmask = 0-70,72-170,172-254');
    const host = givenHost({ ...threeGuestsHost(), store }, { env: BINDINGS_COMPLETE });
    const r = await host.json('hook');
    expect(r.code).toBe(1);
    expect(outcomeOf(r.doc, GUEST1)).toMatchObject({
      outcome: 'skipped',
      apqns: ['05.0004'],
      reason: "APQN 05.0004 (5.4) is the host's: the active apmask holds adapter(s) 5 and aqmask domain(s) 4; the boot's masks say so ('ap-persist check' reports it; 'ap-persist suggest-masks' shows masks that free it)",
    });
    expect(outcomeOf(r.doc, GUEST2).outcome).toBe('would-start');
  });

  it("the host's because the store sets no mask: it says the kernel's stays", async () => {
    const store = THREE_GUESTS_STORE.replace('aqmask = 0-3,5-70,72-170,172-254\n', '').replace('apmask = 0-4,7-255', 'apmask = 0-5,7-255');
    const host = givenHost({ ...threeGuestsHost(), store }, { env: BINDINGS_COMPLETE });
    const r = await host.json('hook');
    expect(r.code).toBe(1);
    expect(outcomeOf(r.doc, GUEST2)).toMatchObject({
      outcome: 'skipped',
      apqns: ['05.0047', '05.00ff'],
      reason: "APQNs 05.0047 (5.71), 05.00ff (5.255) are the host's: the active apmask holds adapter(s) 5 and aqmask domain(s) 71,255; the boot sets no aqmask, so the kernel's stays ('ap-persist suggest-masks' shows masks that free it)",
    });
  });

  it('vfio_ap not loading fails every auto mdev with the modprobe error', async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0');
    host.kernel().failLoad('vfio_ap');
    const r = await host.run(['--json', 'hook'], BINDINGS_COMPLETE);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(outcomeOf(report, GUEST1)).toMatchObject({ outcome: 'failed', reason: expect.stringMatching(/^vfio_ap is not loaded \(modprobe vfio_ap failed.*\), so no mdev can be made$/) });
  });
});

describe('a skipped auto mdev fails the boot units', () => {
  it('hook exits 1, and wait exits 1 naming the skipped mdev with the real cause, the others up', async () => {
    const host = givenSimulatedHost({ ...threeGuestsHost(), store: WITH_INTRUDER }, '6.0');
    const hook = await host.run(['hook'], BINDINGS_COMPLETE);
    expect(hook.code).toBe(1);
    expect(hook.stdout).toContain(`mdev ${INTRUDER} (intruder): skipped - APQN 05.0004 (5.4) is also assigned to auto mdev ${GUEST1} (guest1)`);
    expect(host.kernel().exists(`devices/vfio_ap/matrix/${GUEST1}`)).toBe(true);
    expect(host.kernel().exists(`devices/vfio_ap/matrix/${INTRUDER}`)).toBe(false);
    const wait = await onFakeClock(() => host.run(['wait', '--timeout', '5']));
    expect(wait.code).toBe(1);
    expect(wait.stderr).toContain(`mdev ${INTRUDER} (intruder) is not up: APQN 05.0004 (5.4) is also assigned to auto mdev ${GUEST1} (guest1)`);
    expect(wait.stderr).toContain('not ready: 3 of 4 auto mdev(s) up');
  }, 20_000);

  it('wait that runs the hook itself (no event) exits 1 too', async () => {
    const host = givenSimulatedHost({ ...threeGuestsHost(), store: WITH_INTRUDER }, '6.0');
    // Its grace period (a third of --timeout) on the fake clock: test/support/clock.ts.
    const wait = await onFakeClock(() => host.run(['wait', '--timeout', '3']));
    expect(wait.code).toBe(1);
    expect(wait.stdout).toContain('running the hook now');
    expect(wait.stderr).toContain(`mdev ${INTRUDER} (intruder) is not up: APQN 05.0004 (5.4) is also assigned to auto mdev ${GUEST1} (guest1)`);
  }, 20_000);
});
