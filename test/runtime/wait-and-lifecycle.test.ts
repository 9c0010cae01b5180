// ap-persist wait (what ap-persist-wait.service runs before libvirt) and
// mdev start on a host with mdevctl.

import { startMdev } from '../../src/runtime/mdev-lifecycle.js';
import type { Uuid } from '../../src/model/uuid.js';
import { HostPaths } from '../../src/host/paths.js';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/cli/program.js';
import { GUEST1, GUEST2, THREE_GUESTS_STORE, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { IdSet } from '../../src/model/idset.js';
import type { CommandRunner } from '../../src/runtime/commands.js';
import { onFakeClock, timedOnFakeClock } from '../support/clock.js';
import { givenHost } from '../support/host.js';
import { BINDINGS_COMPLETE, givenSimulatedHost } from '../support/sim-host.js';

const FREE = { apmask: IdSet.full().minus(IdSet.of([5, 6])), aqmask: IdSet.full().minus(IdSet.of([4, 0x47, 0xab, 0xff])) };

/** The report of a hook that gave up on the AP lock (another process held it) before it judged any mdev. */
function lockFailedReport(root: string): void {
  const report = { time: new Date().toISOString(), event: {}, masks: { applied: false, writes: [], kept_for_active_mdevs: [] }, vfio_ap: 'not-checked', mdevs: [], commands: [], errors: ['the AP configuration lock is held by pid 4242'], timings_ms: {}, exit_code: 1 };
  mkdirSync(join(root, 'run/ap-persist'), { recursive: true });
  writeFileSync(join(root, 'run/ap-persist/last-hook.json'), JSON.stringify(report));
}

describe('ap-persist wait', () => {
  it('returns at once when the hook ran and every mdev it started is up', async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0');
    await host.run(['hook'], BINDINGS_COMPLETE);
    const r = await onFakeClock(() => host.run(['wait', '--timeout', '5']));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ready: 3 of 3 auto mdev(s) up');
  });

  it('runs the hook itself when no BINDINGS=complete came (older kernels)', async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0');
    // Its grace of a third of --timeout on the fake clock (test/support/clock.ts), as all waits here.
    const r = await onFakeClock(() => host.run(['wait', '--timeout', '3']));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('no BINDINGS=complete event seen; running the hook now');
    expect(host.kernel().read(`devices/vfio_ap/matrix/${GUEST1}/matrix`)).toBe('05.0004\n05.00ab\n06.0004\n06.00ab\n');
  }, 20_000);

  it('with every queue bound already and no report (the event came before udevd), runs the hook after 2 s, not 15', async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0');
    expect(host.kernel().read('bus/ap/bindings')).toMatch(/\(complete\)/);
    const { value: r, ms } = await timedOnFakeClock(() => host.run(['wait', '--timeout', '90']));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('no BINDINGS=complete event seen; running the hook now');
    expect(ms).toBeGreaterThanOrEqual(2_000);
    expect(ms).toBeLessThan(5_000);
  }, 20_000);

  it('is not ready when its own hook failed before the mdevs (a broken store): exit 1 at once', async () => {
    const host = givenSimulatedHost({ ...threeGuestsHost(), store: THREE_GUESTS_STORE.replace('adapters = 5\n', 'adapters = 5-3\n') }, '6.0');
    const { value: r, ms } = await timedOnFakeClock(() => host.run(['wait', '--timeout', '3']));
    expect(ms).toBeLessThan(3_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not ready: the hook failed \(.*range '5-3' is reversed/);
  }, 20_000);

  it('ends as soon as a refused mdev\'s unit has failed (exit 1), naming it, with the other two up', async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0');
    host.kernel().failWrite(`devices/vfio_ap/matrix/${GUEST2}/assign_adapter`, 'EADDRNOTAVAIL');
    await host.run(['hook'], BINDINGS_COMPLETE);
    // A bound far beyond the test's timeout: only the failed unit can end it in time
    // (the 20 s the test had on the real clock, now on the fake one).
    const { value: r, ms } = await timedOnFakeClock(() => host.run(['wait', '--timeout', '600']));
    expect(ms).toBeLessThan(20_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`mdev ${GUEST2} (guest2) is not up: ap-persist-mdev@${GUEST2}.service failed (exit-code)`);
    expect(r.stderr).toContain('not ready: 2 of 3 auto mdev(s) up');
  }, 20_000);

  it("with an mdev refused, lets udev's events end before libvirt (mdevctl's own autostart may still be making and removing it); not otherwise", async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0');
    // udevd runs on this host.
    mkdirSync(join(host.root, 'run/udev'), { recursive: true });
    writeFileSync(join(host.root, 'run/udev/control'), '');
    await host.run(['hook'], BINDINGS_COMPLETE);
    expect((await onFakeClock(() => host.run(['wait', '--timeout', '5']))).code).toBe(0);
    expect(host.runner()!.log.filter((l) => l.startsWith('udevadm'))).toEqual([]);

    const refused = givenSimulatedHost(threeGuestsHost(), '6.0');
    mkdirSync(join(refused.root, 'run/udev'), { recursive: true });
    writeFileSync(join(refused.root, 'run/udev/control'), '');
    refused.kernel().failWrite(`devices/vfio_ap/matrix/${GUEST2}/assign_adapter`, 'EADDRNOTAVAIL');
    await refused.run(['hook'], BINDINGS_COMPLETE);
    const r = await onFakeClock(() => refused.run(['wait', '--timeout', '600']));
    expect(r.code).toBe(1);
    expect(refused.runner()!.log.filter((l) => l.startsWith('udevadm'))).toEqual(['udevadm settle --timeout=30']);
  }, 20_000);

  it('ends at once when vfio_ap did not load (exit 1): no mdev can come', async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0');
    host.kernel().failLoad('vfio_ap');
    const hook = await host.run(['hook'], BINDINGS_COMPLETE);
    expect(hook.code).toBe(1);
    const { value: r, ms } = await timedOnFakeClock(() => host.run(['wait', '--timeout', '600']));
    expect(ms).toBeLessThan(20_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`mdev ${GUEST1} (guest1) is not up: vfio_ap is not loaded`);
    expect(r.stderr).toMatch(/not ready: 0 of 3 auto mdev\(s\) up; the hook reported: modprobe vfio_ap failed/);
  }, 20_000);

  it('gives up after the timeout (exit 1), naming the mdevs whose units never finished', async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0', { runUnits: false });
    await host.run(['hook'], BINDINGS_COMPLETE);
    const r = await onFakeClock(() => host.run(['wait', '--timeout', '1']));
    expect(r.code).toBe(1);
    for (const [uuid, name] of [[GUEST1, 'guest1'], [GUEST2, 'guest2']]) expect(r.stderr).toContain(`mdev ${uuid} (${name}) is not up: not up after 1 s`);
  });

  it('does not take a half-made mdev (created, its matrix not yet or never assigned) for one that is up', async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0', { runUnits: false });
    await host.run(['hook'], BINDINGS_COMPLETE);
    // What mdevctl leaves for a moment before an assignment is refused and it removes the device again.
    host.kernel().write('devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create', GUEST1);
    const r = await onFakeClock(() => host.run(['wait', '--timeout', '1']));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`mdev ${GUEST1} (guest1) is not up: not up after 1 s`);
  });

  it('does not wait for mdevs no one will start: the hook failed before them (the lock), exit 1 at once', async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0');
    lockFailedReport(host.root);
    const { value: r, ms } = await timedOnFakeClock(() => host.run(['wait', '--timeout', '600']));
    expect(ms).toBeLessThan(20_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`mdev ${GUEST1} (guest1) is not up: the hook failed: the AP configuration lock is held by pid 4242`);
  }, 20_000);

  it("waits on while the other boot hook still runs: one that gave up on its lock is not the last word", async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0');
    // The boot's add and change-1 both came: change-1's hook gave up on the lock the add's hook holds, which still runs.
    lockFailedReport(host.root);
    host.activating.add('ap-persist-hook@add.service');
    const r = await onFakeClock(async () => {
      // The add's hook is done 3 s later: masks, vfio_ap, the three mdevs, and its report.
      setTimeout(() => {
        void host.run(['hook'], { ACTION: 'add', DEVPATH: '/bus/ap' }).then(() => host.activating.clear());
      }, 3_000);
      return host.run(['wait', '--timeout', '60']);
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('ready: 3 of 3 auto mdev(s) up');
  });

  it("a later event's hook that failed on the lock after the boot's hook had the target start the mdevs: wait waits for them, not fails them", async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0');
    // The boot's hook: the target started the three units; the mdevs are up.
    expect((await host.run(['hook', '--event', 'change-1'], BINDINGS_COMPLETE)).code).toBe(0);
    expect(existsSync(new HostPaths(host.root).targetStarted)).toBe(true);
    // Then change-2's hook gave up on the lock: its report replaced the boot's.
    lockFailedReport(host.root);
    const r = await onFakeClock(() => host.run(['wait', '--timeout', '60']));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('ready: 3 of 3 auto mdev(s) up');
    expect(r.stderr).toContain('warning: a later hook failed (the AP configuration lock is held by pid 4242)');
  });

  it("...and an mdev the boot's hook held back is failed at once with its reason, not waited for", async () => {
    const INTRUDER = '0f0e0d0c-0b0a-4909-8807-060504030201';
    const store = `${THREE_GUESTS_STORE}\n[mdev.${INTRUDER}]\nname = intruder\nadapters = 5\ndomains = 4\nstart = auto\n`;
    const host = givenSimulatedHost({ ...threeGuestsHost(), store }, '6.0');
    expect((await host.run(['generate', '--force'])).code).toBe(0);
    await host.run(['hook', '--event', 'change-1'], BINDINGS_COMPLETE);
    lockFailedReport(host.root);
    const { value: r, ms } = await timedOnFakeClock(() => host.run(['wait', '--timeout', '60']));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`mdev ${INTRUDER} (intruder) is not up: held back: refused by the hook`);
    expect(r.stderr).toContain('3 of 4 auto mdev(s) up');
    expect(ms).toBeLessThan(5_000);
  });

  it('refuses a timeout that is not a number of seconds (exit 2)', async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0');
    for (const bad of ['abc', '-1', '0', '']) {
      const r = await host.run(['wait', '--timeout', bad]);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toContain('--timeout:');
    }
  });
});

describe('mdev start on a host with mdevctl', () => {
  it('defines the mdev in mdevctl with its start mode (auto), then starts it through mdevctl', async () => {
    const host = givenHost({ ...threeGuestsHost(), masks: FREE, vfioAp: true, store: THREE_GUESTS_STORE });
    // An executable mdevctl on the root's PATH.
    mkdirSync(join(host.root, 'usr/sbin'), { recursive: true });
    writeFileSync(join(host.root, 'usr/sbin/mdevctl'), '#!/bin/sh\n');
    chmodSync(join(host.root, 'usr/sbin/mdevctl'), 0o755);
    const seen: string[] = [];
    let definition = '';
    const runner: CommandRunner = {
      log: seen,
      async run(file, args) {
        seen.push([file.replace(host.root, ''), ...args].join(' '));
        const json = args[args.indexOf('--jsonfile') + 1];
        if (args[0] === 'define' && json) definition = (await import('node:fs')).readFileSync(json, 'utf8');
        return { exitCode: 0, stdout: '', stderr: '', timedOut: false, ran: true };
      },
    };
    let stderr = '';
    const code = await run(['--root', host.root, '--exec', 'mdev', 'start', GUEST2], { stdout: () => {}, stderr: (t) => void (stderr += t), env: { PATH: '/usr/sbin' } }, { runner });
    expect(code, stderr).toBe(0);
    expect(seen).toEqual([`/usr/sbin/mdevctl define -u ${GUEST2} -p matrix --jsonfile ${seen[0]!.split('--jsonfile ')[1]}`, `/usr/sbin/mdevctl start -u ${GUEST2}`]);
    expect(JSON.parse(definition)).toEqual({
      mdev_type: 'vfio_ap-passthrough',
      start: 'auto',
      attrs: [{ assign_adapter: '5' }, { assign_domain: '71' }, { assign_domain: '255' }],
    });
  });

  it('mdevctl\'s own autostart made it meanwhile: up with the store\'s matrix is success, not a failed unit', async () => {
    const host = givenHost({ ...threeGuestsHost(), masks: FREE, vfioAp: true, store: THREE_GUESTS_STORE });
    mkdirSync(join(host.root, 'usr/sbin'), { recursive: true });
    writeFileSync(join(host.root, 'usr/sbin/mdevctl'), '#!/bin/sh\n');
    chmodSync(join(host.root, 'usr/sbin/mdevctl'), 0o755);
    // mdevctl start loses the race: the device exists by the time it writes create.
    const runner: CommandRunner = {
      log: [],
      async run(_file, args) {
        if (args[0] !== 'start') return { exitCode: 0, stdout: '', stderr: '', timedOut: false, ran: true };
        // The winner is still assigning: one domain so far, the other a moment later.
        const dir = join(host.root, `sys/devices/vfio_ap/matrix/${GUEST2}`);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'matrix'), '05.0047\n');
        // It holds the AP lock from its pre callout to its post callout.
        mkdirSync(join(host.root, 'run/lock'), { recursive: true });
        writeFileSync(join(host.root, 'run/lock/s390apconfig.lock'), '4242\n');
        setTimeout(() => {
          writeFileSync(join(dir, 'matrix'), '05.0047\n05.00ff\n');
          rmSync(join(host.root, 'run/lock/s390apconfig.lock'));
        }, 300);
        return { exitCode: 1, stdout: '', stderr: `Error: Device ${GUEST2} already exists`, timedOut: false, ran: true };
      },
    };
    let stdout = '';
    const code = await run(['--root', host.root, '--exec', 'mdev', 'start', GUEST2], { stdout: (t) => void (stdout += t), stderr: () => {}, env: { PATH: '/usr/sbin' } }, { runner });
    expect(code).toBe(0);
    expect(stdout).toContain(`mdev ${GUEST2} (guest2) is already active`);
  });
});

describe('mdev start when mdevctl defines the mdev differently', () => {
  it("with the store edited since generate (--no-generate): starts the store's matrix through sysfs and leaves mdevctl's file to generate, saying so", async () => {
    const host = givenSimulatedHost(
      { ...threeGuestsHost(), masks: FREE, vfioAp: true, files: { 'usr/sbin/mdevctl': '#!/bin/sh\n' } },
      '6.0',
    );
    chmodSync(join(host.root, 'usr/sbin/mdevctl'), 0o755);
    expect((await host.run(['generate'])).code).toBe(0);
    expect((await host.run(['mdev', 'modify', GUEST2, '--domains', '0x47', '--no-generate'])).code).toBe(0);
    const before = host.read(`etc/mdevctl.d/matrix/${GUEST2}`);
    const r = await host.run(['mdev', 'start', GUEST2], { PATH: '/usr/sbin' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("mdevctl's definition of");
    expect(host.runner()!.log).toEqual([]);
    expect(host.read(`etc/mdevctl.d/matrix/${GUEST2}`)).toBe(before);
    expect(host.kernel().read(`devices/vfio_ap/matrix/${GUEST2}/matrix`)).toBe('05.0047\n');
  });

  it("changed by mdevctl since generate: starts mdevctl's definition, the one the boot uses", async () => {
    const host = givenSimulatedHost({ ...threeGuestsHost(), masks: FREE, vfioAp: true }, '6.0');
    expect((await host.run(['generate'])).code).toBe(0);
    // As `mdevctl modify -u GUEST2 --delattr --index 2` leaves it: domain 0xff gone.
    const file = join(host.root, `etc/mdevctl.d/matrix/${GUEST2}`);
    const def = JSON.parse(readFileSync(file, 'utf8')) as { attrs: Record<string, string>[] };
    def.attrs = def.attrs.filter((a) => a['assign_domain'] !== '255');
    writeFileSync(file, JSON.stringify(def, null, 2));
    const r = await host.run(['mdev', 'start', GUEST2]);
    expect(r.code, r.stderr).toBe(0);
    expect(host.kernel().read(`devices/vfio_ap/matrix/${GUEST2}/matrix`)).toBe('05.0047\n');
  });

  it('undefined by mdevctl since generate: refuses to start it, naming both ways out', async () => {
    const host = givenSimulatedHost({ ...threeGuestsHost(), masks: FREE, vfioAp: true }, '6.0');
    expect((await host.run(['generate'])).code).toBe(0);
    rmSync(join(host.root, `etc/mdevctl.d/matrix/${GUEST2}`));
    const r = await host.run(['mdev', 'start', GUEST2]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`mdev ${GUEST2} was undefined in mdevctl since ap-persist generated it`);
    expect(r.stderr).toContain("'ap-persist import'");
    expect(host.kernel().exists(`devices/vfio_ap/matrix/${GUEST2}`)).toBe(false);
  });
});


describe('mdev start within its bound', () => {
  it("cuts each mdevctl run to what is left before its deadline, so its unit's timeout never kills it half way", async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0');
    const timeouts: number[] = [];
    const runner: CommandRunner = {
      log: [],
      async run(_file, _args, options) {
        timeouts.push(options?.timeoutMs ?? Number.POSITIVE_INFINITY);
        return { exitCode: 1, stdout: '', stderr: 'refused by a callout', timedOut: false, ran: true };
      },
    };
    const lc = { sysfs: host.kernel(), paths: new HostPaths(host.root), runner, mdevctl: '/usr/sbin/mdevctl', deadline: Date.now() + 5_000 };
    const mdev = { uuid: GUEST1 as Uuid, adapters: IdSet.of([5, 6]), domains: IdSet.of([4, 0xab]), controlDomains: IdSet.empty(), start: 'auto' as const };
    await expect(startMdev(lc, mdev)).rejects.toThrow(/mdevctl .* failed/);
    expect(timeouts.length).toBeGreaterThan(0);
    for (const t of timeouts) expect(t).toBeLessThanOrEqual(5_000);
  });
});
