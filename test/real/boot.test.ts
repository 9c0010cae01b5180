// The real boot: the kernel documentation's three-guest host boots Debian
// with systemd as PID 1 (systemd-nspawn), the simulated kernel at /sys
// (FUSE), ap-persist installed by its own install, udev events delivered as
// udevd delivers them (real udevadm rules, RUN programs inside the
// distribution's udevd sandbox), real mdevctl, and a fake libvirtd that
// records when it started and which mdevs it found.

import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect } from 'vitest';
import { THREE_GUESTS_STORE, GUEST1, GUEST2, GUEST3, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { mdevUnit } from '../../src/generate/unit-names.js';
import type { SimMdevState } from '../../src/sysfs/sim-kernel.js';
import { bootHost, TOOL, type AppliedEvent, type BootedHost } from '../support/booted-host.js';
import { requireSimSysfs } from '../support/sim-sysfs/mount.js';
import { itWith, type Requirement } from '../support/real-tools.js';

const tools = requireSimSysfs('systemd-nspawn', 'debootstrap', 'nsenter', 'unshare', 'setpriv', 'flock');
const req: Requirement = process.getuid?.() === 0 ? tools : { missing: [tools.missing, 'not root (nspawn needs it)'].filter(Boolean).join('; ') };

const GUESTS = [GUEST1, GUEST2, GUEST3];
const MTTY_AUTO = 'aaaaaaaa-0000-4000-8000-00000000a770';
/** An mdevctl-only auto vfio_ap definition that shares 05.0004 with guest1: our callout must refuse it. */
const CLASH = 'bbbbbbbb-0000-4000-8000-0000000c1a54';

const mdevctlJson = (type: string, attrs: Record<string, string>[] = []): string => JSON.stringify({ mdev_type: type, start: 'auto', attrs });
const MDEVCTL_FILES = { [`etc/mdevctl.d/mtty/${MTTY_AUTO}`]: mdevctlJson('mtty-2') };

/** Where bench reads the figures (npm run bench sets it). */
const TIMINGS = process.env['AP_PERSIST_BOOT_TIMINGS'];
const timings: Record<string, number> = {};

const booted: BootedHost[] = [];
afterEach(async () => {
  for (const h of booted.splice(0)) await h.shutdown().catch(() => undefined);
  await Promise.resolve();
  if (TIMINGS) writeFileSync(TIMINGS, `${JSON.stringify(timings, null, 2)}\n`);
});

async function boot(opts: Partial<Parameters<typeof bootHost>[0]> = {}): Promise<BootedHost> {
  const host = await bootHost({ host: threeGuestsHost(), kernel: '6.0', store: THREE_GUESTS_STORE, ...opts });
  booted.push(host);
  return host;
}

const vfioMdevs = (h: BootedHost): Extract<SimMdevState, { parent: 'matrix' }>[] =>
  h.sim.state().mdevs.filter((m): m is Extract<SimMdevState, { parent: 'matrix' }> => m.parent === 'matrix');

/**
 * Waits (bounded) until the fake libvirtd has started. The time from the
 * event is recorded for `npm run bench`, which holds it to its target; tests
 * assert what happened, never how fast.
 */
async function libvirtStarted(h: BootedHost, event: AppliedEvent, name: string): Promise<void> {
  const started = await h.container.waitFor(() => h.libvirtd().startedAt, { timeoutMs: 120_000, intervalMs: 20, what: 'libvirtd to start' });
  timings[name] = started - event.at;
}

/** Every RUN program of the event ended as udevd wants: exit 0, no signal. */
function expectCleanRuns(event: AppliedEvent): void {
  for (const p of event.programs) {
    expect({ argv: p.argv, result: p.result, how: p.exitCode, status: p.exitStatus }, p.stderr).toEqual({ argv: p.argv, result: 'success', how: 'exited', status: '0' });
  }
}

/** The journal of a unit, for messages. */
const journal = (h: BootedHost, unit: string): Promise<string> => h.container.journal(unit);

describe('the real boot of the three-guest host', () => {
  itWith(
    req,
    'the event: masks, vfio_ap and all three mdevs before libvirt; a second event while guests run changes nothing',
    async () => {
      // Booted as far as libvirtd, which waits behind ap-persist-wait.service for the AP bus.
      const h = await boot({ files: MDEVCTL_FILES });
      expect(h.libvirtd().startedAt).toBeUndefined();

      const event = await h.bindingsComplete(1);
      // udev wrote the masks and loaded vfio_ap with its builtins; the only program it ran is systemctl.
      // The first event queues the target behind the hook: systemd starts the mdev units once it exited.
      expect(event.runs).toEqual(['kmod load vfio_ap', '/usr/bin/systemctl --no-block start ap-persist-hook@change-1.service ap-persist-mdevs.target']);
      // The module load's own events (the matrix device's add, the mdev core's MDEV_STATE=registered)
      // each ran mdevctl's autostart, inside udevd's sandbox like our systemctl.
      expect(event.programs.filter((p) => p.argv.join(' ').includes('mdevctl start-parent-mdevs matrix'))).toHaveLength(2);
      expectCleanRuns(event);
      await libvirtStarted(h, event, 'event_to_libvirt_ms');
      expect(h.libvirtd().mdevsAtStart).toEqual([...GUESTS].sort());
      const state = h.sim.state();
      expect(state.apmask).toBe('0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff');
      expect(state.aqmask).toBe('0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe');
      expect(vfioMdevs(h).map((m) => [m.uuid, m.adapters, m.domains]).sort()).toEqual(
        [
          [GUEST1, [5, 6], [4, 0xab]],
          [GUEST2, [5], [0x47, 0xff]],
          [GUEST3, [6], [0x47, 0xff]],
        ].sort(),
      );
      expect(await h.activeState('ap-persist-mdevs.target', 'ap-persist-wait.service', 'ap-persist-hook@change-1.service')).toEqual(['active', 'active', 'inactive']);
      expect((await h.container.systemctl('--failed', '--no-legend', '--plain')).stdout.trim(), await h.container.journal()).toBe('');
      // One journal line per mdev with its outcome.
      const hookLog = await journal(h, 'ap-persist-hook@change-1.service');
      // mdevctl's own autostart (the matrix device's events) and the hook race for them; either made each one.
      for (const [uuid, name] of [[GUEST1, 'guest1'], [GUEST2, 'guest2'], [GUEST3, 'guest3']]) expect(hookLog).toMatch(new RegExp(`mdev ${uuid} \\(${name}\\): (started|already-active)`));
      // Each has its unit up, so systemd removes it after libvirt at shutdown.
      expect(await h.activeState(...GUESTS.map(mdevUnit))).toEqual(['active', 'active', 'active']);
      // systemd marks each unit up in /run (its RuntimeDirectory=): a later event that changes nothing asks it nothing.
      expect((await h.container.exec(['ls', '/run/ap-persist/units'])).stdout.trim().split('\n').sort()).toEqual([...GUESTS].sort());

      // mdevctl's autostart of the matrix parent, inside udevd's sandbox: our callout runs there and refuses
      // an mdevctl-only auto mdev that shares 05.0004 with the running guest1.
      await h.container.writeFile(`/etc/mdevctl.d/matrix/${CLASH}`, mdevctlJson('vfio_ap-passthrough', [{ assign_adapter: '5' }, { assign_domain: '4' }]));
      const replay = await h.parentAdded('/devices/vfio_ap/matrix');
      expect(replay.runs.join('\n')).toContain('mdevctl start-parent-mdevs matrix');
      expectCleanRuns(replay);
      expect(vfioMdevs(h).map((m) => m.uuid)).not.toContain(CLASH);
      expect(await h.container.journal()).toMatch(new RegExp(`refused to start mdev ${CLASH}: APQN 05\\.0004`));

      // Guests run; the bus reports BINDINGS=complete again (a rescan).
      for (const uuid of GUESTS) h.sim.control(`guest-running ${uuid} 1`);
      const writesBefore = h.sim.state().writes.length;
      const again = await h.bindingsComplete(2);
      expectCleanRuns(again);
      await h.container.waitFor(async () => (await h.activeState('ap-persist-hook@change-2.service'))[0] === 'inactive' && (await journal(h, 'ap-persist-hook@change-2.service')).includes('already-active'), {
        timeoutMs: 30_000,
        what: 'the second hook to finish',
      });
      const second = await journal(h, 'ap-persist-hook@change-2.service');
      expect(second).toContain('masks: already right');
      for (const uuid of GUESTS) expect(second).toContain(`mdev ${uuid}`);
      expect(h.sim.state().writes.slice(writesBefore)).toEqual([]);
      expect((await h.container.systemctl('--failed', '--no-legend', '--plain')).stdout.trim(), await h.container.journal()).toBe('');

      // Another mdev type: mdevctl's autostart under udevd's sandbox passes our callout ("not my type").
      const mtty = await h.parentAdded('/devices/virtual/mtty/mtty');
      expectCleanRuns(mtty);
      expect(h.sim.state().mdevs.filter((m) => m.parent === 'mtty').map((m) => m.uuid)).toEqual([MTTY_AUTO]);

      // An admin isolates multi-user.target (as after rescue): the guests keep their mdevs, the units stay up.
      const isolate = await h.container.systemctl('isolate', 'multi-user.target');
      expect(isolate.code, isolate.stderr).toBe(0);
      expect(await h.activeState('ap-persist-mdevs.target', ...GUESTS.map(mdevUnit))).toEqual(['active', 'active', 'active', 'active']);
      expect(vfioMdevs(h).map((m) => m.uuid).sort()).toEqual([...GUESTS].sort());

      // The wait unit's stop takes this boot's verdict out of /run (a soft-reboot keeps /run): the report and
      // the hook's marks go; the mdev units' own marks and the mdevs stay.
      expect((await h.container.exec(['test', '-e', '/run/ap-persist/last-hook.json'])).code).toBe(0);
      expect((await h.container.systemctl('stop', 'ap-persist-wait.service')).code).toBe(0);
      for (const gone of ['last-hook.json', 'units-started', 'target-started', 'held']) expect((await h.container.exec(['test', '-e', `/run/ap-persist/${gone}`])).code, gone).not.toBe(0);
      expect((await h.container.exec(['ls', '/run/ap-persist/units'])).stdout.trim().split('\n').sort()).toEqual([...GUESTS].sort());
      expect(vfioMdevs(h).map((m) => m.uuid).sort()).toEqual([...GUESTS].sort());

      // Shutdown: libvirt stops while every mdev is still there; then the mdevs go.
      for (const uuid of GUESTS) h.sim.control(`guest-running ${uuid} 0`);
      booted.splice(booted.indexOf(h), 1);
      await h.shutdown();
      expect(h.libvirtd().mdevsAtStop).toEqual(expect.arrayContaining(GUESTS));
      expect(vfioMdevs(h)).toEqual([]);
    },
    240_000,
  );

  itWith(
    req,
    'a mdev the kernel refuses: libvirt starts once its unit failed, with the other two, and the failed unit names the mdev',
    async () => {
      // The kernel refuses guest2 every time: mdevctl's own autostart tries it too.
      const h = await boot({ faults: [`fail-write devices/vfio_ap/matrix/${GUEST2}/assign_adapter EADDRNOTAVAIL 10`] });
      const event = await h.bindingsComplete(1);
      expectCleanRuns(event);
      await libvirtStarted(h, event, 'event_to_libvirt_refused_ms');
      expect(h.libvirtd().mdevsAtStart).toEqual([GUEST1, GUEST3].sort());
      const failed = (await h.container.systemctl('--failed', '--no-legend', '--plain')).stdout;
      const log = await h.container.journal();
      expect(failed, log).toContain(mdevUnit(GUEST2));
      expect(failed, log).toContain('ap-persist-wait.service');
      // At error priority: `journalctl -p err` shows the refusal with the kernel's reason (the README's 3 a.m. advice).
      const errors = await h.container.exec(['journalctl', '-b', '-p', 'err', '-u', mdevUnit(GUEST2), '--no-pager', '-o', 'cat']);
      expect(errors.stdout).toContain(`ap-persist: starting mdev ${GUEST2} (guest2): mdevctl start failed: Error: `);
      // The kernel's refusal (mdevctl's "os error 99") reached the journal, ours or mdevctl's own autostart's
      // (which tried first and may have been the one to meet it); ours tells what it means when it met it.
      const all = await h.container.exec(['journalctl', '-b', '--no-pager', '-o', 'cat']);
      expect(all.stdout).toContain('Cannot assign requested address (os error 99)');
      if (errors.stdout.includes('os error 99')) expect(errors.stdout).toContain('an APQN is not free for vfio_ap: check the masks');

      // The failed unit has no mark in /run: the next event asks systemd about it.
      expect((await h.container.exec(['ls', '/run/ap-persist/units'])).stdout.trim().split('\n').sort()).toEqual([GUEST1, GUEST3].sort());
      // Stopping one mdev's unit stops that mdev only, and systemd removes its mark.
      const one = await h.container.systemctl('stop', mdevUnit(GUEST1));
      expect(one.code, one.stderr).toBe(0);
      expect(vfioMdevs(h).map((m) => m.uuid)).toEqual([GUEST3]);
      expect((await h.container.exec(['ls', '/run/ap-persist/units'])).stdout.trim()).toBe(GUEST3);
      expect(await h.activeState(mdevUnit(GUEST3), 'ap-persist-mdevs.target')).toEqual(['active', 'active']);
      // Stopping the target removes the mdevs that are up, and returns only once they are gone.
      const stop = await h.container.systemctl('stop', 'ap-persist-mdevs.target');
      expect(stop.code, stop.stderr).toBe(0);
      expect(vfioMdevs(h)).toEqual([]);
      // The wait ended on the failed unit, not on its 90 s bound.
      expect(await journal(h, 'ap-persist-wait.service')).toContain(`mdev ${GUEST2} (guest2) is not up: ${mdevUnit(GUEST2)} failed (exit-code)`);
    },
    180_000,
  );

  itWith(
    req,
    'vfio_ap does not load: the hook unit fails and says why, and libvirt starts without waiting out the bound',
    async () => {
      // Both the udev builtin and the hook's modprobe fail.
      const h = await boot({ faults: ['fail-load vfio_ap ENODEV 5'] });
      const event = await h.bindingsComplete(1);
      expectCleanRuns(event);
      await libvirtStarted(h, event, 'event_to_libvirt_no_vfio_ap_ms');
      expect(h.libvirtd().mdevsAtStart).toEqual([]);
      const failed = (await h.container.systemctl('--failed', '--no-legend', '--plain')).stdout;
      expect(failed).toContain('ap-persist-hook@change-1.service');
      expect(await journal(h, 'ap-persist-hook@change-1.service')).toContain('modprobe vfio_ap failed');
      // The wait ended on the hook's report, not on its bound.
      expect(await journal(h, 'ap-persist-wait.service')).toContain(`mdev ${GUEST1} (guest1) is not up: vfio_ap is not loaded`);
    },
    180_000,
  );

  itWith(
    req,
    'no event: the wait runs the hook itself after its grace period; a late event then changes nothing',
    async () => {
      const h = await boot();
      await h.container.waitFor(() => h.libvirtd().startedAt, { timeoutMs: 60_000, intervalMs: 100, what: 'libvirtd to start after the fallback' });
      expect(h.libvirtd().mdevsAtStart).toEqual([...GUESTS].sort());
      expect(await journal(h, 'ap-persist-wait.service')).toContain('no BINDINGS=complete event seen; running the hook now');

      const writesBefore = h.sim.state().writes.length;
      const late = await h.bindingsComplete(1);
      expectCleanRuns(late);
      await h.container.waitFor(async () => (await journal(h, 'ap-persist-hook@change-1.service')).includes('already-active'), { timeoutMs: 30_000, what: 'the late hook' });
      // vfio_ap is loaded: 41-ap.rules leaves the masks to the hook, which has nothing to write or start.
      expect(h.sim.state().writes.slice(writesBefore)).toEqual([]);
      expect(vfioMdevs(h)).toHaveLength(3);
      expect((await h.container.systemctl('--failed', '--no-legend', '--plain')).stdout.trim(), await h.container.journal()).toBe('');
    },
    180_000,
  );

  itWith(
    req,
    'the package removed: mdevctl autostart of another type still works with the callout left behind',
    async () => {
      const h = await boot({ files: MDEVCTL_FILES });
      await h.bindingsComplete(1);
      await h.container.exec(['rm', TOOL]);
      // The callouts stay behind (no uninstall ran), in both of mdevctl's directories.
      for (const dir of ['/etc/mdevctl.d/scripts.d/callouts', '/usr/lib/mdevctl/scripts.d/callouts']) {
        expect((await h.container.exec(['test', '-x', `${dir}/ap-persist`])).code, dir).toBe(0);
      }
      const mtty = await h.parentAdded('/devices/virtual/mtty/mtty');
      expectCleanRuns(mtty);
      expect(h.sim.state().mdevs.filter((m) => m.parent === 'mtty').map((m) => m.uuid)).toEqual([MTTY_AUTO]);
    },
    180_000,
  );
});
