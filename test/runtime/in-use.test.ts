// mdev stop never writes a `remove` the kernel would block on: a guest that
// holds the mdev's VFIO device open (its group or its cdev, as /proc shows
// it) makes stop refuse, naming the process and the libvirt domain.

import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GUEST1, GUEST3, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { IdSet } from '../../src/model/idset.js';
import { givenHost, type TestHost } from '../support/host.js';

const FREE = { apmask: IdSet.full().minus(IdSet.of([5, 6])), aqmask: IdSet.full().minus(IdSet.of([4, 0x47, 0xab, 0xff])) };

function runningGuest3(): TestHost {
  return givenHost({ ...threeGuestsHost(), masks: FREE, vfioAp: true, activeMdevs: [{ uuid: GUEST3, adapters: [6], domains: [0x47, 0xff] }] });
}

function link(host: TestHost, rel: string, target: string): void {
  mkdirSync(dirname(join(host.root, rel)), { recursive: true });
  symlinkSync(target, join(host.root, rel));
}

function put(host: TestHost, rel: string, text: string): void {
  mkdirSync(dirname(join(host.root, rel)), { recursive: true });
  writeFileSync(join(host.root, rel), text);
}

describe('stopping an mdev a guest holds', () => {
  it('through its VFIO group: refused (exit 1) naming QEMU and the libvirt domain; nothing written', async () => {
    const host = runningGuest3();
    // The mdev core's links, and QEMU (pid 4242) with the group open.
    link(host, `sys/bus/mdev/devices/${GUEST3}`, `../../../devices/vfio_ap/matrix/${GUEST3}`);
    link(host, `sys/devices/vfio_ap/matrix/${GUEST3}/iommu_group`, '../../../../kernel/iommu_groups/12');
    mkdirSync(join(host.root, 'sys/kernel/iommu_groups/12'), { recursive: true });
    link(host, 'proc/4242/fd/31', '/dev/vfio/12');
    link(host, 'proc/4242/fd/0', '/dev/null');
    put(host, 'proc/4242/comm', 'qemu-system-s39\n');
    put(host, 'proc/1/comm', 'systemd\n');
    link(host, 'proc/1/fd/3', '/dev/vfio/13');
    put(host, 'run/libvirt/qemu/guest3.xml', `<domstatus><domain><devices><hostdev mode='subsystem' type='mdev' model='vfio-ap'><source><address uuid='${GUEST3}'/></source></hostdev></devices></domain></domstatus>\n`);
    const before = host.snapshot();
    const r = await host.run('mdev', 'stop', GUEST3);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`mdev ${GUEST3} is in use by libvirt domain guest3, process 4242 (qemu-system-s39); removing it now would block until the guest releases it`);
    expect(r.stderr).toContain('stop the guest first (virsh shutdown guest3)');
    expect(host.snapshot()).toEqual(before);

    // The guest stopped: QEMU closed the group.
    rmSync(join(host.root, 'proc/4242'), { recursive: true });
    rmSync(join(host.root, 'run/libvirt/qemu/guest3.xml'));
    const stopped = await host.run('mdev', 'stop', GUEST3);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(host.read(`sys/devices/vfio_ap/matrix/${GUEST3}/remove`)).toBe('1\n');
  });

  it('through its VFIO cdev (newer kernels): refused too', async () => {
    const host = runningGuest3();
    link(host, `sys/bus/mdev/devices/${GUEST3}`, `../../../devices/vfio_ap/matrix/${GUEST3}`);
    mkdirSync(join(host.root, `sys/devices/vfio_ap/matrix/${GUEST3}/vfio-dev/vfio3`), { recursive: true });
    link(host, 'proc/777/fd/9', '/dev/vfio/devices/vfio3');
    put(host, 'proc/777/comm', 'qemu-kvm\n');
    const r = await host.run('mdev', 'stop', GUEST3);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`mdev ${GUEST3} is in use by process 777 (qemu-kvm)`);
  });

  it('another mdev\'s holder does not count', async () => {
    const host = runningGuest3();
    link(host, `sys/bus/mdev/devices/${GUEST3}`, `../../../devices/vfio_ap/matrix/${GUEST3}`);
    link(host, `sys/devices/vfio_ap/matrix/${GUEST3}/iommu_group`, '../../../../kernel/iommu_groups/12');
    link(host, 'proc/4242/fd/31', '/dev/vfio/99');
    put(host, 'proc/4242/comm', 'qemu-system-s39\n');
    expect((await host.run('mdev', 'stop', GUEST3)).code).toBe(0);
    // An mdev that is not active is no remove at all.
    expect((await host.run('mdev', 'stop', GUEST1)).stdout).toContain('is not active');
  });

  it('fails closed: a running libvirt domain naming the mdev refuses the stop, even before QEMU opened it', async () => {
    const host = runningGuest3();
    link(host, `sys/bus/mdev/devices/${GUEST3}`, `../../../devices/vfio_ap/matrix/${GUEST3}`);
    link(host, `sys/devices/vfio_ap/matrix/${GUEST3}/iommu_group`, '../../../../kernel/iommu_groups/12');
    // QEMU has not opened the group (yet), but libvirt runs the domain with it.
    put(host, 'run/libvirt/qemu/guest3.xml', `<domstatus><domain><devices><hostdev mode='subsystem' type='mdev'><source><address uuid='${GUEST3}'/></source></hostdev></devices></domain></domstatus>\n`);
    const byDomain = await host.run('mdev', 'stop', GUEST3);
    expect(byDomain.code).toBe(1);
    expect(byDomain.stderr).toContain(`mdev ${GUEST3} is in use by libvirt domain guest3`);
  });
});
