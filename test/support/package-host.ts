// A host that gets ap-persist from its package: the package tests' Debian
// (package-rootfs.ts: man-db, bash-completion, a local apt archive with
// Debian's nodejs) booted with systemd as PID 1 in systemd-nspawn, the
// simulated kernel at /sys (FUSE), and nothing of ap-persist until the test
// runs `apt install`. Unlike booted-host.ts, whose tool is a link into the
// checkout run by the test's own node, here everything comes from the .deb:
// the tool, its node modules, Debian's /usr/bin/node, the files the maintainer
// scripts write.
//
// The host has a disk: a writable copy of the tree that outlives a boot.
// `powerOff()` shuts the container down cleanly from inside and writes what
// the boot changed (its overlay's upper layer: files, deletions, replaced
// directories) onto the disk, so the next `bootPackageHost` on the same disk
// is a reboot: same files, a fresh kernel (the simulated one at power-on).
// AP bus events are delivered as booted-host.ts delivers them (real `udevadm
// test`, builtins emulated, RUN programs inside udevd's sandbox).

import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, lchownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FakeHost } from '../../src/fakehost/builder.js';
import type { KernelFlavour } from '../../src/sysfs/sim-kernel.js';
import { bootContainer, waitFor, type Container, type LayerFile } from './container/index.js';
import { isAlive, mustSucceed, runCommand } from './container/process.js';
import { removeTree } from './container/rootfs.js';
import { tempDir } from './host.js';
import { ensurePackageRootfs } from './package-rootfs.js';
import { libvirtdRecord, RECORD, rigFiles, SIM, udevEvents, type AppliedEvent } from './booted-host.js';
export type { AppliedEvent };
import { startSimSysfs, type ControlCommand, type SimSysfs } from './sim-sysfs/mount.js';

/** vfio_ap's mdev parent device. */
/** Where the packages to install are (read-only). */
export const DEBS = '/srv/ap-persist-debs';

/** A writable copy of the package tests' tree: the host's disk across boots. */
export interface Disk {
  readonly path: string;
  /** Deletes it. */
  remove(): void;
}

/** Where disks go: not below /run (nspawn mounts a tmpfs there), and not a tmpfs: a few hundred MB each. */
const DISKS = '/var/tmp';
const DISK_PREFIX = 'ap-persist-disk-';

/** A disk with the package tests' tree, or with `from` (another cached tree). */
export async function makeDisk(from?: string): Promise<Disk> {
  const tree = from ?? (await ensurePackageRootfs()).path;
  mkdirSync(DISKS, { recursive: true });
  // Disks of test processes that died before removing theirs.
  for (const entry of readdirSync(DISKS)) {
    const m = new RegExp(`^${DISK_PREFIX}(\\d+)-`).exec(entry);
    if (m && !isAlive(Number(m[1]))) removeTree(join(DISKS, entry));
  }
  const path = mkdtempSync(join(DISKS, `${DISK_PREFIX}${process.pid}-`));
  mustSucceed('copying the tree', await runCommand(['cp', '-a', '--reflink=auto', `${tree}/.`, `${path}/`], { timeoutMs: 120_000 }));
  return { path, remove: () => removeTree(path) };
}

/**
 * The directories overlayfs marks opaque (trusted.overlay.opaque=y) below
 * dir: they replace the lower one. Refuses the features a plain copy cannot
 * carry over (renamed directories, metadata-only copies), which overlayfs
 * uses only when the kernel is told to (redirect_dir, metacopy).
 */
function opaqueDirs(dir: string): Set<string> {
  const script = `
import os, sys
root = sys.argv[1]
def attr(p, name):
    try:
        return os.getxattr(p, 'trusted.overlay.' + name, follow_symlinks=False)
    except OSError:
        return None
for d, dirs, files in os.walk(root):
    for name in dirs + files:
        p = os.path.join(d, name)
        for feature in ('redirect', 'metacopy'):
            if attr(p, feature) is not None:
                sys.exit('overlayfs ' + feature + ' on ' + p)
    for name in dirs:
        p = os.path.join(d, name)
        if attr(p, 'opaque') == b'y':
            print(os.path.relpath(p, root))
`;
  const r = spawnSync('python3', ['-c', script, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot carry the boot's writes over: ${r.stderr}`);
  return new Set(r.stdout.split('\n').filter(Boolean));
}

/**
 * Writes an overlayfs upper layer onto its lower tree, as the merged view
 * showed it: whiteouts (character devices 0:0) delete, opaque directories
 * replace, everything else is copied with its mode, owner and times.
 */
export function mergeUpper(upper: string, lower: string): void {
  const opaque = opaqueDirs(upper);
  const visit = (rel: string): void => {
    for (const name of readdirSync(join(upper, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      const from = join(upper, r);
      const to = join(lower, r);
      const st = lstatSync(from);
      const there = existsSync(to) || isLink(to) ? lstatSync(to) : undefined;
      if (st.isCharacterDevice() && st.rdev === 0) {
        rmSync(to, { recursive: true, force: true });
        continue;
      }
      if (st.isDirectory()) {
        if (there && (!there.isDirectory() || opaque.has(r))) rmSync(to, { recursive: true, force: true });
        mkdirSync(to, { recursive: true });
        visit(r);
        chownSync(to, st.uid, st.gid);
        chmodSync(to, st.mode & 0o7777);
        utimesSync(to, st.atime, st.mtime);
        continue;
      }
      if (there) rmSync(to, { recursive: true, force: true });
      if (st.isSymbolicLink()) {
        symlinkSync(readlinkSync(from), to);
        lchownSync(to, st.uid, st.gid);
      } else if (st.isFile()) {
        copyFileSync(from, to);
        chownSync(to, st.uid, st.gid);
        chmodSync(to, st.mode & 0o7777);
        utimesSync(to, st.atime, st.mtime);
      } else {
        throw new Error(`cannot carry ${from} over to the next boot: not a file, link or directory`);
      }
    }
  };
  visit('');
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * The writable layer of a running container (container.ts keeps it in
 * <temp>/<name>.XXXXXX/upper and removes it at stop).
 */
export function upperOf(c: Container): string {
  const t = tmpdir();
  const base = t === '/run' || t.startsWith('/run/') ? '/var/tmp' : t;
  const dirs = readdirSync(base).filter((e) => e.startsWith(`${c.name}.`));
  if (dirs.length !== 1 || !existsSync(join(base, dirs[0]!, 'upper'))) throw new Error(`cannot find the writable layer of ${c.name} in ${base}: ${dirs.join(', ')}`);
  return join(base, dirs[0]!, 'upper');
}

export interface PackageHostOptions {
  disk: Disk;
  host: FakeHost;
  kernel: KernelFlavour;
  /** A directory of .deb files, at DEBS in the container. */
  debs: string;
  /** Files put on the disk before this boot (the rig's are added). */
  files?: LayerFile[];
  faults?: ControlCommand[];
  /** As bootContainer: 'booted' (default) or 'manager' (to deliver the AP bus event while the boot waits for it). */
  until?: 'booted' | 'manager';
}

export interface PackageHost {
  container: Container;
  sim: SimSysfs;
  /** Runs a command; fails the test with its output unless it exits 0. */
  sh(script: string, opts?: { timeoutMs?: number }): Promise<string>;
  libvirtd(): { startedAt?: number; mdevsAtStart?: string[]; mdevsAtStop?: string[] };
  bindingsComplete(count: number): Promise<AppliedEvent>;
  parentAdded(devpath: string): Promise<AppliedEvent>;
  activeState(...units: string[]): Promise<string[]>;
  /** A clean shutdown from inside; what this boot wrote stays on the disk. */
  powerOff(): Promise<void>;
  /** Stops the container, forgetting what this boot wrote. */
  shutdown(): Promise<void>;
}

export async function bootPackageHost(opts: PackageHostOptions): Promise<PackageHost> {
  const sim = await startSimSysfs({ host: opts.host, kernel: opts.kernel, mtty: true });
  for (const fault of opts.faults ?? []) sim.control(fault);
  const record = tempDir('ap-persist-libvirtd-');
  // The rig is the machine's: it is on the disk after the first boot.
  const rigThere = existsSync(join(opts.disk.path, 'etc/systemd/system/ap-sim-sysfs.service'));
  let container: Container;
  try {
    container = await bootContainer({
      rootfs: opts.disk.path,
      until: opts.until ?? 'booted',
      binds: [
        { host: sim.mountpoint, container: SIM },
        { host: record, container: RECORD },
        { host: opts.debs, container: DEBS, readOnly: true },
      ],
      files: [...(rigThere ? [] : rigFiles()), ...(opts.files ?? [])],
    });
  } catch (e) {
    await sim.stop();
    throw e;
  }

  const states = async (...units: string[]): Promise<string[]> =>
    (await container.systemctl('show', '--property=ActiveState', '--value', ...units)).stdout.split('\n').filter(Boolean);
  // systemd-run (the rig's udevd emulation) needs the bus.
  await container.waitFor(async () => (await states('dbus.service'))[0] === 'active' || undefined, { timeoutMs: 30_000, intervalMs: 20, what: 'dbus up' });

  const events = udevEvents(container);

  let off = false;
  return {
    container,
    sim,
    async sh(script, o = {}) {
      const r = await container.exec(['sh', '-c', script], { timeoutMs: o.timeoutMs ?? 120_000, env: { LANG: 'C.UTF-8', DEBIAN_FRONTEND: 'noninteractive' } });
      if (r.code !== 0) throw new Error(`in the container: ${script}\nexit ${r.code ?? r.signal}${r.timedOut ? ' (timed out)' : ''}\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    },
    libvirtd: () => libvirtdRecord(record),
    ...events,
    activeState: states,
    async powerOff() {
      if (off) return;
      off = true;
      const upper = upperOf(container);
      const leader = container.leaderPid;
      // The halt takes the container's processes, this one included.
      void container.exec(['systemctl', 'poweroff'], { timeoutMs: 60_000 }).catch(() => undefined);
      await waitFor(() => !isAlive(leader), { timeoutMs: 60_000, intervalMs: 50, what: 'the container to power off' });
      try {
        mergeUpper(upper, opts.disk.path);
      } finally {
        await container.stop();
        await sim.stop();
      }
    },
    async shutdown() {
      if (off) return;
      off = true;
      try {
        await container.stop();
      } finally {
        await sim.stop();
      }
    },
  };
}
