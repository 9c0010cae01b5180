// A real boot of an ap-persist host: Debian with systemd as PID 1 in
// systemd-nspawn, the simulated kernel mounted with FUSE and seen at /sys by
// every process (units, hook, mdevctl), ap-persist installed by its own
// `install` into a root that becomes the container's writable layer (the
// store included, so generate runs and the preset enables the boot wait), a
// fake modprobe that loads modules into the simulated kernel, and a fake
// libvirtd that records when it started and which mdevs it found.
// AP bus events are delivered as udevd delivers them: real `udevadm test`
// evaluates the rules (its ATTR writes reach the simulated kernel), builtins
// are emulated, and every RUN program runs inside the sandbox of the
// distribution's own systemd-udevd.service.

import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { run } from '../../src/cli/program.js';
import type { FakeHost } from '../../src/fakehost/builder.js';
import type { KernelFlavour } from '../../src/sysfs/sim-kernel.js';
import {
  bootContainer,
  checkoutBind,
  CONTAINER_NODE,
  CONTAINER_SRC,
  nodeBind,
  runAsUdevd,
  splitUdevCommand,
  udevTest,
  type Container,
  type LayerFile,
  type UdevRunResult,
} from './container/index.js';
import { tempDir } from './host.js';
import { startSimSysfs, type ControlCommand, type SimSysfs } from './sim-sysfs/mount.js';

const CHECKOUT = fileURLToPath(new URL('../..', import.meta.url));
/** Where the package would put the tool; a link into the checkout, so "removing the package" is one rm. */
export const TOOL = '/usr/lib/ap-persist/ap-persist.cjs';
/** The FUSE root (sys/, control, state) inside the container. */
export const SIM = '/ap-sim';
/** vfio_ap's mdev parent device. */
const MATRIX_DEVICE = '/devices/vfio_ap/matrix';
/** A host directory the fake libvirtd writes its records to; it outlives the container. */
export const RECORD = '/var/lib/fake-libvirtd';

/** Files of the test rig itself, not of ap-persist (the package test boots the same rig). */
export function rigFiles(): LayerFile[] {
  const unit = (name: string, text: string): LayerFile => ({ path: `/etc/systemd/system/${name}`, content: text });
  const want = (target: string, name: string): LayerFile => ({ path: `/etc/systemd/system/${target}.wants/${name}`, symlink: `/etc/systemd/system/${name}` });
  return [
    // The kernel is there from the first instant: the fake AP bus, vfio_ap and mdev core replace /sys's own.
    unit(
      'ap-sim-sysfs.service',
      `[Unit]
Description=test rig: the simulated kernel's sysfs at /sys
DefaultDependencies=no
Before=sysinit.target local-fs.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for d in bus class devices; do mount --bind ${SIM}/sys/$d /sys/$d; done'
`,
    ),
    want('sysinit.target', 'ap-sim-sysfs.service'),
    // modprobe as the kernel answers it: the simulated kernel loads the module, or fails as told.
    {
      path: '/usr/local/sbin/modprobe',
      mode: 0o755,
      content: `#!/bin/sh
# test rig: load modules into the simulated kernel
for m in "$@"; do case "$m" in -*) ;; *) mod=$m ;; esac; done
printf 'load %s' "$mod" > ${SIM}/control 2>/dev/null && exit 0
echo "modprobe: ERROR: could not insert '$mod': No such device" >&2
exit 1
`,
    },
    // libvirt: started after ap-persist-wait.service (its Before=), stopped before the mdevs.
    unit(
      'libvirtd.service',
      `[Unit]
Description=test rig: a libvirtd that records what it finds
[Service]
Type=simple
# The start time last: once it is there, the rest is.
ExecStart=/bin/sh -c 't=$$(date +%%s.%%N); ls /sys/bus/mdev/devices > ${RECORD}/mdevs-at-start 2>&1; echo $$t > ${RECORD}/started; exec sleep infinity'
ExecStop=/bin/sh -c 'ls /sys/bus/mdev/devices > ${RECORD}/mdevs-at-stop 2>&1'
[Install]
WantedBy=multi-user.target
`,
    ),
    want('multi-user.target', 'libvirtd.service'),
    // Debian 12's mdevctl rule runs /usr/sbin/mdevctl, its package ships /usr/bin/mdevctl: as a fixed package would.
    { path: '/usr/sbin/mdevctl', symlink: '/usr/bin/mdevctl' },
  ];
}

/** ap-persist's own `install` into a staging root; its result becomes layer files. */
async function installStaged(store: string, extra: Record<string, string>): Promise<LayerFile[]> {
  const stage = tempDir('ap-persist-stage-');
  mkdirSync(join(stage, 'etc/ap-persist'), { recursive: true });
  writeFileSync(join(stage, 'etc/ap-persist/ap-persist.conf'), store);
  for (const [path, text] of Object.entries(extra)) {
    mkdirSync(dirname(join(stage, path)), { recursive: true });
    writeFileSync(join(stage, path), text);
  }
  let err = '';
  const io = { stdout: () => undefined, stderr: (t: string) => void (err += t), env: {} };
  const code = await run(['--root', stage, 'install', '--node', CONTAINER_NODE, '--bin', TOOL, '--no-reload'], io);
  // The warnings say node and the tool are not in the staging tree: they are in the container.
  expect(code, err).toBe(0);
  const files: LayerFile[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      const st = lstatSync(full);
      const path = `/${relative(stage, full)}`;
      if (st.isDirectory()) walk(full);
      else if (st.isSymbolicLink()) files.push({ path, symlink: readlinkSync(full) });
      else files.push({ path, content: readFileSync(full), mode: st.mode & 0o7777 });
    }
  };
  walk(stage);
  return files;
}

export interface BootedHostOptions {
  /** The kernel's side of the host: cards, domains, masks at power-on. */
  host: FakeHost;
  kernel: KernelFlavour;
  /** The store installed with the package. */
  store: string;
  /** More files under the root (mdevctl definitions), path relative to it. */
  files?: Record<string, string>;
  /** Faults the kernel has from power-on. */
  faults?: ControlCommand[];
  /**
   * A disk to boot (package-host.ts makeDisk) instead of the cached tree: a
   * boot's writes kept on it make the next boot a reboot. The rig and
   * ap-persist are put on it at its first boot only.
   */
  rootfs?: string;
}

export interface AppliedEvent {
  /** Host clock (same as the container's) just before udev began the event. */
  at: number;
  runs: string[];
  programs: UdevRunResult[];
}

export interface BootedHost {
  container: Container;
  sim: SimSysfs;
  /** The fake libvirtd's records: when it started (ms), and the mdevs it found then and at its stop. */
  libvirtd(): { startedAt?: number; mdevsAtStart?: string[]; mdevsAtStop?: string[] };
  /** An AP bus change event with BINDINGS=complete, as udevd handles it. */
  bindingsComplete(count: number): Promise<AppliedEvent>;
  /** An add event of an mdev parent device (vfio_ap's matrix, mtty): mdevctl's autostart rule. */
  parentAdded(devpath: string): Promise<AppliedEvent>;
  /** `systemctl show -p ActiveState --value` of each unit. */
  activeState(...units: string[]): Promise<string[]>;
  /** Shuts the container down cleanly; the sim kernel stays for the asserts. */
  shutdown(): Promise<void>;
}

/** What the rig's fake libvirtd recorded in `dir` (the host side of RECORD). */
export function libvirtdRecord(dir: string): ReturnType<BootedHost['libvirtd']> {
  const read = (name: string): string | undefined => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch {
      return undefined;
    }
  };
  const list = (name: string): string[] | undefined => read(name)?.split('\n').filter(Boolean);
  const started = read('started');
  return { startedAt: started ? Math.round(parseFloat(started) * 1000) : undefined, mdevsAtStart: list('mdevs-at-start'), mdevsAtStop: list('mdevs-at-stop') };
}

/**
 * AP bus and mdev parent events as udevd handles them in `container`: real
 * `udevadm test` for the rules, each RUN program as udevd runs it
 * (runAsUdevd), the kmod builtin as a load into the simulated kernel.
 */
export function udevEvents(container: Container): Pick<BootedHost, 'bindingsComplete' | 'parentAdded'> {
  const deliver = async (runs: string[], builtins: string[], properties: Record<string, string>): Promise<UdevRunResult[]> => {
    const programs: UdevRunResult[] = [];
    // Events a module load makes the kernel send: other devices, so other udevd workers, in parallel.
    const caused: Promise<AppliedEvent>[] = [];
    // In the rules' order, as a udevd worker runs them.
    for (const entry of runs) {
      if (builtins.includes(entry)) {
        const kmod = /^kmod load (\S+)$/.exec(entry);
        if (!kmod) throw new Error(`no emulation for the builtin '${entry}'`);
        // The kmod builtin loads in-process; a failure is only logged by udevd.
        const loaded = await container.exec(['sh', '-c', `printf 'load %s' '${kmod[1]}' > ${SIM}/control`]);
        // vfio_ap's matrix device appears (add), and the mdev core announces the new parent
        // (change, MDEV_STATE=registered): mdevctl's rule starts its autostart mdevs on each.
        if (loaded.code === 0 && kmod[1] === 'vfio_ap') caused.push(parentAddedEvent(MATRIX_DEVICE), parentRegisteredEvent(MATRIX_DEVICE));
      } else {
        programs.push(await runAsUdevd(container, splitUdevCommand(entry), properties));
      }
    }
    for (const event of await Promise.all(caused)) programs.push(...event.programs);
    return programs;
  };

  const parentAddedEvent = async (devpath: string): Promise<AppliedEvent> => {
    const at = Date.now();
    const test = await udevTest(container, { action: 'add', devpath });
    return { at, runs: test.runs, programs: await deliver(test.runs, test.builtins, test.properties) };
  };

  // mdev_register_parent's change event; its property lives only in the event, so udevadm test
  // reads it from a uevent file of its own (in its private mount namespace).
  const parentRegisteredEvent = async (devpath: string): Promise<AppliedEvent> => {
    const at = Date.now();
    const dir = `/sys${devpath}`;
    const test = await udevTest(container, {
      action: 'change',
      devpath,
      sysfsMount: dir,
      sysfs: { [`${dir}/uevent`]: 'MDEV_STATE=registered\n', [`${dir}/subsystem`]: { symlink: '../../../bus/matrix' } },
    });
    return { at, runs: test.runs, programs: await deliver(test.runs, test.builtins, test.properties) };
  };

  return {
    async bindingsComplete(count) {
      const at = Date.now();
      // The bus device's event properties, as the kernel's uevent carries them.
      const test = await udevTest(container, {
        action: 'change',
        devpath: '/devices/ap',
        sysfsMount: '/sys/devices/ap',
        sysfs: {
          '/sys/devices/ap/uevent': `BINDINGS=complete\nCOMPLETECOUNT=${count}\n`,
          '/sys/devices/ap/subsystem': { symlink: '../../bus/ap' },
        },
      });
      return { at, runs: test.runs, programs: await deliver(test.runs, test.builtins, test.properties) };
    },
    parentAdded: parentAddedEvent,
  };
}

/**
 * Boots the host and resolves as soon as systemd takes commands, while the
 * boot still runs: ap-persist-wait.service holds libvirtd back until an
 * event comes (or its fallback runs the hook).
 */
export async function bootHost(opts: BootedHostOptions): Promise<BootedHost> {
  const sim = await startSimSysfs({ host: opts.host, kernel: opts.kernel, mtty: true });
  for (const fault of opts.faults ?? []) sim.control(fault);
  const record = tempDir('ap-persist-libvirtd-');
  const installedBefore = opts.rootfs !== undefined && existsSync(join(opts.rootfs, 'etc/systemd/system/ap-sim-sysfs.service'));
  const installed = installedBefore ? [] : [...rigFiles(), { path: TOOL, symlink: `${CONTAINER_SRC}/dist/bin/ap-persist.cjs` }, ...(await installStaged(opts.store, opts.files ?? {}))];
  const container = await bootContainer({
    until: 'manager',
    binds: [nodeBind(), checkoutBind(CHECKOUT), { host: sim.mountpoint, container: SIM }, { host: record, container: RECORD }],
    files: installed,
    rootfs: opts.rootfs,
  });

  // The rig runs udev's programs with systemd-run, which needs the bus (udevd itself does not);
  // then the boot is where libvirtd waits behind ap-persist-wait.service for the AP bus.
  const states = async (...units: string[]): Promise<string[]> =>
    (await container.systemctl('show', '--property=ActiveState', '--value', ...units)).stdout.split('\n').filter(Boolean);
  await container.waitFor(async () => (await states('dbus.service', 'ap-persist-wait.service')).join(' ') === 'active activating' || undefined, {
    timeoutMs: 30_000,
    intervalMs: 20,
    what: 'dbus up and ap-persist-wait.service holding the boot',
  });

  const events = udevEvents(container);

  return {
    container,
    sim,
    libvirtd: () => libvirtdRecord(record),
    ...events,
    activeState: states,
    async shutdown() {
      await container.stop();
    },
  };
}
