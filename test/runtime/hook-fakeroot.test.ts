// The hook through the CLI against a fake root on disk (plain files, no
// kernel behind them): masks are written, the report is kept, and no host
// command runs; the hook says what it would have run.

import { describe, expect, it } from 'vitest';
import { GUEST1, GUEST2, GUEST3, THREE_GUESTS_STORE, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { IdSet } from '../../src/model/idset.js';
import { givenHost } from '../support/host.js';

const INTRUDER = 'deadbeef-0000-4000-8000-000000000001';
const BINDINGS = { ACTION: 'change', DEVPATH: '/devices/ap', BINDINGS: 'complete', COMPLETECOUNT: '1' };

describe('the hook on a fake root', () => {
  it('applies the store masks, would load vfio_ap and start the three guests, and reports it', async () => {
    const host = givenHost(threeGuestsHost(), { env: BINDINGS });
    const r = await host.run('hook');
    expect(r.code).toBe(0);
    expect(host.read('sys/bus/ap/apmask').trim()).toBe('0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff');
    expect(host.read('sys/bus/ap/aqmask').trim()).toBe('0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe');
    const report = JSON.parse(host.read('run/ap-persist/last-hook.json'));
    expect(report.event).toEqual({ action: 'change', devpath: '/devices/ap', bindings: 'complete', completecount: '1' });
    expect(report.vfio_ap).toBe('would-load');
    expect(report.mdevs.map((m: { uuid: string; outcome: string }) => [m.uuid, m.outcome])).toEqual([
      [GUEST1, 'would-start'],
      [GUEST2, 'would-start'],
      [GUEST3, 'would-start'],
    ]);
    expect(report.commands.map((c: { command: string }) => c.command)).toEqual([
      'modprobe vfio_ap',
      // All three passed: the target too, so it is active after the boot; one call, and no
      // question to systemd first (this boot's first hook: no unit of ours has run).
      `systemctl --no-block start ap-persist-mdevs.target ap-persist-mdev@${GUEST1}.service ap-persist-mdev@${GUEST2}.service ap-persist-mdev@${GUEST3}.service`,
    ]);
    expect(report.commands.every((c: { ran: boolean }) => !c.ran)).toBe(true);
    expect(r.stdout).toContain('not run under --root');
    // Marked before its first start call; the target only once systemd took its start, which never ran here.
    expect(host.exists('run/ap-persist/units-started')).toBe(true);
    expect(host.exists('run/ap-persist/target-started')).toBe(false);
    // status tells the report in words.
    const status = await host.run('status');
    expect(status.stdout).toMatch(/last hook: .*change \/devices\/ap BINDINGS=complete, exit 0/);
    expect(status.stdout).toContain(`mdev ${GUEST1} (guest1): would-start`);
  });

  it('a plain change without BINDINGS=complete does nothing', async () => {
    const host = givenHost(threeGuestsHost(), { env: { ACTION: 'change', DEVPATH: '/devices/ap' } });
    const before = host.snapshot();
    expect((await host.run('hook')).code).toBe(0);
    expect(host.snapshot()).toEqual(before);
  });

  it('skips an intruder auto mdev that shares 05.0004 and names it with the APQN', async () => {
    const store = `${THREE_GUESTS_STORE}
[mdev.${INTRUDER}]
name = intruder
adapters = 5
domains = 4
start = auto
`;
    const host = givenHost({ ...threeGuestsHost(), store }, { env: BINDINGS });
    const report = (await host.json('hook')).doc;
    const intruder = report.mdevs.find((m: { uuid: string }) => m.uuid === INTRUDER);
    expect(intruder).toMatchObject({ outcome: 'skipped', apqns: ['05.0004'] });
    expect(intruder.reason).toContain(GUEST1);
    expect(report.commands[1].command).not.toContain(INTRUDER);
  });

  it('never gives the host a queue an active mdev holds, and says so', async () => {
    const free = { apmask: IdSet.full().minus(IdSet.of([5, 6])), aqmask: IdSet.full().minus(IdSet.of([4, 0x47, 0xab, 0xff])) };
    // The store would give everything back to the host while guest1 runs on 05/06 x 04/ab.
    const store = THREE_GUESTS_STORE.replace('apmask = 0-4,7-255', 'apmask = 0-255').replace('aqmask = 0-3,5-70,72-170,172-254', 'aqmask = 0-255');
    const host = givenHost(
      { ...threeGuestsHost(), store, masks: free, vfioAp: true, activeMdevs: [{ uuid: GUEST1, adapters: [5, 6], domains: [4, 0xab] }] },
      { env: BINDINGS },
    );
    const r = await host.json('hook');
    expect(r.doc.masks.kept_for_active_mdevs).toEqual([
      `05.0004 of ${GUEST1} (guest1): adapter 5 kept out of apmask`,
      `06.0004 of ${GUEST1} (guest1): adapter 6 kept out of apmask`,
    ]);
    expect(host.read('sys/bus/ap/apmask').trim()).toBe(free.apmask.toKernelHex());
    expect(host.read('sys/bus/ap/aqmask').trim()).toBe(IdSet.full().toKernelHex());
    expect(r.doc.mdevs.find((m: { uuid: string }) => m.uuid === GUEST1).outcome).toBe('already-active');
  });

  it('run by its unit, it takes the event from the instance name and logs to the journal with priorities', async () => {
    const store = `${THREE_GUESTS_STORE}\n[mdev.${INTRUDER}]\nname = intruder\nadapters = 5\ndomains = 4\nstart = auto\n`;
    // systemd's environment: no udev properties, stdout connected to the journal.
    const host = givenHost({ ...threeGuestsHost(), store }, { journal: true });
    const r = await host.run('hook', '--event', 'change-7');
    expect(r.code).toBe(1);
    const report = JSON.parse(host.read('run/ap-persist/last-hook.json'));
    expect(report.event).toEqual({ action: 'change', devpath: '/devices/ap', bindings: 'complete', completecount: '7' });
    const lines = r.stdout.split('\n');
    // One line per mdev with its outcome; the refused one at error priority (3), with its reason.
    expect(lines).toContain(`<6>  mdev ${GUEST1} (guest1): would-start`);
    expect(lines.find((l) => l.includes(INTRUDER))).toMatch(new RegExp(`^<3>  mdev ${INTRUDER} \\(intruder\\): skipped - APQN 05\\.0004`));

    const add = await host.json('hook', '--event', 'add');
    expect(add.doc.event).toEqual({ action: 'add', devpath: '/bus/ap' });
  });

  it('refuses an event name its rule never gives (exit 2), changing nothing', async () => {
    const host = givenHost(threeGuestsHost());
    const before = host.snapshot();
    const r = await host.run('hook', '--event', 'remove');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--event: unknown AP bus event 'remove'");
    expect(host.snapshot()).toEqual(before);
  });

  it('a broken store changes nothing, exits 2 (bad input) and reports why', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: THREE_GUESTS_STORE.replace('adapters = 5\n', 'adapters = 5-3\n') }, { env: BINDINGS });
    const sysBefore = [...host.snapshot()].filter(([k]) => k.startsWith('sys/'));
    const r = await host.run('hook');
    expect(r.code).toBe(2);
    expect([...host.snapshot()].filter(([k]) => k.startsWith('sys/'))).toEqual(sysBefore);
    const report = JSON.parse(host.read('run/ap-persist/last-hook.json'));
    expect(report.errors[0]).toMatch(/ap-persist\.conf:\d+: range '5-3' is reversed/);
    expect(report.commands).toEqual([]);
  });
});

describe('protecting active mdevs at scale', () => {
  it('a host that already leaked many APQNs of one mdev does not hide another mdev’s APQN', async () => {
    const { protectActiveMdevs } = await import('../../src/runtime/masks.js');
    const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
    // M1 holds 40 adapters x 256 domains that the host already owns (a 5.4 kernel let it happen);
    // M2 holds 100.0000, free now. The store would give everything to the host.
    const current = { apmask: IdSet.of(range(0, 39)), aqmask: IdSet.full() };
    const active = [
      { uuid: 'm1', adapters: IdSet.of(range(0, 39)), domains: IdSet.full() },
      { uuid: 'm2', adapters: IdSet.of([100]), domains: IdSet.of([0]) },
    ];
    const { target, kept } = protectActiveMdevs({ apmask: IdSet.full(), aqmask: IdSet.full() }, current, active);
    expect(target.apmask.has(100)).toBe(false);
    expect(kept).toEqual([{ apqn: '64.0000', mdev: 'm2', kept: 'adapter 100 kept out of apmask' }]);
  });

  it('on 6.19+ kernels an added adapter or domain that any mdev holds is kept out, whole', async () => {
    const { protectActiveMdevs } = await import('../../src/runtime/masks.js');
    // guest2 holds 05.0047 and 05.00ff; the host owns adapters 0-4 and domains 0-70.
    const current = { apmask: IdSet.of([0, 1, 2, 3, 4]), aqmask: IdSet.of(Array.from({ length: 71 }, (_, i) => i)) };
    const active = [{ uuid: 'guest2', adapters: IdSet.of([5]), domains: IdSet.of([0x47, 0xff]) }];
    // The store adds domain 0x47 and adapter 7: no APQN of guest2 would go to the host (adapter 5 stays out)...
    const wanted = { apmask: IdSet.of([0, 1, 2, 3, 4, 7]), aqmask: current.aqmask.union(IdSet.of([0x47])) };
    const apqnRule = protectActiveMdevs(wanted, current, active, 'apqn');
    expect(apqnRule.kept).toEqual([]);
    // ...but 6.19's check refuses any added domain an mdev holds: 0x47 stays out, adapter 7 goes to the host.
    const idRule = protectActiveMdevs(wanted, current, active, 'id');
    expect(idRule.target.aqmask.has(0x47)).toBe(false);
    expect(idRule.target.apmask.has(7)).toBe(true);
    expect(idRule.kept).toEqual([{ apqn: '.0047', mdev: 'guest2', kept: 'domain 71 kept out of aqmask (the kernel refuses to add a domain an mdev holds)' }]);
  });
});
