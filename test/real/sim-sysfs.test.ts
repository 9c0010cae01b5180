// The simulated kernel mounted with FUSE, as the real boot test will see it
// at /sys: the same model as the in-process tests, now read and written by
// real processes. Told as the admin's story on the kernel documentation's
// three-guest host: what the runtime reads, what `echo` into sysfs answers,
// what real mdevctl does, and the events a fake modprobe and the test drive.

import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect } from 'vitest';
import type { FakeHost } from '../../src/fakehost/builder.js';
import { GUEST1, GUEST2, GUEST3, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { parseIdList } from '../../src/model/idlist.js';
import { listActiveMdevs, listCards, listQueues, readActiveMasks, readMaxIds, vfioApLoaded } from '../../src/sysfs/ap-host.js';
import { FileSysfs } from '../../src/sysfs/file-sysfs.js';
import type { KernelFlavour, SimKernelState } from '../../src/sysfs/sim-kernel.js';
import type { Sysfs } from '../../src/sysfs/sysfs.js';
import { tempDir } from '../support/host.js';
import { runInNamespace } from '../support/namespace.js';
import { itWith, MOUNT_NAMESPACE } from '../support/real-tools.js';
import { givenSimulatedHost } from '../support/sim-host.js';
import { requireSimSysfs, startSimSysfs, type SimSysfs } from '../support/sim-sysfs/mount.js';

const run = promisify(execFile);
const SERIAL = '7e9d0989-8c3e-4c4e-9a5b-0123456789ab';
const NEW_GUEST = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd';

/** The three-guest host secured as its store says: cards 5, 6 x domains 4, 0x47, 0xab, 0xff freed. */
function securedHost(more: Partial<FakeHost> = {}): FakeHost {
  return {
    ...threeGuestsHost(),
    masks: { apmask: parseIdList('0-4,7-255'), aqmask: parseIdList('0-3,5-70,72-170,172-254') },
    vfioAp: true,
    ...more,
  };
}

const THREE_GUESTS_RUNNING = [
  { uuid: GUEST1, adapters: [5, 6], domains: [4, 0xab], controlDomains: [0xab] },
  { uuid: GUEST2, adapters: [5], domains: [0x47, 0xff] },
  { uuid: GUEST3, adapters: [6], domains: [0x47, 0xff] },
];

/** Everything the runtime reads from sysfs, in plain values. */
function runtimeView(sysfs: Sysfs) {
  const masks = readActiveMasks(sysfs);
  return {
    masks: masks && { apmask: masks.apmask.ids(), aqmask: masks.aqmask.ids() },
    max: readMaxIds(sysfs),
    cards: listCards(sysfs),
    queues: listQueues(sysfs),
    vfioAp: vfioApLoaded(sysfs),
    mdevs: listActiveMdevs(sysfs).map((m) => ({ uuid: m.uuid, adapters: m.adapters.ids(), domains: m.domains.ids(), control: m.controlDomains.ids() })),
  };
}

/** bash -c SCRIPT with SYS and SIM set; its exit code and output. */
async function shell(sim: SimSysfs, script: string, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('bash', ['-c', script], { env: { ...process.env, SIM: sim.mountpoint, SYS: sim.sys, ...env }, timeout: 10_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/**
 * Namespace script lines that give it the mount at /sys as a systemd-nspawn
 * container has it: /sys a tmpfs, bus, class, devices and module bind mounts
 * on it. Each bind is checked to be the simulated sysfs, and is checked again
 * before every step, so nothing is ever written to the machine's /sys.
 */
function simAtSys(sim: SimSysfs): string {
  return `SIM=${sim.mountpoint}
bind_sim() {
  mkdir "/sys/$1"
  mount --bind "$SIM/sys/$1" "/sys/$1"
  [ "$(stat -c %d "/sys/$1")" = "$(stat -c %d "$SIM/sys")" ] || { echo "/sys/$1 is not the simulated sysfs" >&2; exit 96; }
  fresh[/sys/$1]=$(stat -c %d "/sys/$1")
}
fresh_dir /sys
for tree in bus class devices module; do bind_sim "$tree"; done`;
}

/** A step's exit code and output from the namespace script. */
function step(out: string, name: string) {
  const read = (ext: string): string => readFileSync(join(out, `${name}.${ext}`), 'utf8');
  return { rc: Number(read('rc')), out: read('out'), err: read('err') };
}

describe('the simulated kernel mounted with FUSE', () => {
  itWith(requireSimSysfs(), 'the runtime reads through the mount what the in-memory kernel shows: masks, queues and drivers, running mdevs', async () => {
    const host = securedHost({ activeMdevs: THREE_GUESTS_RUNNING });
    const sim = await startSimSysfs({ host, kernel: '6.0' });
    try {
      const mounted = runtimeView(new FileSysfs(sim.mountpoint));
      expect(mounted).toEqual(runtimeView(givenSimulatedHost(host, '6.0').kernel()));
      // And it is the host the admin built: eight queues for vfio_ap, three guests.
      expect(mounted.queues.filter((q) => q.driver === 'vfio_ap')).toHaveLength(8);
      expect(mounted.mdevs.map((m) => m.uuid).sort()).toEqual([GUEST1, GUEST2, GUEST3].sort());
      expect(readFileSync(join(sim.sys, 'bus/ap/bindings'), 'utf8')).toBe('8/8 (complete)\n');
    } finally {
      await sim.stop();
    }
  });

  const ERRNOS: { kernel: KernelFlavour; sharing: string }[] = [
    { kernel: '5.4', sharing: 'Address already in use' },
    { kernel: '6.0', sharing: 'Address already in use' },
    { kernel: '6.19', sharing: 'Address already in use' },
  ];
  for (const { kernel, sharing } of ERRNOS) {
    itWith(requireSimSysfs('bash'), `${kernel}: echo into the mount gets the kernel's errno, and a refused write changes nothing`, async () => {
      const sim = await startSimSysfs({ host: securedHost({ activeMdevs: THREE_GUESTS_RUNNING }), kernel });
      try {
        const matrix = '$SYS/devices/vfio_ap/matrix';
        const r = await shell(
          sim,
          `echo 0xgg > $SYS/bus/ap/apmask || echo "apmask refused"
cat $SYS/bus/ap/apmask
echo ${NEW_GUEST} > ${matrix}/mdev_supported_types/vfio_ap-passthrough/create
echo 0x47 > ${matrix}/${NEW_GUEST}/assign_domain
echo 5 > ${matrix}/${NEW_GUEST}/assign_adapter || echo "assign refused"
cat ${matrix}/${NEW_GUEST}/matrix
echo ${GUEST1} > ${matrix}/mdev_supported_types/vfio_ap-passthrough/create || echo "create refused"`,
        );
        const lines = r.stdout.trim().split('\n');
        expect(lines).toEqual(['apmask refused', '0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', 'assign refused', '.0047', 'create refused']);
        expect(r.stderr).toContain('write error: Invalid argument');
        // 05.0047 is guest2's: vfio_ap answers EADDRINUSE on every kernel.
        expect(r.stderr).toContain(`write error: ${sharing}`);
        expect(r.stderr).toContain('write error: File exists');
        // The writes log has what the kernel took, by the paths links resolve to.
        expect(sim.state().writes).toEqual([
          { path: 'devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create', data: `${NEW_GUEST}\n` },
          { path: `devices/vfio_ap/matrix/${NEW_GUEST}/assign_domain`, data: '0x47\n' },
        ]);
      } finally {
        await sim.stop();
      }
    });
  }

  itWith(
    requireSimSysfs('bash', 'mdevctl', MOUNT_NAMESPACE),
    'real mdevctl, with /sys/bus, /sys/class, /sys/devices, /sys/module bound from the mount, lists types, starts and stops a vfio_ap and an mtty mdev',
    async () => {
      const sim = await startSimSysfs({ host: securedHost(), kernel: '6.0', mtty: true });
      try {
        const work = tempDir('ap-persist-sim-mdevctl-');
        const out = join(work, 'out');
        mkdirSync(out);
        const guest1 = join(work, 'guest1.json');
        const attrs = [{ assign_adapter: '5' }, { assign_adapter: '6' }, { assign_domain: '4' }, { assign_domain: '0xab' }, { assign_control_domain: '0xab' }];
        writeFileSync(guest1, JSON.stringify({ mdev_type: 'vfio_ap-passthrough', start: 'manual', attrs }));
        const body = `
${simAtSys(sim)}
fresh_dir /etc/mdevctl.d
mkdir -p /etc/mdevctl.d/scripts.d/callouts /etc/mdevctl.d/scripts.d/notifiers

step types mdevctl types
step define mdevctl define -u ${GUEST1} -p matrix --jsonfile ${guest1}
step start-ap mdevctl start -u ${GUEST1}
step start-mtty mdevctl start -u ${SERIAL} -p mtty -t mtty-2
step start-again mdevctl start -u ${SERIAL} -p mtty -t mtty-1
cp "$SIM/state" "$NS_OUT/started.json"
step list mdevctl list
step list-mtty mdevctl list -p mtty
step stop-ap mdevctl stop -u ${GUEST1}
step stop-mtty mdevctl stop -u ${SERIAL}
cp "$SIM/state" "$NS_OUT/stopped.json"
step list-after mdevctl list
`;
        const ns = await runInNamespace(body, work, out, 40_000);
        expect(ns, ns.stderr).toMatchObject({ code: 0 });
        const s = (name: string) => step(out, name);

        // Both parents, found through class/mdev_bus, with what the drivers report.
        const types = s('types');
        expect(types.rc).toBe(0);
        expect(types.out).toContain('matrix\n  vfio_ap-passthrough\n    Available instances: 65536\n    Device API: vfio-ap\n    Name: VFIO AP Passthrough Device\n');
        expect(types.out).toContain('mtty\n  mtty-1\n    Available instances: 24\n    Device API: vfio-pci\n    Name: Single port serial\n');
        expect(types.out).toContain('  mtty-2\n    Available instances: 12\n');

        for (const name of ['define', 'start-ap', 'start-mtty']) expect(s(name), name).toMatchObject({ rc: 0, err: '' });
        // The same UUID again, even under another type: mdevctl sees it active and stops there.
        expect(s('start-again').rc).not.toBe(0);

        const started = JSON.parse(readFileSync(join(out, 'started.json'), 'utf8')) as SimKernelState;
        expect(started.mdevs).toEqual([
          { uuid: GUEST1, parent: 'matrix', type: 'vfio_ap-passthrough', adapters: [5, 6], domains: [4, 0xab], controlDomains: [0xab], running: false },
          { uuid: SERIAL, parent: 'mtty', type: 'mtty-2' },
        ]);
        expect(s('list').out.trim().split('\n').sort()).toEqual([`${GUEST1} matrix vfio_ap-passthrough manual (defined)`, `${SERIAL} mtty mtty-2 manual`].sort());
        expect(s('list-mtty').out.trim()).toBe(`${SERIAL} mtty mtty-2 manual`);

        for (const name of ['stop-ap', 'stop-mtty']) expect(s(name), name).toMatchObject({ rc: 0, err: '' });
        const stopped = JSON.parse(readFileSync(join(out, 'stopped.json'), 'utf8')) as SimKernelState;
        expect(stopped.mdevs).toEqual([]);
        // mdevctl wrote create, each attribute, and remove, as the kernel got them.
        expect(stopped.writes.map((w) => `${w.path} ${w.data}`)).toEqual([
          `devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create ${GUEST1}`,
          `devices/vfio_ap/matrix/${GUEST1}/assign_adapter 5`,
          `devices/vfio_ap/matrix/${GUEST1}/assign_adapter 6`,
          `devices/vfio_ap/matrix/${GUEST1}/assign_domain 4`,
          `devices/vfio_ap/matrix/${GUEST1}/assign_domain 0xab`,
          `devices/vfio_ap/matrix/${GUEST1}/assign_control_domain 0xab`,
          `devices/virtual/mtty/mtty/mdev_supported_types/mtty-2/create ${SERIAL}`,
          `devices/vfio_ap/matrix/${GUEST1}/remove 1`,
          `devices/virtual/mtty/mtty/${SERIAL}/remove 1`,
        ]);
        expect(s('list-after').out.trim()).toBe('');
      } finally {
        await sim.stop();
      }
    },
    60_000,
  );

  itWith(
    requireSimSysfs('bash', 'udevadm', MOUNT_NAMESPACE),
    'udev takes what is under the bound /sys for devices: subsystem, driver and uevent of queues, cards, the matrix and an mdev',
    async () => {
      const sim = await startSimSysfs({ host: securedHost({ activeMdevs: THREE_GUESTS_RUNNING }), kernel: '6.0' });
      try {
        const work = tempDir('ap-persist-sim-udev-');
        const out = join(work, 'out');
        mkdirSync(out);
        // sd-device refuses a syspath that is not on sysfs unless told not to check.
        const info = (path: string): string => `env SYSTEMD_DEVICE_VERIFY_SYSFS=0 udevadm info -q property -p ${path}`;
        const body = `
${simAtSys(sim)}
fresh_dir /run
step queue ${info('/devices/ap/card05/05.0004')}
step card ${info('/sys/bus/ap/devices/card06')}
step matrix ${info('/devices/vfio_ap/matrix')}
step mdev ${info(`/sys/bus/mdev/devices/${GUEST2}`)}
step trigger env SYSTEMD_DEVICE_VERIFY_SYSFS=0 udevadm trigger --dry-run --verbose --subsystem-match=ap --subsystem-match=mdev
`;
        const ns = await runInNamespace(body, work, out, 30_000);
        expect(ns, ns.stderr).toMatchObject({ code: 0 });
        const props = (name: string): string[] => step(out, name).out.trim().split('\n');
        expect(props('queue')).toEqual(['DEVPATH=/devices/ap/card05/05.0004', 'DEVTYPE=ap_queue', 'DRIVER=vfio_ap', 'SUBSYSTEM=ap']);
        expect(props('card')).toEqual(['DEVPATH=/devices/ap/card06', 'DEVTYPE=ap_card', 'DEV_TYPE=000B', 'MODALIAS=ap:t0B', 'SUBSYSTEM=ap']);
        expect(props('matrix')).toEqual(['DEVPATH=/devices/vfio_ap/matrix', 'DRIVER=vfio_ap', 'SUBSYSTEM=matrix']);
        expect(props('mdev')).toEqual([`DEVPATH=/devices/vfio_ap/matrix/${GUEST2}`, 'SUBSYSTEM=mdev']);
        // Coldplug finds the bus root, both cards, the eight queues and the three mdevs.
        expect(props('trigger')).toHaveLength(1 + 2 + 8 + 3);
      } finally {
        await sim.stop();
      }
    },
    60_000,
  );

  itWith(requireSimSysfs('bash'), 'control: a fake modprobe loads vfio_ap (or fails as told), a card arrives, a guest holds its mdev, a write fails', async () => {
    const sim = await startSimSysfs({ host: securedHost({ vfioAp: false }), kernel: '6.0' });
    try {
      // What a container's /usr/sbin/modprobe would be: one line into the control file.
      const bin = tempDir('ap-persist-sim-bin-');
      // bash, not sh: its echo says which errno the write got (dash says "I/O error" for all).
      writeFileSync(join(bin, 'modprobe'), '#!/bin/bash\necho "load $1" > "$SIM/control"\n', { mode: 0o755 });
      const modprobe = `PATH=${bin}:$PATH modprobe vfio_ap`;
      expect((await shell(sim, 'test -d $SYS/devices/vfio_ap/matrix')).code).toBe(1);
      expect((await shell(sim, 'readlink $SYS/bus/ap/devices/05.0004/driver')).code).toBe(1); // freed, not bound yet

      sim.control('fail-load vfio_ap');
      const failed = await shell(sim, modprobe);
      expect(failed.code).not.toBe(0);
      expect(failed.stderr).toContain('No such device');
      expect((await shell(sim, 'test -d $SYS/devices/vfio_ap/matrix')).code).toBe(1);

      const loaded = await shell(sim, `${modprobe} && ls $SYS/devices/vfio_ap/matrix/mdev_supported_types && cat $SYS/module/vfio_ap/initstate && readlink $SYS/bus/ap/devices/05.0004/driver`);
      expect(loaded).toMatchObject({ code: 0, stderr: '' });
      expect(loaded.stdout).toBe('vfio_ap-passthrough\nlive\n../../../../bus/ap/drivers/vfio_ap\n');
      expect(sim.state().modules).toEqual(['vfio_ap']);

      // A CEX7 card 07 arrives: the host keeps adapter 7 but not these domains, so vfio_ap takes its queues.
      sim.control('add-card 07 13');
      expect((await shell(sim, 'cat $SYS/bus/ap/devices/card07/hwtype; readlink $SYS/bus/ap/devices/07.0047/driver')).stdout).toBe(
        '13\n../../../../bus/ap/drivers/vfio_ap\n',
      );

      // A guest holds guest1's mdev: the kernel's remove would block; the mount answers EINTR and the
      // model lists the write in hungRemoves. Released, it goes.
      const matrix = '$SYS/devices/vfio_ap/matrix';
      await shell(sim, `echo ${GUEST1} > ${matrix}/mdev_supported_types/vfio_ap-passthrough/create`);
      sim.control(`guest-running ${GUEST1} 1`);
      expect((await shell(sim, `echo 1 > ${matrix}/${GUEST1}/remove`)).stderr).toContain('Interrupted system call');
      expect(sim.state().hungRemoves).toEqual([{ path: `devices/vfio_ap/matrix/${GUEST1}/remove`, uuid: GUEST1, data: '1\n' }]);
      sim.control(`guest-running ${GUEST1} 0`);
      sim.control(`fail-write devices/vfio_ap/matrix/${GUEST1}/remove EIO`);
      expect((await shell(sim, `echo 1 > ${matrix}/${GUEST1}/remove`)).stderr).toContain('Input/output error');
      expect((await shell(sim, `echo 1 > ${matrix}/${GUEST1}/remove && test ! -e ${matrix}/${GUEST1}`)).code).toBe(0);

      // A command the model does not know is EINVAL, to the writer.
      expect(() => sim.control('reboot' as never)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    } finally {
      await sim.stop();
    }
  });
});
