// Boot simulations: the AP bus reports BINDINGS=complete, udev runs the hook,
// and the host must end with the store's masks, vfio_ap loaded and the auto
// mdevs up, on the 5.4 kernel of the seeds and on 6.0 and 6.19 kernels, in memory
// and through a fake root on disk.

import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mdevUnit } from '../../src/generate/unit-names.js';
import { describe, expect, it } from 'vitest';
import { GUEST1, GUEST2, GUEST3, THREE_GUESTS_STORE, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { IdSet } from '../../src/model/idset.js';
import { BINDINGS_COMPLETE, givenSimulatedHost, type SimHost } from '../support/sim-host.js';
import { run } from '../../src/cli/program.js';
import { spawn } from 'node:child_process';
import { HostPaths } from '../../src/host/paths.js';
import { runHook } from '../../src/runtime/hook.js';
import { recordingRunner } from '../../src/runtime/commands.js';
import { FileSysfs } from '../../src/sysfs/file-sysfs.js';
import { SysfsError, type Sysfs } from '../../src/sysfs/sysfs.js';

const INTRUDER = 'deadbeef-0000-4000-8000-000000000001';
const FREE = { apmask: IdSet.full().minus(IdSet.of([5, 6])), aqmask: IdSet.full().minus(IdSet.of([4, 0x47, 0xab, 0xff])) };

for (const flavour of ['5.4', '6.0', '6.19'] as const) {
  for (const onDisk of [false, true]) {
    describe(`boot on a ${flavour} kernel${onDisk ? ', fake root on disk' : ', in memory'}`, () => {
      it('the three-guest host boots to masks applied, vfio_ap loaded and three mdevs with the right matrix', async () => {
        const host = givenSimulatedHost(threeGuestsHost(), flavour, { onDisk });
        const r = await host.run(['hook'], BINDINGS_COMPLETE);
        expect(r.code).toBe(0);
        const k = host.kernel();
        expect(k.read('bus/ap/apmask').trim()).toBe('0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff');
        expect(k.read('bus/ap/aqmask').trim()).toBe('0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe');
        expect(k.vfioApLoaded).toBe(true);
        expect(k.read('bus/ap/devices/05.0004/driver').trim()).toBe('vfio_ap');
        expect(k.read(`devices/vfio_ap/matrix/${GUEST1}/matrix`)).toBe('05.0004\n05.00ab\n06.0004\n06.00ab\n');
        expect(k.read(`devices/vfio_ap/matrix/${GUEST1}/control_domains`)).toBe('00ab\n');
        expect(k.read(`devices/vfio_ap/matrix/${GUEST2}/matrix`)).toBe('05.0047\n05.00ff\n');
        expect(k.read(`devices/vfio_ap/matrix/${GUEST3}/matrix`)).toBe('06.0047\n06.00ff\n');
        // Each mdev's unit ran and succeeded, and the target is up.
        expect(Object.fromEntries(host.runner()!.units)).toEqual({ [GUEST1]: 0, [GUEST2]: 0, [GUEST3]: 0, 'ap-persist-mdevs.target': 0 });
        if (onDisk) {
          expect(host.read(`sys/devices/vfio_ap/matrix/${GUEST2}/matrix`)).toBe('05.0047\n05.00ff\n');
          expect(host.read('sys/bus/ap/devices/06.00ff/driver').trim()).toBe('vfio_ap');
        }
        const report = JSON.parse(host.read('run/ap-persist/last-hook.json'));
        expect(report.vfio_ap).toBe('loaded');
        expect(report.mdevs.map((m: { outcome: string }) => m.outcome)).toEqual(['started', 'started', 'started']);
        expect(report.exit_code).toBe(0);

        // A second event finds nothing to do.
        const again = await host.run(['--json', 'hook'], { ...BINDINGS_COMPLETE, COMPLETECOUNT: '2' });
        const second = JSON.parse(again.stdout);
        expect(second.masks.writes).toEqual([]);
        expect(second.commands).toEqual([]);
        expect(second.mdevs.map((m: { outcome: string }) => m.outcome)).toEqual(['already-active', 'already-active', 'already-active']);
        // systemd marked each unit up (its RuntimeDirectory) and the first hook started the target: nothing to ask.
        expect(host.runner()!.log).toEqual([]);
        // Without the target's mark (a hook of an earlier version, a start systemd did not take), systemd is asked.
        rmSync(join(host.root, 'run/ap-persist/target-started'));
        expect((await host.run(['hook'], { ...BINDINGS_COMPLETE, COMPLETECOUNT: '3' })).code).toBe(0);
        expect(host.runner()!.log).toEqual([
          `systemctl show --property=Id,ActiveState,Result ${[GUEST1, GUEST2, GUEST3].map((u) => `ap-persist-mdev@${u}.service`).join(' ')} ap-persist-mdevs.target`,
        ]);
        // It said the target is up: marked again, the next event asks nothing.
        expect(host.read('run/ap-persist/target-started')).toBe('');
        expect((await host.run(['hook'], { ...BINDINGS_COMPLETE, COMPLETECOUNT: '3' })).code).toBe(0);
        expect(host.runner()!.log).toEqual([]);
        // A unit stopped since is no longer marked: the next event asks systemd, and starts it again.
        await host.runner()!.run('systemctl', ['--no-block', 'stop', `ap-persist-mdev@${GUEST3}.service`]);
        if (onDisk) host.kernel().saveTo(host.root);
        expect(host.kernel().exists(`devices/vfio_ap/matrix/${GUEST3}`)).toBe(false);
        const third = JSON.parse((await host.run(['--json', 'hook'], { ...BINDINGS_COMPLETE, COMPLETECOUNT: '4' })).stdout);
        expect(host.runner()!.log[0]).toMatch(/^systemctl show /);
        expect(third.commands.map((c: { command: string }) => c.command)).toEqual([`systemctl --no-block start ap-persist-mdev@${GUEST3}.service`]);
        expect(host.kernel().exists(`devices/vfio_ap/matrix/${GUEST3}`)).toBe(true);
      });

      it('an mdev removed by hand while its unit stays active is restarted by the next event, not left for dead', async () => {
        const host = givenSimulatedHost(threeGuestsHost(), flavour, { onDisk });
        expect((await host.run(['hook'], BINDINGS_COMPLETE)).code).toBe(0);
        // RemainAfterExit=yes: the unit stays active when the mdev goes behind its back.
        host.kernel().write(`devices/vfio_ap/matrix/${GUEST1}/remove`, '1');
        if (onDisk) host.kernel().saveTo(host.root);
        expect((await host.run(['hook'], { ...BINDINGS_COMPLETE, COMPLETECOUNT: '2' })).code).toBe(0);
        // The target is up already: only the unit whose mdev went is restarted.
        expect(host.runner()!.log.filter((l) => l.startsWith('systemctl --no-block'))).toEqual([`systemctl --no-block restart ap-persist-mdev@${GUEST1}.service`]);
        expect(host.kernel().read(`devices/vfio_ap/matrix/${GUEST1}/matrix`)).toBe('05.0004\n05.00ab\n06.0004\n06.00ab\n');
        // Also when the first hook's report is gone (a full /run, a hook killed after its start):
        // the mark it made before starting units says systemd must be asked.
        rmSync(join(host.root, 'run/ap-persist/last-hook.json'));
        host.kernel().write(`devices/vfio_ap/matrix/${GUEST2}/remove`, '1');
        if (onDisk) host.kernel().saveTo(host.root);
        expect((await host.run(['hook'], { ...BINDINGS_COMPLETE, COMPLETECOUNT: '3' })).code).toBe(0);
        expect(host.runner()!.log.filter((l) => l.startsWith('systemctl --no-block'))).toEqual([`systemctl --no-block restart ap-persist-mdev@${GUEST2}.service`]);
      });

      it('an intruder auto mdev sharing 05.0004 is skipped, named in the report with the APQN, and fails the hook', async () => {
        const store = `${THREE_GUESTS_STORE}\n[mdev.${INTRUDER}]\nname = intruder\nadapters = 5\ndomains = 4\nstart = auto\n`;
        const host = givenSimulatedHost({ ...threeGuestsHost(), store }, flavour, { onDisk });
        // Exit 1: the hook's unit ends failed, so `systemctl --failed` shows the refusal.
        expect((await host.run(['hook'], BINDINGS_COMPLETE)).code).toBe(1);
        // The three that passed are started, with the target; the intruder is not.
        expect(host.runner()!.log.filter((l) => l.startsWith('systemctl --no-block'))).toEqual([
          `systemctl --no-block start ap-persist-mdevs.target ap-persist-mdev@${GUEST1}.service ap-persist-mdev@${GUEST2}.service ap-persist-mdev@${GUEST3}.service`,
        ]);
        const report = JSON.parse(host.read('run/ap-persist/last-hook.json'));
        expect(report.mdevs.find((m: { uuid: string }) => m.uuid === INTRUDER)).toMatchObject({ outcome: 'skipped', apqns: ['05.0004'] });
        expect(host.kernel().exists(`devices/vfio_ap/matrix/${INTRUDER}`)).toBe(false);
        expect(host.kernel().exists(`devices/vfio_ap/matrix/${GUEST1}`)).toBe(true);
        const status = await host.run(['status']);
        expect(status.stdout).toMatch(new RegExp(`mdev ${INTRUDER} \\(intruder\\): skipped - APQN 05.0004`));
      });

      it('a store that would hand an active mdev’s queue to the host leaves it out of the host pool and says so', async () => {
        const store = THREE_GUESTS_STORE.replace('apmask = 0-4,7-255', 'apmask = 0-255').replace('aqmask = 0-3,5-70,72-170,172-254', 'aqmask = 0-255');
        const host = givenSimulatedHost(
          { ...threeGuestsHost(), store, masks: FREE, vfioAp: true, activeMdevs: [{ uuid: GUEST2, adapters: [5], domains: [0x47, 0xff] }] },
          flavour,
          { onDisk },
        );
        await host.run(['hook'], BINDINGS_COMPLETE);
        const k = host.kernel();
        expect(k.read('bus/ap/devices/05.0047/driver').trim()).toBe('vfio_ap');
        expect(k.read(`devices/vfio_ap/matrix/${GUEST2}/matrix`)).toBe('05.0047\n05.00ff\n');
        const report = JSON.parse(host.read('run/ap-persist/last-hook.json'));
        // 6.19 refuses adding any adapter or domain an mdev holds (in_use with all-ones masks): more stays out.
        expect(report.masks.kept_for_active_mdevs).toEqual(
          flavour === '6.19'
            ? [
                `05. of ${GUEST2} (guest2): adapter 5 kept out of apmask (the kernel refuses to add an adapter an mdev holds)`,
                `.0047 of ${GUEST2} (guest2): domain 71 kept out of aqmask (the kernel refuses to add a domain an mdev holds)`,
                `.00ff of ${GUEST2} (guest2): domain 255 kept out of aqmask (the kernel refuses to add a domain an mdev holds)`,
              ]
            : [`05.0047 of ${GUEST2} (guest2): adapter 5 kept out of apmask`],
        );
      });

      it('a broken store changes nothing', async () => {
        const store = THREE_GUESTS_STORE.replace('start = auto              ; started at boot', 'start = always');
        const host = givenSimulatedHost({ ...threeGuestsHost(), store }, flavour, { onDisk });
        const before = [...host.snapshot()].filter(([k]) => k.startsWith('sys/'));
        const r = await host.run(['hook'], BINDINGS_COMPLETE);
        expect(r.code).toBe(2);
        expect(host.kernel().read('bus/ap/apmask').trim()).toBe(IdSet.full().toKernelHex());
        expect(host.kernel().vfioApLoaded).toBe(false);
        expect(host.runner()!.log).toEqual([]);
        if (onDisk) expect([...host.snapshot()].filter(([k]) => k.startsWith('sys/'))).toEqual(before);
        expect(JSON.parse(host.read('run/ap-persist/last-hook.json')).errors[0]).toMatch(/start 'always' is not auto, manual or guest/);
      });
    });
  }

  describe(`faults on a ${flavour} kernel`, () => {
    it('a failing assign leaves no half-made mdev and says what the errno means', async () => {
      const host = givenSimulatedHost(threeGuestsHost(), flavour);
      await host.run(['mask', 'set', 'apmask=-5,-6', 'aqmask=-4,-0x47,-0xab,-0xff']);
      host.kernel().loadVfioAp();
      host.kernel().failWrite(`devices/vfio_ap/matrix/${GUEST2}/assign_domain`, 'EADDRNOTAVAIL');
      const r = await host.run(['mdev', 'start', GUEST2]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('EADDRNOTAVAIL');
      expect(r.stderr).toContain('not free for vfio_ap');
      expect(host.kernel().exists(`devices/vfio_ap/matrix/${GUEST2}`)).toBe(false);
      // The next start works.
      expect((await host.run(['mdev', 'start', GUEST2])).code).toBe(0);
      expect(host.kernel().read(`devices/vfio_ap/matrix/${GUEST2}/matrix`)).toBe('05.0047\n05.00ff\n');
    });

    it('during boot, one failing unit does not stop the others', async () => {
      const host = givenSimulatedHost(threeGuestsHost(), flavour);
      host.kernel().failWrite(`devices/vfio_ap/matrix/${GUEST1}/assign_adapter`, 'ENODEV');
      await host.run(['hook'], BINDINGS_COMPLETE);
      const units = host.runner()!.units;
      expect(units.get(GUEST1)).toBe(1);
      expect(units.get(GUEST2)).toBe(0);
      expect(units.get(GUEST3)).toBe(0);
      expect(host.kernel().exists(`devices/vfio_ap/matrix/${GUEST1}`)).toBe(false);
    });

    it('a refused mask write is reported and the mdevs that cannot start are not forced', async () => {
      const host = givenSimulatedHost(threeGuestsHost(), flavour);
      host.kernel().failWrite('bus/ap/apmask', 'EINVAL');
      const r = await host.run(['--json', 'hook'], BINDINGS_COMPLETE);
      expect(r.code).toBe(1);
      const report = JSON.parse(r.stdout);
      expect(report.errors[0]).toContain('EINVAL');
      // With the kernel's default masks every queue is the host's: nothing may start.
      expect(report.mdevs.map((m: { outcome: string }) => m.outcome)).toEqual(['skipped', 'skipped', 'skipped']);
    });

    it('mdev stop is refused while the guest runs, without the remove the kernel would block on', async () => {
      const host = givenSimulatedHost(threeGuestsHost(), flavour);
      await host.run(['hook'], BINDINGS_COMPLETE);
      host.kernel().setGuestRunning(GUEST3, true);
      // QEMU holds the mdev's VFIO group open, as /proc shows it (the kernel never answers EBUSY: its remove would hang).
      const group = host.kernel().read(`devices/vfio_ap/matrix/${GUEST3}/iommu_group`);
      mkdirSync(join(host.root, 'proc/4242/fd'), { recursive: true });
      symlinkSync(`/dev/vfio/${group}`, join(host.root, 'proc/4242/fd/31'));
      writeFileSync(join(host.root, 'proc/4242/comm'), 'qemu-system-s39\n');
      const r = await host.run(['mdev', 'stop', GUEST3]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`mdev ${GUEST3} is in use by process 4242`);
      expect(host.kernel().hungRemoves).toEqual([]);
      host.kernel().setGuestRunning(GUEST3, false);
      rmSync(join(host.root, 'proc/4242'), { recursive: true });
      expect((await host.run(['mdev', 'stop', GUEST3])).code).toBe(0);
      expect(host.kernel().exists(`devices/vfio_ap/matrix/${GUEST3}`)).toBe(false);
    });
  });
}

describe('an event that changes nothing', () => {
  it('needs no lock: with chzdev holding it, the hook neither waits nor touches it', async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0', { onDisk: true });
    expect((await host.run(['hook'], BINDINGS_COMPLETE)).code).toBe(0);
    // A live process holds the AP configuration lock (PID 1 stands for chzdev: alive, and not this process).
    const lock = join(host.root, 'run/lock/s390apconfig.lock');
    writeFileSync(lock, '1\n');
    const r = await host.run(['--json', 'hook'], { ...BINDINGS_COMPLETE, COMPLETECOUNT: '2' });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.mdevs.map((m: { outcome: string }) => m.outcome)).toEqual(['already-active', 'already-active', 'already-active']);
    expect(report.errors).toEqual([]);
    expect(readFileSync(lock, 'utf8')).toBe('1\n');
    // One mdev gone: now there is something to do, and the hook waits for the lock (bounded here by a deadline, as wait gives it).
    host.kernel().write(`devices/vfio_ap/matrix/${GUEST2}/remove`, '1');
    host.kernel().saveTo(host.root);
    const paths = new HostPaths(host.root);
    const held = await runHook({ paths, sysfs: new FileSysfs(host.root), runner: recordingRunner(), env: { ...BINDINGS_COMPLETE, COMPLETECOUNT: '3' }, deadline: Date.now() + 300 });
    expect(held.errors.join('\n')).toContain('the AP configuration lock is held by PID 1');
    expect(held.commands).toEqual([]);
    // Once it is free, the hook takes it and restarts the mdev's unit.
    rmSync(lock);
    const again = JSON.parse((await host.run(['--json', 'hook'], { ...BINDINGS_COMPLETE, COMPLETECOUNT: '3' })).stdout);
    expect(again.commands.map((c: { command: string }) => c.command)).toContain(`systemctl --no-block restart ap-persist-mdev@${GUEST2}.service`);
    expect(host.kernel().exists(`devices/vfio_ap/matrix/${GUEST2}`)).toBe(true);
  });
});

describe('a read that fails during the look without the lock', () => {
  it('is looked at again with the lock: an mdev read while another process changed it under the lock does not fail the event', async () => {
    // guest2 runs; the store gives the host its adapter: every event keeps it out, reading the matrices.
    const store = THREE_GUESTS_STORE.replace('apmask = 0-4,7-255', 'apmask = 0-255').replace('aqmask = 0-3,5-70,72-170,172-254', 'aqmask = 0-255');
    const host = givenSimulatedHost({ ...threeGuestsHost(), store, masks: FREE, vfioAp: true, activeMdevs: [{ uuid: GUEST2, adapters: [5], domains: [0x47, 0xff] }] }, '6.0', { onDisk: true });
    const first = JSON.parse((await host.run(['--json', 'hook'], BINDINGS_COMPLETE)).stdout);
    expect(first.masks.kept_for_active_mdevs).toEqual([`05.0047 of ${GUEST2} (guest2): adapter 5 kept out of apmask`]);
    host.kernel().saveTo(host.root);
    const disk = new FileSysfs(host.root);
    // The first read of guest2's matrix meets it being changed (ENODEV), as a removal under the lock would.
    let failed = 0;
    const sysfs: Sysfs = {
      read: (path) => {
        if (path.endsWith(`${GUEST2}/matrix`) && failed++ === 0) throw new SysfsError('ENODEV', path, 'read');
        return disk.read(path);
      },
      write: (path, data) => disk.write(path, data),
      list: (dir) => disk.list(dir),
      exists: (path) => disk.exists(path),
    };
    const report = await runHook({ paths: new HostPaths(host.root), sysfs, runner: recordingRunner(), env: { ...BINDINGS_COMPLETE, COMPLETECOUNT: '2' } });
    expect(failed).toBe(2);
    expect(report.errors).toEqual([]);
    expect(report.masks.kept_for_active_mdevs).toEqual(first.masks.kept_for_active_mdevs);
    expect(report.mdevs).toEqual(first.mdevs.map((m: { outcome: string }) => (m.outcome === 'started' ? { ...m, outcome: 'already-active' } : m)));
  });
});

describe('status after a boot', () => {
  it('--matrix draws which mdev owns each present APQN', async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0');
    await host.run(['hook'], BINDINGS_COMPLETE);
    const r = await host.run(['status', '--matrix']);
    expect(r.code).toBe(0);
    // Active mdevs are lettered by name (not by UUID): guest1 a, guest2 b, guest3 c.
    expect(r.stdout).toContain('matrix of the present APQNs, adapters down and domains across:');
    expect(r.stdout).toContain('      0004 0047 00ab 00ff\n  05     a    b    a    b\n  06     a    c    a    c\n');
    expect(r.stdout).toContain(`  a = ${GUEST1} (guest1)\n  b = ${GUEST2} (guest2)\n  c = ${GUEST3} (guest3)\n`);
    expect(r.stdout).toContain('vfio_ap loaded');
  });
});

describe("the boot's first event, as systemd runs it: the target follows the hook", () => {
  /** The three-guest host with an intruder sharing 05.0004, generated anyway (--force): the target wants all four. */
  const store = `${THREE_GUESTS_STORE}\n[mdev.${INTRUDER}]\nname = intruder\nadapters = 5\ndomains = 4\nstart = auto\n`;
  async function generatedWithIntruder(): Promise<SimHost> {
    const host = givenSimulatedHost({ ...threeGuestsHost(), store }, '6.0');
    const g = await host.run(['generate', '--force']);
    expect(g.code, g.stderr).toBe(0);
    return host;
  }

  it('the hook asks systemd for nothing; the target then starts the units that passed and skips the one held back', async () => {
    const host = await generatedWithIntruder();
    const r = await host.run(['hook', '--event', 'change-1']);
    expect(r.code).toBe(1);
    const report = JSON.parse(host.read('run/ap-persist/last-hook.json'));
    // No systemctl of the hook's own: the rule queued the target behind it.
    expect(report.commands.map((c: { command: string }) => c.command)).toEqual(['modprobe vfio_ap']);
    expect(report.started_by).toBe('ap-persist-mdevs.target');
    expect(r.stdout).toContain('units: ap-persist-mdevs.target starts those to start once this hook has exited');
    expect(report.mdevs.map((m: { outcome: string }) => m.outcome)).toEqual(['started', 'started', 'started', 'skipped']);
    // systemd, after the hook: the target, then each unit it wants; the intruder's condition fails, so it never ran.
    expect(Object.fromEntries(host.runner()!.units)).toEqual({ 'ap-persist-mdevs.target': 0, [GUEST1]: 0, [GUEST2]: 0, [GUEST3]: 0 });
    for (const uuid of [GUEST1, GUEST2, GUEST3]) expect(host.kernel().exists(`devices/vfio_ap/matrix/${uuid}`), uuid).toBe(true);
    expect(host.kernel().exists(`devices/vfio_ap/matrix/${INTRUDER}`)).toBe(false);
    // The mark says why, where the unit's ConditionPathExists= looks; nothing else is held.
    expect(readdirSync(join(host.root, 'run/ap-persist/held'))).toEqual([INTRUDER]);
    expect(host.read(`run/ap-persist/held/${INTRUDER}`)).toMatch(/^refused by the hook: APQN 05\.0004 \(5\.4\) is also assigned to auto mdev .* \(guest1\), which comes earlier in the store/);
    // status says what is held back, why, and what to do.
    const status = (await host.run(['status'])).stdout;
    expect(status).toContain("held back by the hook (");
    expect(status).toContain("systemd skips these units' start; fix the cause, then run 'ap-persist hook'):");
    expect(status).toMatch(new RegExp(`  ${INTRUDER} \\(intruder\\): refused by the hook: APQN 05\\.0004`));
    // The next event knows the target and the units ran: with nothing to change it asks systemd nothing.
    // A mark of a unit the target no longer wants (an mdev removed from the store since) goes.
    const gone = '00000000-0000-4000-8000-00000000dead';
    writeFileSync(join(host.root, `run/ap-persist/held/${gone}`), 'refused by the hook: an earlier reason\n');
    const again = await host.run(['hook', '--event', 'change-2']);
    expect(again.code).toBe(1);
    expect(host.runner()!.log).toEqual([]);
    expect(readdirSync(join(host.root, 'run/ap-persist/held'))).toEqual([INTRUDER]);
  });

  it('a boot hook that fails before its checks holds every unit back; the next event that passes lets them start', async () => {
    const host = await generatedWithIntruder();
    writeFileSync(join(host.root, 'etc/ap-persist/ap-persist.conf'), store.replace('adapters = 5\n', 'adapters = 5-3\n'));
    const r = await host.run(['hook', '--event', 'change-1']);
    expect(r.code).toBe(2);
    // The target came all the same (the rule queued it; ordering, not a requirement): no unit ran.
    expect(Object.fromEntries(host.runner()!.units)).toEqual({ 'ap-persist-mdevs.target': 0 });
    expect(host.read('run/ap-persist/held/all')).toMatch(/^the boot's hook failed: .*ap-persist\.conf:18: range '5-3' is reversed/);
    expect((await host.run(['status'])).stdout).toMatch(/  every mdev unit: the boot's hook failed: .*range '5-3' is reversed\n +write it low to high: 3-5; fix it, then run 'ap-persist hook'/);
    // The admin repairs the store and runs the hook again (here as `systemctl restart` of the same
    // instance would): nothing follows it now, so it judges every mdev and starts those that pass itself.
    writeFileSync(join(host.root, 'etc/ap-persist/ap-persist.conf'), store);
    const later = await host.run(['hook', '--event', 'change-1']);
    expect(later.code, later.stdout).toBe(1);
    expect(readdirSync(join(host.root, 'run/ap-persist/held'))).toEqual([INTRUDER]);
    const report = JSON.parse(host.read('run/ap-persist/last-hook.json'));
    // vfio_ap too: the failed hook stopped before loading it.
    expect(report.commands.map((c: { command: string }) => c.command)).toEqual([
      'modprobe vfio_ap',
      `systemctl --no-block start ap-persist-mdevs.target ${[GUEST1, GUEST2, GUEST3].map(mdevUnit).join(' ')}`,
    ]);
    for (const uuid of [GUEST1, GUEST2, GUEST3]) expect(host.runner()!.units.get(uuid), uuid).toBe(0);
  });

  it('a mark it cannot write: every unit stays held back, and the report says so rather than "started"', async () => {
    const host = await generatedWithIntruder();
    // Where the intruder's mark goes, a directory: the write fails (EISDIR), as on a full /run.
    mkdirSync(join(host.root, `run/ap-persist/held/${INTRUDER}/x`), { recursive: true });
    const r = await host.run(['--json', 'hook', '--event', 'change-1']);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.errors.join('\n')).toContain(`systemd may start ap-persist-mdev@${INTRUDER}.service, which the hook holds back`);
    expect(report.mdevs.filter((m: { outcome: string }) => m.outcome === 'failed').map((m: { uuid: string }) => m.uuid)).toEqual([GUEST1, GUEST2, GUEST3]);
    expect(report.mdevs[0].reason).toMatch(/^held back: the hook could not write the marks/);
    // `all` stays: the target the rule queued starts nothing.
    expect(readdirSync(join(host.root, 'run/ap-persist/held')).sort()).toEqual(['all', INTRUDER].sort());
    expect(Object.fromEntries(host.runner()!.units)).toEqual({ 'ap-persist-mdevs.target': 0 });
  });

  it("two boot hooks (coldplug's add and change-1): the one that fails leaves the other's verdict be", async () => {
    const host = await generatedWithIntruder();
    const paths = new HostPaths(host.root);
    // The first judged every unit; the second, queued with it, waited for the lock meanwhile (held by
    // a live process, PID 1, here) and gives up once the first has marked the target queued.
    const lock = join(host.root, 'run/lock/s390apconfig.lock');
    mkdirSync(join(host.root, 'run/lock'), { recursive: true });
    writeFileSync(lock, '1\n');
    const first = spawn('sh', ['-c', `sleep 0.3; mkdir -p ${host.root}/run/ap-persist/held; : > ${paths.targetStarted}; echo 'refused by the hook: the first' > ${paths.heldDir}/${INTRUDER}`]);
    const second = await runHook({ paths, sysfs: new FileSysfs(host.root), runner: recordingRunner(), env: {}, targetQueued: true, deadline: Date.now() + 800 });
    await new Promise((resolve) => first.on('exit', resolve));
    expect(second.errors.join('\n')).toContain('the AP configuration lock is held by PID 1');
    // The first's marks stand; the second's `all` is gone again.
    expect(readdirSync(paths.heldDir)).toEqual([INTRUDER]);
  });

  it('under --root without --exec nothing follows the hook: it says what it would start', async () => {
    const host = await generatedWithIntruder();
    const r = await run(['--root', host.root, '--json', 'hook', '--event', 'change-1'], { stdout: () => undefined, stderr: () => undefined, env: {} });
    expect(r).toBe(1);
    const report = JSON.parse(host.read('run/ap-persist/last-hook.json'));
    expect(report.started_by).toBeUndefined();
    expect(report.commands.map((c: { command: string }) => c.command)).toEqual([
      'modprobe vfio_ap',
      `systemctl --no-block start ap-persist-mdevs.target ${[GUEST1, GUEST2, GUEST3].map(mdevUnit).join(' ')}`,
    ]);
  });
});
