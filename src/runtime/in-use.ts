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
import type { HostPaths } from '../host/paths.js';
import { readAttr } from '../sysfs/ap-host.js';
import type { Sysfs } from '../sysfs/sysfs.js';

export interface MdevHolder {
  pid: number;
  /** The process's name (/proc/<pid>/comm). */
  command: string;
  /** The libvirt domain whose status names the mdev, when one does. */
  domain?: string;
}

/** The device files through which a process can hold the mdev. */
function deviceFiles(sysfs: Sysfs, uuid: string): string[] {
  const files: string[] = [];
  // A link to kernel/iommu_groups/<N>; reading a link gives its last part.
  const group = readAttr(sysfs, `bus/mdev/devices/${uuid}/iommu_group`)?.trim().split('/').pop();
  if (group && /^\d+$/.test(group)) files.push(`/dev/vfio/${group}`);
  for (const cdev of sysfs.list(`bus/mdev/devices/${uuid}/vfio-dev`)) files.push(`/dev/vfio/devices/${cdev}`);
  return files;
}

/** The running libvirt domains whose live XML names the mdev, by name. */
function libvirtDomains(paths: HostPaths, uuid: string): string[] {
  const dir = paths.at('run/libvirt/qemu');
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.xml'));
  } catch {
    return [];
  }
  const pattern = new RegExp(`<address[^>]*\\buuid=['"]${uuid}['"]`, 'i');
  return names.filter((n) => {
    try {
      return pattern.test(readFileSync(join(dir, n), 'utf8'));
    } catch {
      return false;
    }
  }).map((n) => n.slice(0, -4));
}

/** Every process holding the mdev's VFIO device open; empty when none does. */
export function mdevHolders(paths: HostPaths, sysfs: Sysfs, uuid: string): MdevHolder[] {
  const files = new Set(deviceFiles(sysfs, uuid));
  const domains = libvirtDomains(paths, uuid);
  const holders: MdevHolder[] = [];
  if (files.size > 0) {
    const proc = paths.at('proc');
    let pids: string[] = [];
    try {
      pids = readdirSync(proc).filter((n) => /^\d+$/.test(n));
    } catch {
      // no /proc under this root: nothing to see
    }
    for (const pid of pids) {
      let fds: string[];
      try {
        fds = readdirSync(join(proc, pid, 'fd'));
      } catch {
        continue; // gone, or not ours to read
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
      holders.push({ pid: Number(pid), command, ...(domains[0] ? { domain: domains[0] } : {}) });
    }
  }
  return holders;
}

/** `process 4242 (qemu-system-s390x, libvirt domain guest1)` */
export function describeHolder(h: MdevHolder): string {
  return `process ${h.pid} (${h.command}${h.domain ? `, libvirt domain ${h.domain}` : ''})`;
}
