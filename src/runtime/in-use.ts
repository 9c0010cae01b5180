// Who holds an mdev open. Removing an mdev a guest holds does not fail: the
// kernel blocks the remove until the device is released (vfio core's
// vfio_unregister_group_dev; since 6.5 vfio_ap also asks QEMU to let go), so
// `mdev stop` must know before it writes `remove`. What the kernel waits for
// is an open file of the device: its VFIO group (/dev/vfio/<group>) or, on
// newer kernels, its VFIO cdev (/dev/vfio/devices/vfioN). Every process's open
// files are in /proc/<pid>/fd, so that is what we read; libvirt's status
// files for running domains (/run/libvirt/qemu/<name>.xml) name the guest.
// All paths are under the root, so a test root can describe any host.

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { guestsUsing, runningGuests } from '../host/libvirt.js';
import type { HostPaths } from '../host/paths.js';
import { readAttr } from '../sysfs/ap-host.js';
import type { Sysfs } from '../sysfs/sysfs.js';

/** Who holds it, or what we could not look at: either way the remove must not be written. */
export type MdevHolder =
  | { kind: 'process'; pid: number; /** /proc/<pid>/comm */ command: string }
  | { kind: 'domain'; /** a running libvirt domain whose live XML names the mdev */ name: string }
  | { kind: 'unknown'; /** what could not be read, and why */ what: string };

/** The device files through which a process can hold the mdev. */
function deviceFiles(sysfs: Sysfs, uuid: string): string[] {
  const files: string[] = [];
  // A link to kernel/iommu_groups/<N>; reading a link gives its last part.
  const group = readAttr(sysfs, `bus/mdev/devices/${uuid}/iommu_group`)?.trim().split('/').pop();
  if (group && /^\d+$/.test(group)) files.push(`/dev/vfio/${group}`);
  for (const cdev of sysfs.list(`bus/mdev/devices/${uuid}/vfio-dev`)) files.push(`/dev/vfio/devices/${cdev}`);
  return files;
}

/**
 * Every holder of the mdev: processes with its VFIO device open, running
 * libvirt domains that name it, and anything we could not look at. Fails
 * closed: a process whose open files we may not read (not root, hidepid)
 * might be the guest, and a remove it holds would hang.
 */
export function mdevHolders(paths: HostPaths, sysfs: Sysfs, uuid: string): MdevHolder[] {
  const files = new Set(deviceFiles(sysfs, uuid));
  const holders: MdevHolder[] = guestsUsing(runningGuests(paths), uuid).map((name): MdevHolder => ({ kind: 'domain', name }));
  // No VFIO device: the mdev is not bound to vfio, so nothing can hold it open.
  if (files.size > 0) {
    const proc = paths.at('proc');
    let pids: string[] = [];
    try {
      pids = readdirSync(proc).filter((n) => /^\d+$/.test(n));
    } catch (err) {
      // A test root describes no processes; the host always has /proc.
      if (paths.isRealRoot) holders.push({ kind: 'unknown', what: `${proc}: ${(err as NodeJS.ErrnoException).code}` });
    }
    for (const pid of pids) {
      let fds: string[];
      try {
        fds = readdirSync(join(proc, pid, 'fd'));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ESRCH') holders.push({ kind: 'unknown', what: `the open files of process ${pid} (${code})` });
        continue; // gone meanwhile
      }
      const holds = fds.some((fd) => {
        try {
          return files.has(readlinkSync(join(proc, pid, 'fd', fd)));
        } catch {
          return false;
        }
      });
      if (!holds) continue;
      let command = '?';
      try {
        command = readFileSync(join(proc, pid, 'comm'), 'utf8').trim();
      } catch {
        // gone meanwhile
      }
      holders.push({ kind: 'process', pid: Number(pid), command });
    }
  }
  return holders;
}

/** `process 4242 (qemu-system-s390x)`, `libvirt domain guest1`, `unreadable: ...` */
export function describeHolder(h: MdevHolder): string {
  if (h.kind === 'process') return `process ${h.pid} (${h.command})`;
  if (h.kind === 'domain') return `libvirt domain ${h.name}`;
  return `possibly whatever holds ${h.what}, which could not be read`;
}
