// The simulated kernel: an in-memory AP bus and vfio_ap behind the same Sysfs
// interface as the real /sys. It refuses what the kernel refuses, with the
// kernel's errno, so boot sequences, mask changes and mdev starts can be
// tested (with faults injected) on any machine. Three flavours, each the
// kernels it stands for (the design document, "Kernel behaviour"):
//   '5.4'   up to 5.19: Documentation/s390/vfio-ap.rst of 5.4, no checks of
//           the mdevs on a mask change, no BINDINGS=complete;
//   '6.0'   6.0 to 6.18: vfio_ap's in_use check, hot plug, guest_matrix,
//           ap_config (6.10), BINDINGS=complete after every probe (as up to 6.8);
//   '6.19'  6.19 and later: in_use with all-ones masks, driver_override,
//           BINDINGS=complete once per transition at the end of a bus scan.
// Each behaviour names the kernel function (and file) it models.
//
// The tree has the shape of a real sysfs (directories, attributes, relative
// links, the mdev core's files), so that the same model can also be mounted
// as a filesystem (test/support/sim-sysfs) for real tools such as mdevctl.

import { apConfigFields, hex2bitmap } from '../model/ap-config.js';
import { KERNEL_NUMBER, kernelNumber, kstrtoul } from '../model/kstrtoul.js';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ApqnSet, formatApqn, parseApqn, type Apqn, formatAdapter, formatDomain } from '../model/apqn.js';
import { IdSet, MAX_ID } from '../model/idset.js';
import { mdevApqns } from '../model/mdev.js';
import {
  AP_BUS,
  AP_DEVICES,
  MATRIX,
  PASSTHROUGH_CREATE,
  listActiveMdevs,
  listCards,
  listQueues,
  readActiveMasks,
  readMaxIds,
  SYSFS_SHOW_MAX,
  matrixComplete,
  vfioApLoaded,
} from './ap-host.js';
import { FileSysfs } from './file-sysfs.js';
import { SysfsError, type Sysfs } from './sysfs.js';

/** '5.4': kernels up to 5.19; '6.0': 6.0 to 6.18; '6.19': 6.19 and later. */
export type KernelFlavour = '5.4' | '6.0' | '6.19';

export const KERNEL_FLAVOURS: readonly KernelFlavour[] = ['5.4', '6.0', '6.19'];

/** The modules this kernel can load. */
export type ModuleName = 'vfio_ap' | 'mtty';

/** The kernel's sample mdev driver (samples/vfio-mdev/mtty.c) has these two types. */
export type MttyType = 'mtty-1' | 'mtty-2';

export interface SimKernelOptions {
  kernel: KernelFlavour;
  cards: { adapter: number; hwtype: number }[];
  /** Usage domains present on every card. */
  domains: number[];
  maxAdapterId?: number;
  maxDomainId?: number;
  /** Absent: the kernel default, every ID to the host. */
  apmask?: IdSet;
  aqmask?: IdSet;
  /** vfio_ap already loaded. */
  vfioAp?: boolean;
  /** The sample driver mtty loaded: a second mdev parent of another type, for tests that mix mdev types. */
  mtty?: boolean;
  /**
   * The bus shows `ap_max_adapter_id` and `ap_max_domain_id` (ap_bus.c
   * ap_max_*_id_show). Default: false on '5.4' (DESIGN.md; the release that
   * added them is not verified), true on the others. The limits hold either way.
   */
  maxIdAttrs?: boolean;
  /**
   * 6.19 shows `bindings_complete_count`. false: a kernel with 6.19's mask
   * checks but not that attribute (a distribution's backport).
   */
  bindingsCompleteCountAttr?: boolean;
}

/** A uevent the kernel sent, as udev gets it. */
export interface KernelEvent {
  action: 'add' | 'remove' | 'change' | 'move' | 'online' | 'offline' | 'bind' | 'unbind';
  /** `/devices/ap`, as DEVPATH has it. */
  devpath: string;
  /** What the sender adds to ACTION, DEVPATH, SUBSYSTEM and SEQNUM (a value keeps the newline the kernel put in it). */
  properties: Record<string, string>;
}

/** A write to an mdev's `remove` that, on a real kernel, would not have returned. */
export interface HungRemove {
  /** The `remove` file, by the path links resolve to. */
  path: string;
  uuid: string;
  data: string;
}

/** A node as a filesystem face shows it (lstat: a link is described, not followed). */
export type SysfsNodeInfo =
  | { kind: 'dir' }
  | { kind: 'attr'; readable: boolean; writable: boolean }
  /** `target` is relative to the link's directory, as sysfs makes its links. */
  | { kind: 'link'; target: string };

/** An mdev as the model holds it. */
export type SimMdevState =
  | {
      uuid: string;
      parent: typeof VFIO_AP_PARENT;
      type: typeof PASSTHROUGH_TYPE;
      adapters: number[];
      domains: number[];
      controlDomains: number[];
      /** A guest holds the device. */
      running: boolean;
    }
  | { uuid: string; parent: typeof MTTY_PARENT; type: MttyType };

/** Everything the model knows, in plain JSON: for asserts from outside the process. */
export interface SimKernelState {
  kernel: KernelFlavour;
  modules: ModuleName[];
  /** As the mask files read, without the newline. */
  apmask: string;
  aqmask: string;
  cards: { adapter: number; hwtype: number }[];
  /** `driverOverride` only where a driver_override is set (6.19). */
  queues: { apqn: string; driver: string | null; driverOverride?: string }[];
  mdevs: SimMdevState[];
  writes: { path: string; data: string }[];
  hungRemoves: HungRemove[];
}

/** An event outside sysfs (a module load, a card) that the kernel refused, with its errno. */
export class KernelEventError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${message}: ${code}`);
  }
}

/**
 * A write that would block forever on a real kernel: `remove` of an mdev a
 * guest holds. vfio_unregister_group_dev (vfio core) waits until the device
 * is released; since 6.5 vfio_ap_mdev_request asks QEMU to release it, and
 * the write returns only when it has. It never fails with EBUSY. The kernel
 * lists each in `hungRemoves`: a tool must never issue one.
 */
export class WouldBlockError extends SysfsError {
  constructor(
    path: string,
    readonly uuid: string,
  ) {
    super('EWOULDHANG', path, 'write', `a guest holds mdev ${uuid}: the kernel's remove waits until the guest releases it`);
  }
}

export const HOST_DRIVER = 'cex4queue';
export const VFIO_DRIVER = 'vfio_ap';

/** CEX4 and newer: the only cards vfio_ap registers for. */
const MIN_VFIO_HWTYPE = 10;

/** The bus attributes saveTo lays out on disk, when the kernel has them. */
const SAVED_BUS_ATTRS = ['ap_max_adapter_id', 'ap_max_domain_id', 'apmask', 'aqmask'];
/** driver_set_override (drivers/base/driver.c): a value of PAGE_SIZE - 1 bytes or more is EINVAL. */
const MAX_OVERRIDE_WRITE = 4095;
/** vfio_ap_ops.c's attributes of an mdev; the mdev core adds `remove` and `mdev_type`. */
const VFIO_AP_MDEV_ATTRS = [
  'assign_adapter',
  'assign_control_domain',
  'assign_domain',
  'control_domains',
  'matrix',
  'unassign_adapter',
  'unassign_control_domain',
  'unassign_domain',
];
/** vfio_ap_ops.c, 6.0 and later: the guest's view (guest_matrix) and, from 6.10, all three masks at once (ap_config). */
const VFIO_AP_MDEV_ATTRS_60 = ['ap_config', 'guest_matrix'];

// vfio_ap_drv.c: root device `vfio_ap`, its child `matrix` is the mdev parent.
// mdev_sysfs.c names a type `<parent's driver>-<type>`: vfio_ap-passthrough.
const VFIO_AP_PARENT = 'matrix';
const PASSTHROUGH_TYPE = 'vfio_ap-passthrough';
/** vfio_ap allows MAX_ZDEV_ENTRIES_EXT (256 x 256) mdevs. */
const VFIO_AP_INSTANCES = 256 * 256;

// mtty.c: a class device `mtty` with no parent (so under devices/virtual), no
// driver (so its types take the class name: mtty-1, mtty-2), and MAX_MTTYS
// ports shared by all its mdevs, each taking its type's number of ports.
const MTTY_PARENT = 'mtty';
const MTTY_DEVICE = 'devices/virtual/mtty/mtty';
const MTTY_PORTS = 24;
const MTTY_TYPES: Record<MttyType, { ports: number; name: string }> = {
  'mtty-1': { ports: 1, name: 'Single port serial' },
  'mtty-2': { ports: 2, name: 'Dual port serial' },
};

/** kobject_action_type: what a write to `uevent` may ask for (kobject_synth_uevent). */
const UEVENT_WRITE = /^(add|remove|change|move|online|offline|bind|unbind)(?: [^\n]*)?\n?$/;

/** uuid_is_valid (lib/uuid.c): 8-4-4-4-12 hex digits, either case. */
const UUID_36 = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** Links a path walk follows before it gives up (the VFS's ELOOP limit). */
const MAX_LINK_HOPS = 40;

interface SimMdev {
  adapters: IdSet;
  domains: IdSet;
  controlDomains: IdSet;
}

type Axis = 'adapter' | 'domain' | 'control';

type Node =
  | { kind: 'dir'; entries: () => string[] }
  | { kind: 'attr'; show?: () => string; store?: (data: string) => void }
  /** `to` is the path the link leads to, from the root of the tree. */
  | { kind: 'link'; to: string };

/** A store refused; write() turns it into a SysfsError carrying the path. */
class Refusal {
  constructor(
    readonly code: string,
    readonly detail: string,
  ) {}
}

/** A store that would block; write() records it and turns it into a WouldBlockError. */
class Hang {
  constructor(readonly uuid: string) {}
}

interface Fault {
  match: string | RegExp;
  errno: string;
  times: number;
}

/**
 * A device registered with the mdev core (mdev_core.c mdev_register_parent):
 * the core makes its mdev_supported_types, the class/mdev_bus link, and each
 * mdev's `remove` and `mdev_type`; the parent's driver does the rest.
 */
interface MdevParent {
  /** The parent device's name: class/mdev_bus/<name>, mdevctl's "parent". */
  readonly name: string;
  /** The parent device's directory. */
  readonly path: string;
  readonly deviceApi: string;
  /** The parent device's own files beside mdev_supported_types and its mdevs (uevent, subsystem, driver). */
  deviceFiles(): Record<string, Node>;
  registered(): boolean;
  types(): string[];
  typeName(type: string): string;
  available(type: string): number;
  /** The type of one of this parent's mdevs; undefined when the mdev is not this parent's. */
  typeOf(uuid: string): string | undefined;
  children(): string[];
  /** The driver's part of create, after the core's checks. */
  create(uuid: string, type: string): void;
  /** The driver's part of remove. */
  remove(uuid: string): void;
  /** The driver's own attributes of an mdev. */
  attrs(uuid: string): string[];
  attr(uuid: string, name: string): Node | undefined;
}

export class SimKernel implements Sysfs {
  readonly kernel: KernelFlavour;
  /** Every write the kernel accepted, in order, by the path links resolve to (failed writes are not logged). */
  readonly writes: { path: string; data: string }[] = [];
  /** Every `remove` of a guest-held mdev: writes that would never have returned (see WouldBlockError). */
  readonly hungRemoves: HungRemove[] = [];
  /** Every write the kernel refused, with its errno: a tool that knows the kernel makes none. */
  readonly refusedWrites: { path: string; data: string; errno: string }[] = [];

  private apmask: IdSet;
  private aqmask: IdSet;
  private readonly maxAdapterId: number;
  private readonly maxDomainId: number;
  private readonly maxIdAttrs: boolean;
  private readonly bindingsCompleteCountAttr: boolean;
  /** adapter -> hwtype */
  private readonly cards = new Map<number, number>();
  /** Usage domains a card added later brings (the AP configuration's domains). */
  private readonly usageDomains: IdSet;
  /** The queue devices the AP bus found. */
  private readonly queues = new ApqnSet();
  private queueCount = 0;
  /** Each bound queue's driver (the driver core's dev->driver), by queueKey. */
  private readonly bound = new Map<number, string>();
  /** 6.19: each queue's driver_override, by queueKey. */
  private readonly overrides = new Map<number, string>();
  /** ap_bindings_complete_count: the BINDINGS=complete events sent. */
  private completeCount = 0;
  /** 6.19: ap_apqn_bindings_complete not done (a probe rearmed it), so the next scan that finds all bound sends the event. */
  private bindingsArmed = false;
  private scanWanted = false;
  private readonly events: KernelEvent[] = [];
  private readonly modules = new Set<ModuleName>();
  private readonly loadFaults = new Map<ModuleName, { errno: string; times: number }>();
  private readonly mdevs = new Map<string, SimMdev>();
  private readonly mttyMdevs = new Map<string, MttyType>();
  private readonly running = new Set<string>();
  /** Each mdev's IOMMU group number, by UUID (every parent's mdevs). */
  private readonly iommuGroups = new Map<string, number>();
  private readonly faults: Fault[] = [];
  private readonly parents: readonly MdevParent[];

  constructor(options: SimKernelOptions) {
    this.kernel = options.kernel;
    this.apmask = options.apmask?.clone() ?? IdSet.full();
    this.aqmask = options.aqmask?.clone() ?? IdSet.full();
    this.maxAdapterId = options.maxAdapterId ?? MAX_ID;
    this.maxDomainId = options.maxDomainId ?? MAX_ID;
    this.maxIdAttrs = options.maxIdAttrs ?? options.kernel !== '5.4';
    this.bindingsCompleteCountAttr = options.bindingsCompleteCountAttr ?? true;
    if (options.vfioAp) this.modules.add('vfio_ap');
    if (options.mtty) this.modules.add('mtty');
    for (const card of options.cards) this.cards.set(card.adapter, card.hwtype);
    this.usageDomains = IdSet.of(options.domains);
    for (const adapter of this.cards.keys()) for (const domain of this.usageDomains.ids()) this.addQueue({ adapter, domain });
    this.parents = [this.vfioApParent(), this.mttyParent()];
    this.boot();
  }

  /** 6.0 and later. */
  private get since60(): boolean {
    return this.kernel !== '5.4';
  }

  // --- the Sysfs interface -------------------------------------------------

  /** An attribute's text. A link reads as the name of what it points to (a queue's `driver`: the driver's name). */
  read(path: string): string {
    const p = normalise(path);
    const found = this.lookup(p, false);
    if (!found) throw new SysfsError('ENOENT', p, 'read');
    const { node } = found;
    if (node.kind === 'link') return node.to.slice(node.to.lastIndexOf('/') + 1);
    if (node.kind === 'dir') throw new SysfsError('EISDIR', p, 'read');
    if (!node.show) throw new SysfsError('EACCES', p, 'read', 'write-only attribute');
    // fs/sysfs/file.c sysfs_kf_seq_show: a show that wrote a page or more (matrix_show of 512 APQNs
    // or more, which writes past its page unchecked) is handed out as its first PAGE_SIZE - 1 bytes.
    const text = node.show();
    return text.length > SYSFS_SHOW_MAX ? text.slice(0, SYSFS_SHOW_MAX) : text;
  }

  write(path: string, data: string): void {
    const p = normalise(path);
    const found = this.lookup(p, true);
    const fault = this.takeFault(p, found?.path);
    if (fault) throw new SysfsError(fault, p, 'write', 'injected fault');
    if (!found) throw new SysfsError('ENOENT', p, 'write');
    const { node } = found;
    if (node.kind === 'dir') throw new SysfsError('EISDIR', p, 'write');
    if (node.kind === 'link' || !node.store) throw new SysfsError('EACCES', p, 'write', 'read-only attribute');
    // sysfs_kf_write passes no zero-length write on to the attribute: it succeeds doing nothing.
    if (data !== '') {
      try {
        node.store(data);
      } catch (err) {
        if (err instanceof Refusal) {
          this.refusedWrites.push({ path: found.path, data, errno: err.code });
          throw new SysfsError(err.code, p, 'write', err.detail);
        }
        if (err instanceof Hang) {
          this.hungRemoves.push({ path: found.path, uuid: err.uuid, data });
          throw new WouldBlockError(p, err.uuid);
        }
        throw err;
      }
    }
    this.writes.push({ path: found.path, data });
  }

  list(dir: string): string[] {
    const node = this.lookup(normalise(dir), true)?.node;
    return node?.kind === 'dir' ? [...node.entries()].sort() : [];
  }

  exists(path: string): boolean {
    return this.lookup(normalise(path), true) !== undefined;
  }

  /** What the node is, links not followed at the end (lstat); undefined when nothing is there. */
  stat(path: string): SysfsNodeInfo | undefined {
    const found = this.lookup(normalise(path), false);
    if (!found) return undefined;
    const { node } = found;
    if (node.kind === 'attr') return { kind: 'attr', readable: node.show !== undefined, writable: node.store !== undefined };
    if (node.kind === 'dir') return { kind: 'dir' };
    return { kind: 'link', target: relativeTarget(found.path.slice(0, Math.max(found.path.lastIndexOf('/'), 0)), node.to) };
  }

  // --- what happens outside sysfs ------------------------------------------

  get vfioApLoaded(): boolean {
    return this.modules.has('vfio_ap');
  }

  /** `modprobe vfio_ap`: the matrix device appears and vfio_ap probes every free CEX4+ queue. */
  loadVfioAp(): void {
    this.loadModule('vfio_ap');
  }

  /**
   * `modprobe NAME`; loading a loaded module does nothing, as modprobe.
   * Throws KernelEventError when made to fail.
   * vfio_ap (vfio_ap_drv.c vfio_ap_init): the matrix device (add), the
   * driver, which probes every free queue (ap_driver_register), then the
   * mdev parent (mdev_core.c mdev_register_parent: change, MDEV_STATE=registered).
   * mtty (samples/vfio-mdev/mtty.c mtty_dev_init): its device, then the same.
   */
  loadModule(name: ModuleName): void {
    const fault = this.loadFaults.get(name);
    if (fault) {
      if (--fault.times <= 0) this.loadFaults.delete(name);
      throw new KernelEventError(fault.errno, `could not insert '${name}'`);
    }
    if (this.modules.has(name)) return;
    this.modules.add(name);
    const parent = `/${name === 'vfio_ap' ? MATRIX : MTTY_DEVICE}`;
    this.emit('add', parent, {});
    if (name === 'vfio_ap') {
      // driver_attach: vfio_ap gets each queue no driver holds that ap_device_probe lets it have.
      for (const q of this.queues) if (!this.bound.has(queueKey(q)) && this.probeDriver(q) === VFIO_DRIVER) this.probe(q);
    }
    this.emit('change', parent, { MDEV_STATE: 'registered' });
  }

  /** The next `times` loads of `name` fail with `errno` (ENODEV: what vfio_ap_init answers without AP instructions). */
  failLoad(name: ModuleName, errno = 'ENODEV', times = 1): void {
    this.loadFaults.set(name, { errno, times });
  }

  /**
   * An AP bus scan finds a new card (ap_bus.c ap_scan_adapter): a card
   * device and a queue per usage domain, each probed as it is added
   * (device_add -> ap_device_probe) and bound by the masks like the others.
   * The scan's end is scan(): call it next (6.19 sends BINDINGS=complete there).
   */
  addCard(adapter: number, hwtype: number, domains: Iterable<number> = this.usageDomains.ids()): void {
    if (adapter > this.maxAdapterId) throw new KernelEventError('ENODEV', `adapter ${adapter} is above ap_max_adapter_id ${this.maxAdapterId}`);
    if (this.cards.has(adapter)) throw new KernelEventError('EEXIST', `card ${formatAdapter(adapter)} is there already`);
    this.cards.set(adapter, hwtype);
    for (const domain of IdSet.of(domains).ids()) {
      const q = { adapter, domain };
      this.addQueue(q);
      this.probe(q);
    }
    this.scanWanted = true;
  }

  /** A card was added and the scan that found it has not ended yet (scan()). */
  get scanPending(): boolean {
    return this.scanWanted;
  }

  /**
   * The end of an AP bus scan (ap_bus.c ap_scan_bus, every config_time
   * seconds or forced). 6.19 (ap_check_bindings_complete, as from 6.10):
   * when every queue is bound and a probe has rearmed the completion since
   * the last event, change on /devices/ap with BINDINGS=complete. Up to 6.8
   * ('6.0') only the first scan, at boot, checks; '5.4' sends nothing.
   */
  scan(): void {
    this.scanWanted = false;
    if (this.kernel === '6.19' && this.bindingsArmed && this.allBound()) {
      this.bindingsArmed = false;
      this.sendBindingsComplete();
    }
  }

  /**
   * device_reprobe of one queue (`AA.DDDD`): the driver lets go, and the
   * queue is probed again. What an admin's `unbind` of the driver and
   * `drivers_probe` of the bus amount to (neither file is modelled); with a
   * driver_override (6.19) this is how the queue goes to the named driver.
   */
  reprobeQueue(apqn: string): void {
    const q = this.queue(apqn);
    if (!q) throw new KernelEventError('ENODEV', `no queue device ${apqn}`);
    this.bound.delete(queueKey(q));
    this.probe(q);
  }

  /** The uevents the kernel sent since the last call, oldest first. */
  takeEvents(): KernelEvent[] {
    return this.events.splice(0);
  }

  /** A guest (QEMU) opens or releases the mdev. */
  setGuestRunning(uuid: string, running: boolean): void {
    if (!this.mdevs.has(uuid)) throw new KernelEventError('ENOENT', `no mdev ${uuid} to run a guest on`);
    if (running) this.running.add(uuid);
    else this.running.delete(uuid);
  }

  /**
   * The next `times` writes to a matching path fail with `errno` and change
   * nothing. A string matches the path exactly (as relative to the mount),
   * as written or as its links resolve.
   */
  failWrite(match: string | RegExp, errno: string, times = 1): void {
    this.faults.push({ match: typeof match === 'string' ? normalise(match) : match, errno, times });
  }

  /**
   * Puts an mdev in place without any check: for fake hosts that describe
   * a state the kernel would not build (an mdev on a host-owned APQN, left
   * over from a mask change on 5.4).
   */
  adoptMdev(
    uuid: string,
    adapters: IdSet | Iterable<number>,
    domains: IdSet | Iterable<number>,
    controlDomains: IdSet | Iterable<number> = [],
  ): void {
    if (!this.vfioApLoaded) throw new Error(`vfio_ap is not loaded: no matrix device to hold mdev ${uuid}`);
    this.mdevs.set(uuid, { adapters: toIdSet(adapters), domains: toIdSet(domains), controlDomains: toIdSet(controlDomains) });
    this.allocIommuGroup(uuid);
  }

  /** The whole state, for asserts from another process. */
  state(): SimKernelState {
    const ids = (s: IdSet): number[] => s.ids();
    return {
      kernel: this.kernel,
      modules: [...this.modules].sort(),
      apmask: this.apmask.toKernelHex(),
      aqmask: this.aqmask.toKernelHex(),
      cards: [...this.cards].sort(([a], [b]) => a - b).map(([adapter, hwtype]) => ({ adapter, hwtype })),
      queues: [...this.queues].map((q) => {
        const override = this.overrides.get(queueKey(q));
        return { apqn: formatApqn(q), driver: this.driverOf(q) ?? null, ...(override === undefined ? {} : { driverOverride: override }) };
      }),
      mdevs: [
        ...[...this.mdevs].map(([uuid, m]): SimMdevState => ({
          uuid,
          parent: VFIO_AP_PARENT,
          type: PASSTHROUGH_TYPE,
          adapters: ids(m.adapters),
          domains: ids(m.domains),
          controlDomains: ids(m.controlDomains),
          running: this.running.has(uuid),
        })),
        ...[...this.mttyMdevs].map(([uuid, type]): SimMdevState => ({ uuid, parent: MTTY_PARENT, type })),
      ],
      writes: this.writes.map((w) => ({ ...w })),
      hungRemoves: this.hungRemoves.map((h) => ({ ...h })),
    };
  }

  // --- a fake root on disk -------------------------------------------------

  /**
   * Loads a fake root as src/fakehost/builder.ts lays it out. Bindings are
   * not read: they follow from masks, hwtypes and vfio_ap, as in the kernel.
   * Missing masks or limits take the kernel's defaults; the bus shows
   * ap_max_adapter_id/ap_max_domain_id when the root has them (unless
   * `maxIdAttrs` says otherwise); no guest runs, no
   * driver_override is set, and the boot's BINDINGS=complete (if all are
   * bound) counts as sent.
   */
  static fromDisk(root: string, kernel: KernelFlavour, more: Pick<SimKernelOptions, 'mtty' | 'maxIdAttrs' | 'bindingsCompleteCountAttr'> = {}): SimKernel {
    const disk = new FileSysfs(root);
    const masks = readActiveMasks(disk);
    const max = readMaxIds(disk);
    const queues = listQueues(disk);
    const sim = new SimKernel({
      kernel,
      cards: listCards(disk).map((c) => ({ adapter: c.adapter, hwtype: c.hwtype ?? 0 })),
      domains: [],
      maxAdapterId: max?.adapter,
      maxDomainId: max?.domain,
      apmask: masks?.apmask,
      aqmask: masks?.aqmask,
      vfioAp: vfioApLoaded(disk),
      mtty: more.mtty,
      maxIdAttrs: more.maxIdAttrs ?? (max ? true : undefined),
      bindingsCompleteCountAttr: more.bindingsCompleteCountAttr,
    });
    // The queues the disk has: a fake host need not give every card every domain.
    // A card added later gets the domains the others have.
    for (const q of queues) {
      sim.addQueue(q);
      sim.usageDomains.add(q.domain);
    }
    sim.boot();
    if (sim.vfioApLoaded) {
      for (const m of listActiveMdevs(disk)) sim.adoptMdev(m.uuid, m.adapters, m.domains, m.controlDomains);
    }
    return sim;
  }

  /**
   * Writes the state under `root/sys` so that FileSysfs reads what this
   * kernel shows; stale queues, driver files and mdev dirs are removed.
   * Only what the runtime reads is written, as plain files and directories
   * (a queue's `driver` as a file holding the name); the bus's `bindings`
   * and `uevent` are left alone, and an mdev's `ap_config` and
   * `guest_matrix` are not written (a fake root stands for a kernel without
   * them unless a test puts them there), except the ap_config of an mdev
   * whose matrix sysfs cuts short (512 APQNs or more): the runtime reads that
   * one from it.
   */
  saveTo(root: string): void {
    const sys = join(root, 'sys');
    const put = (rel: string, text: string): void => {
      mkdirSync(dirname(join(sys, rel)), { recursive: true });
      writeFileSync(join(sys, rel), text);
    };
    for (const name of SAVED_BUS_ATTRS) {
      const rel = `${AP_BUS}/${name}`;
      if (this.exists(rel)) put(rel, this.read(rel));
      else rmSync(join(sys, rel), { force: true });
    }

    const devices = join(sys, AP_DEVICES);
    const wanted = this.list(AP_DEVICES);
    const keep = new Set(wanted); // up to 65,536 queues: no linear lookups
    mkdirSync(devices, { recursive: true });
    for (const stale of readdirSync(devices).filter((n) => !keep.has(n))) {
      rmSync(join(devices, stale), { recursive: true, force: true });
    }
    for (const name of wanted) {
      mkdirSync(join(devices, name), { recursive: true });
      if (name.startsWith('card')) put(`${AP_DEVICES}/${name}/hwtype`, this.read(`${AP_DEVICES}/${name}/hwtype`));
      else if (this.exists(`${AP_DEVICES}/${name}/driver`)) put(`${AP_DEVICES}/${name}/driver`, `${this.read(`${AP_DEVICES}/${name}/driver`)}\n`);
      else rmSync(join(devices, name, 'driver'), { force: true });
    }

    if (!this.vfioApLoaded) {
      rmSync(join(sys, 'devices/vfio_ap'), { recursive: true, force: true });
      return;
    }
    put(PASSTHROUGH_CREATE, '');
    for (const stale of readdirSync(join(sys, MATRIX)).filter((n) => n !== 'mdev_supported_types' && !this.mdevs.has(n))) {
      rmSync(join(sys, MATRIX, stale), { recursive: true, force: true });
    }
    for (const uuid of this.mdevs.keys()) {
      for (const attr of ['matrix', 'control_domains']) put(`${MATRIX}/${uuid}/${attr}`, this.read(`${MATRIX}/${uuid}/${attr}`));
      // A matrix sysfs cut short is read from ap_config: a kernel that has it, the root has it too.
      const config = `${MATRIX}/${uuid}/ap_config`;
      if (!matrixComplete(this.read(`${MATRIX}/${uuid}/matrix`)) && this.exists(config)) put(config, this.read(config));
      else rmSync(join(sys, config), { force: true });
    }
  }

  // --- the sysfs tree ------------------------------------------------------

  /**
   * Walks a path as the VFS does: `..` and links on the way are followed
   * (relative to the link's directory), the last component only when asked.
   * Returns the node and the path it really has.
   */
  private lookup(path: string, followLast: boolean): { path: string; node: Node } | undefined {
    const done: string[] = [];
    const todo = path === '' ? [] : path.split('/');
    let node = this.node(done);
    for (let hops = 0; todo.length > 0; ) {
      const name = todo.shift()!;
      if (name === '' || name === '.') continue;
      if (name === '..') {
        done.pop();
        node = this.node(done);
        continue;
      }
      done.push(name);
      const next = this.node(done);
      if (!next) return undefined;
      if (next.kind === 'link' && (todo.length > 0 || followLast)) {
        if (++hops > MAX_LINK_HOPS) return undefined;
        done.length = 0;
        todo.unshift(...next.to.split('/'));
        continue;
      }
      node = next;
    }
    return node ? { path: done.join('/'), node } : undefined;
  }

  /** The node at a path (its components) that has no link in it. */
  private node(parts: readonly string[]): Node | undefined {
    const rest = parts.slice(1);
    switch (parts[0]) {
      case undefined:
        return dir(() => ['bus', 'class', 'devices', 'kernel', 'module']);
      case 'kernel':
        return this.kernelNode(rest);
      case 'bus':
        return this.busNode(rest);
      case 'class':
        return this.classNode(rest);
      case 'devices':
        return this.devicesNode(rest);
      case 'module':
        return this.moduleNode(rest);
    }
    return undefined;
  }

  private busNode(parts: readonly string[]): Node | undefined {
    const [bus, sub, name, device] = parts;
    if (parts.length > 4 || (device !== undefined && sub !== 'drivers')) return undefined;
    const mdevBus = (): boolean => this.parents.some((p) => p.registered());
    if (bus === undefined) return dir(() => ['ap', ...(this.vfioApLoaded ? ['matrix'] : []), ...(mdevBus() ? ['mdev'] : [])]);
    if (bus === 'ap' && name === undefined) {
      switch (sub) {
        case undefined:
          return dir(() => [...this.busAttrs(), 'devices', 'drivers']);
        // ap_bus.c apmask_show/aqmask_show: "0x%016lx%016lx%016lx%016lx\n"; the stores: storeMask.
        case 'apmask':
          return { kind: 'attr', show: () => `${this.apmask.toKernelHex()}\n`, store: (d) => this.storeMask('apmask', d) };
        case 'aqmask':
          return { kind: 'attr', show: () => `${this.aqmask.toKernelHex()}\n`, store: (d) => this.storeMask('aqmask', d) };
        // ap_bus.c ap_max_adapter_id_show/ap_max_domain_id_show: "%d\n" (shown unless maxIdAttrs is false).
        case 'ap_max_adapter_id':
          return this.maxIdAttrs ? { kind: 'attr', show: () => `${this.maxAdapterId}\n` } : undefined;
        case 'ap_max_domain_id':
          return this.maxIdAttrs ? { kind: 'attr', show: () => `${this.maxDomainId}\n` } : undefined;
        case 'bindings':
          // ap_bus.c bindings_show, since 5.11.
          return this.since60 ? { kind: 'attr', show: () => this.bindingsText() } : undefined;
        case 'bindings_complete_count':
          // ap_bus.c bindings_complete_count_show: "%llu\n" of ap_bindings_complete_count, 6.19 only.
          return this.kernel === '6.19' && this.bindingsCompleteCountAttr ? { kind: 'attr', show: () => `${this.completeCount}\n` } : undefined;
        case 'devices':
          return dir(() => [...[...this.cards.keys()].map(cardName), ...[...this.queues].map(formatApqn)]);
        case 'drivers':
          return dir(() => (this.vfioApLoaded ? [HOST_DRIVER, VFIO_DRIVER] : [HOST_DRIVER]));
      }
      return undefined;
    }
    if (bus === 'ap' && sub === 'devices') {
      // bus_add_device: a bus's devices/ links to each device where it sits.
      if (this.card(name!) !== undefined) return link(`devices/ap/${name}`);
      const queue = this.queue(name!);
      return queue ? link(queuePath(queue)) : undefined;
    }
    if (bus === 'ap' && sub === 'drivers') {
      // driver_sysfs_add: a driver's directory links to each device bound to it.
      if (name !== HOST_DRIVER && !(name === VFIO_DRIVER && this.vfioApLoaded)) return undefined;
      if (device === undefined) return dir(() => [...this.queues].filter((q) => this.driverOf(q) === name).map(formatApqn));
      const queue = this.queue(device);
      return queue && this.driverOf(queue) === name ? link(queuePath(queue)) : undefined;
    }
    if (bus === 'matrix' && this.vfioApLoaded) {
      // vfio_ap_drv.c: the matrix device sits on its own bus `matrix`, bound to the driver vfio_ap.
      const at = ['bus/matrix', sub, name].filter((p) => p !== undefined).join('/');
      switch (at) {
        case 'bus/matrix':
          return dir(() => ['devices', 'drivers']);
        case 'bus/matrix/devices':
          return dir(() => [VFIO_AP_PARENT]);
        case 'bus/matrix/drivers':
          return dir(() => [VFIO_DRIVER]);
        case `bus/matrix/drivers/${VFIO_DRIVER}`:
          return dir(() => [VFIO_AP_PARENT]);
        case `bus/matrix/devices/${VFIO_AP_PARENT}`:
          return link(MATRIX);
      }
      return device === VFIO_AP_PARENT && name === VFIO_DRIVER ? link(MATRIX) : undefined;
    }
    if (bus === 'mdev' && mdevBus()) {
      if (sub === undefined) return dir(() => ['devices']);
      if (sub !== 'devices') return undefined;
      if (name === undefined) return dir(() => this.registeredParents().flatMap((p) => p.children()));
      const parent = this.parentOf(name);
      return parent ? link(`${parent.path}/${name}`) : undefined;
    }
    return undefined;
  }

  private classNode(parts: readonly string[]): Node | undefined {
    const [cls, name] = parts;
    if (parts.length > 2) return undefined;
    const parents = this.registeredParents();
    const mtty = this.modules.has('mtty');
    if (cls === undefined) return dir(() => [...(parents.length > 0 ? ['mdev_bus'] : []), ...(mtty ? ['mtty'] : [])]);
    // mdev_core.c: class_compat_create_link puts each parent device in class/mdev_bus.
    if (cls === 'mdev_bus' && parents.length > 0) {
      if (name === undefined) return dir(() => parents.map((p) => p.name));
      const parent = parents.find((p) => p.name === name);
      return parent ? link(parent.path) : undefined;
    }
    if (cls === 'mtty' && mtty) {
      if (name === undefined) return dir(() => ['mtty']);
      return name === 'mtty' ? link(MTTY_DEVICE) : undefined;
    }
    return undefined;
  }

  private devicesNode(parts: readonly string[]): Node | undefined {
    const [first, second, third] = parts;
    const vfioAp = this.vfioApLoaded;
    const mtty = this.modules.has('mtty');
    switch (first) {
      case undefined:
        return dir(() => ['ap', ...(vfioAp ? ['vfio_ap'] : []), ...(mtty ? ['virtual'] : [])]);
      case 'ap':
        return this.apDeviceNode(parts.slice(1));
      case 'vfio_ap':
        // vfio_ap_drv.c: a root device `vfio_ap` (on no bus) holds the matrix device.
        if (!vfioAp) return undefined;
        if (second === undefined) return dir(() => [VFIO_AP_PARENT, 'uevent']);
        if (second === 'uevent') return parts.length === 2 ? this.uevent('devices/vfio_ap', () => '') : undefined;
        return second === VFIO_AP_PARENT ? this.parentNode(this.parents[0]!, parts.slice(2)) : undefined;
      case 'virtual':
        if (!mtty) return undefined;
        if (second === undefined) return dir(() => ['mtty']);
        if (second !== 'mtty') return undefined;
        if (third === undefined) return dir(() => ['mtty']);
        return third === 'mtty' ? this.parentNode(this.parents[1]!, parts.slice(3)) : undefined;
    }
    return undefined;
  }

  /**
   * ap_bus.c: the root device `ap`, a card device under it per adapter, a
   * queue device under its card; all on the bus `ap`. Each device has the
   * driver core's `uevent` (what ap_uevent adds) and `subsystem` link.
   */
  private apDeviceNode(parts: readonly string[]): Node | undefined {
    const [name, child, attr] = parts;
    if (parts.length > 3) return undefined;
    if (name === undefined) return dir(() => ['subsystem', 'uevent', ...[...this.cards.keys()].map(cardName)]);
    // The root device adds nothing to its uevent.
    if (name === 'uevent' || name === 'subsystem') return child === undefined ? this.deviceFile('devices/ap', name, AP_BUS, '') : undefined;
    const hwtype = this.card(name);
    if (hwtype === undefined) return undefined;
    const adapter = parseInt(name.slice(4), 16);
    if (child === undefined) return dir(() => ['hwtype', 'subsystem', 'uevent', ...this.queues.row(adapter).ids().map((d) => formatApqn({ adapter, domain: d }))]);
    if (attr === undefined && (child === 'hwtype' || child === 'uevent' || child === 'subsystem')) {
      if (child === 'hwtype') return { kind: 'attr', show: () => `${hwtype}\n` };
      const type = hwtype.toString(16).toUpperCase();
      return this.deviceFile(`devices/ap/${name}`, child, AP_BUS, `DEVTYPE=ap_card\nDEV_TYPE=${type.padStart(4, '0')}\nMODALIAS=ap:t${type.padStart(2, '0')}\n`);
    }
    const queue = this.queue(child);
    if (queue?.adapter !== adapter) return undefined;
    const override = this.kernel === '6.19';
    switch (attr) {
      case undefined:
        return dir(() => [...(this.driverOf(queue) ? ['driver'] : []), ...(override ? ['driver_override'] : []), 'subsystem', 'uevent']);
      case 'driver_override':
        // ap_queue.c driver_override_show ("%s\n", "" when unset) and driver_override_store, 6.19.
        return override ? { kind: 'attr', show: () => `${this.overrides.get(queueKey(queue)) ?? ''}\n`, store: (d) => this.storeOverride(queue, d) } : undefined;
      case 'driver': {
        const driver = this.driverOf(queue);
        return driver ? link(`${AP_BUS}/drivers/${driver}`) : undefined;
      }
      case 'uevent':
      case 'subsystem': {
        const driver = this.driverOf(queue);
        return this.deviceFile(queuePath(queue), attr, AP_BUS, `DEVTYPE=ap_queue\n${driver ? `DRIVER=${driver}\n` : ''}`);
      }
    }
    return undefined;
  }

  /** The mdev core's files of a parent device, and the driver's own below each mdev (mdev_sysfs.c). */
  private parentNode(parent: MdevParent, parts: readonly string[]): Node | undefined {
    const [first, second, third, fourth] = parts;
    if (parts.length > 4) return undefined;
    if (first === undefined) return dir(() => [...Object.keys(parent.deviceFiles()), 'mdev_supported_types', ...parent.children()]);
    if (first === 'mdev_supported_types') {
      if (second === undefined) return dir(() => parent.types());
      if (!parent.types().includes(second)) return undefined;
      const type = second;
      switch (third) {
        case undefined:
          return dir(() => ['available_instances', 'create', 'device_api', 'devices', 'name']);
        case 'available_instances':
          return fourth === undefined ? { kind: 'attr', show: () => `${parent.available(type)}\n` } : undefined;
        case 'device_api':
          return fourth === undefined ? { kind: 'attr', show: () => `${parent.deviceApi}\n` } : undefined;
        case 'name':
          return fourth === undefined ? { kind: 'attr', show: () => `${parent.typeName(type)}\n` } : undefined;
        case 'create':
          return fourth === undefined ? { kind: 'attr', store: (d) => this.createMdev(parent, type, d) } : undefined;
        case 'devices': {
          const mine = (): string[] => parent.children().filter((u) => parent.typeOf(u) === type);
          if (fourth === undefined) return dir(mine);
          return parent.typeOf(fourth) === type ? link(`${parent.path}/${fourth}`) : undefined;
        }
      }
      return undefined;
    }
    const own = parent.deviceFiles();
    if (second === undefined && Object.hasOwn(own, first)) return own[first];
    const type = parent.typeOf(first);
    if (type === undefined || third !== undefined) return undefined;
    switch (second) {
      case undefined:
        return dir(() => [...parent.attrs(first), 'iommu_group', 'mdev_type', 'remove', 'subsystem', 'uevent']);
      case 'iommu_group': {
        // The emulated IOMMU group every mdev gets (5.4: mdev_core.c mdev_attach_iommu; 6.x: vfio_main.c
        // vfio_register_emulated_iommu_dev): QEMU holds /dev/vfio/<group> open while the guest runs.
        const group = this.iommuGroups.get(first);
        return group === undefined ? undefined : link(`kernel/iommu_groups/${group}`);
      }
      case 'mdev_type':
        return link(`${parent.path}/mdev_supported_types/${type}`);
      case 'remove':
        return { kind: 'attr', store: (d) => this.removeMdev(parent, first, d) };
      case 'uevent':
      case 'subsystem':
        return this.deviceFile(`${parent.path}/${first}`, second, 'bus/mdev', '');
    }
    return parent.attr(first, second);
  }

  /**
   * /sys/kernel/iommu_groups (drivers/iommu/iommu.c): a directory per group
   * with `type` and a `devices` link to each member. Only the mdevs' groups
   * are modelled.
   */
  private kernelNode(parts: readonly string[]): Node | undefined {
    const [top, group, sub, member] = parts;
    if (parts.length > 4) return undefined;
    if (top === undefined) return dir(() => ['iommu_groups']);
    if (top !== 'iommu_groups') return undefined;
    const members = (): string[] => [...this.iommuGroups].filter(([, n]) => `${n}` === group).map(([uuid]) => uuid);
    if (group === undefined) return dir(() => [...new Set(this.iommuGroups.values())].sort((a, b) => a - b).map(String));
    if (members().length === 0) return undefined;
    if (sub === undefined) return dir(() => ['devices', 'type']);
    if (sub === 'type') return member === undefined ? { kind: 'attr', show: () => 'blocked\n' } : undefined;
    if (sub !== 'devices') return undefined;
    if (member === undefined) return dir(members);
    const parent = members().includes(member) ? this.parentOf(member) : undefined;
    return parent ? link(`${parent.path}/${member}`) : undefined;
  }

  private moduleNode(parts: readonly string[]): Node | undefined {
    const [name, attr] = parts;
    if (parts.length > 2) return undefined;
    if (name === undefined) return dir(() => [...this.modules].sort());
    if (!this.modules.has(name as ModuleName)) return undefined;
    // kmod reads initstate to know a module is loaded.
    if (attr === undefined) return dir(() => ['initstate']);
    return attr === 'initstate' ? { kind: 'attr', show: () => 'live\n' } : undefined;
  }

  // --- the AP bus ----------------------------------------------------------

  /** The hwtype of a card device's name, undefined when there is no such card. */
  private card(name: string): number | undefined {
    const m = /^card([0-9a-f]{2})$/.exec(name);
    return m ? this.cards.get(parseInt(m[1]!, 16)) : undefined;
  }

  /** The queue a device name names; only the canonical spelling names a device, as in sysfs. */
  private queue(name: string): Apqn | undefined {
    const queue = parseApqn(name);
    return queue && formatApqn(queue) === name && this.queues.has(queue) ? queue : undefined;
  }

  /** The driver bound to a queue (dev->driver), undefined when none is (or there is no such queue). */
  private driverOf(q: Apqn): string | undefined {
    return this.bound.get(queueKey(q));
  }

  private addQueue(q: Apqn): void {
    if (this.queues.has(q)) return;
    this.queues.add(q);
    this.queueCount++;
  }

  /**
   * The state after boot: every queue probed, the first scan done. When
   * all are bound its BINDINGS=complete counts as sent (COMPLETECOUNT=1)
   * and is not among takeEvents(); else a later probe or scan sends it.
   */
  private boot(): void {
    this.bound.clear();
    for (const q of this.queues) {
      const driver = this.probeDriver(q);
      if (driver) this.bound.set(queueKey(q), driver);
    }
    const complete = this.allBound();
    this.completeCount = complete ? 1 : 0;
    this.bindingsArmed = !complete;
  }

  /**
   * Which loaded driver gets the queue: ap_bus_match (the drivers' device
   * types: vfio_ap takes CEX4 and newer only) and ap_device_probe. With a
   * driver_override (6.19) only the named driver, the masks aside; else the
   * default driver (cex4queue) when apmask and aqmask both give the host
   * the APQN, any other driver (vfio_ap) when they do not.
   */
  private probeDriver(q: Apqn): string | undefined {
    const vfio = this.vfioApLoaded && (this.cards.get(q.adapter) ?? 0) >= MIN_VFIO_HWTYPE;
    const override = this.overrides.get(queueKey(q));
    if (override !== undefined) return override === HOST_DRIVER || (override === VFIO_DRIVER && vfio) ? override : undefined;
    if (this.apmask.has(q.adapter) && this.aqmask.has(q.domain)) return HOST_DRIVER;
    return vfio ? VFIO_DRIVER : undefined;
  }

  /**
   * device_attach -> ap_device_probe. A probe that binds sets off, in
   * '6.0' (up to 6.8: ap_check_bindings_complete at the end of
   * ap_device_probe), BINDINGS=complete whenever every queue is bound now;
   * in '6.19' (reinit_completion in ap_device_probe, since 6.10) it only
   * rearms the completion for the next scan().
   */
  private probe(q: Apqn): void {
    const driver = this.probeDriver(q);
    if (!driver) {
      this.bound.delete(queueKey(q));
      return;
    }
    this.bound.set(queueKey(q), driver);
    if (this.kernel === '6.0' && this.allBound()) this.sendBindingsComplete();
    if (this.kernel === '6.19') this.bindingsArmed = true;
  }

  /**
   * ap_bus.c ap_bus_revise_bindings (__ap_revise_reserved), after a mask
   * change: each queue whose ownership no longer matches its driver (host-
   * owned but not with the default driver, or the other way round) is
   * reprobed; with a driver_override (6.19), each not bound to the named driver.
   */
  private reviseBindings(): void {
    for (const q of this.queues) {
      const key = queueKey(q);
      const driver = this.bound.get(key);
      const override = this.overrides.get(key);
      const hostOwned = this.apmask.has(q.adapter) && this.aqmask.has(q.domain);
      const reprobe = override !== undefined ? driver !== override : hostOwned !== (driver === HOST_DRIVER);
      if (!reprobe) continue;
      this.bound.delete(key); // device_reprobe: the driver lets go first
      this.probe(q);
    }
  }

  private allBound(): boolean {
    return this.bound.size === this.queueCount;
  }

  /** ap_bus.c ap_send_bindings_complete_uevent: change on the bus root device. */
  private sendBindingsComplete(): void {
    this.completeCount++;
    this.emit('change', '/devices/ap', { BINDINGS: 'complete', COMPLETECOUNT: `${this.completeCount}` });
  }

  private emit(action: KernelEvent['action'], devpath: string, properties: Record<string, string>): void {
    this.events.push({ action, devpath, properties });
  }

  /** ap_bus.c bindings_show: bound queues / queues, `(complete)` when all are bound. */
  private bindingsText(): string {
    const bound = this.bound.size;
    return bound === this.queueCount ? `${bound}/${this.queueCount} (complete)\n` : `${bound}/${this.queueCount}\n`;
  }

  /** The attributes of the bus directory, as this kernel has them. */
  private busAttrs(): string[] {
    return [
      ...(this.maxIdAttrs ? ['ap_max_adapter_id', 'ap_max_domain_id'] : []),
      'apmask',
      'aqmask',
      ...(this.since60 ? ['bindings'] : []),
      ...(this.kernel === '6.19' && this.bindingsCompleteCountAttr ? ['bindings_complete_count'] : []),
    ];
  }

  /**
   * ap_bus.c apmask_store/aqmask_store.
   * - 6.19 ("Restrict driver_override versus apmask and aqmask use"): EINVAL
   *   before anything is parsed while any queue has a driver_override.
   * - ap_parse_bitmap_str (parseMaskWrite): EINVAL, all or nothing.
   * - Since 5.19 (6.0, 6.19) a mask equal to the current one is not committed:
   *   no check, no rebind, no event.
   * - apmask_commit/aqmask_commit: the bits newly set are offered to vfio_ap's
   *   in_use (vfio_ap_mdev_resource_in_use -> vfio_ap_mdev_verify_no_sharing),
   *   which checks every mdev, a guest on it or not; any refusal is EBUSY and
   *   changes nothing. '5.4': no in_use. '6.0': the added adapters x the
   *   current aqmask (or the current apmask x the added domains): only APQNs
   *   the host would gain. '6.19' ("Use all-bits-one apmask/aqmask for vfio
   *   in_use() checks"): the added adapters x all 256 domains (all adapters x
   *   the added domains). Clearing bits is never checked.
   * - ap_bus_revise_bindings, then (6.0, 6.19) ap_send_mask_changed_uevent:
   *   change on /devices/ap with APMASK= or AQMASK= (the value ends in \n).
   */
  private storeMask(which: 'apmask' | 'aqmask', data: string): void {
    if (this.kernel === '6.19' && this.overrides.size > 0) {
      throw new Refusal('EINVAL', `${this.overrides.size} queue(s) have a driver_override: the masks cannot change`);
    }
    const current = this[which];
    const next = parseMaskWrite(data, current);
    if (!next) throw new Refusal('EINVAL', `not a mask the AP bus accepts: ${JSON.stringify(data)}`);
    if (this.since60 && next.equals(current)) return;
    const added = next.minus(current);
    if (this.since60 && this.vfioApLoaded && !added.isEmpty()) {
      const other = this.kernel === '6.19' ? IdSet.full() : which === 'apmask' ? this.aqmask : this.apmask;
      const taken = which === 'apmask' ? this.sharedWith(added, other) : this.sharedWith(other, added);
      if (taken) throw new Refusal('EBUSY', `vfio_ap is using ${formatApqn(taken.apqn)}: it is assigned to mdev ${taken.uuid}`);
    }
    this[which] = next;
    this.reviseBindings();
    if (this.since60) this.emit('change', '/devices/ap', { [which.toUpperCase()]: `${next.toKernelHex()}\n` });
  }

  /**
   * ap_queue.c driver_override_store (6.19): only while apmask and aqmask
   * are both all ones (ap_apmask_aqmask_in_use), else EINVAL; then
   * driver_set_override: the value up to the first newline, empty clears,
   * PAGE_SIZE - 1 bytes or more EINVAL. No rebind: the override counts at
   * the queue's next probe (reprobeQueue, a module load).
   */
  private storeOverride(q: Apqn, data: string): void {
    if (!this.apmask.equals(IdSet.full()) || !this.aqmask.equals(IdSet.full())) {
      throw new Refusal('EINVAL', 'apmask or aqmask is in use: no driver_override');
    }
    if (data.length >= MAX_OVERRIDE_WRITE) throw new Refusal('EINVAL', 'driver_override value too long');
    const name = data.split('\n')[0]!;
    if (name === '') this.overrides.delete(queueKey(q));
    else this.overrides.set(queueKey(q), name);
  }

  /**
   * ap_bus.c ap_owned_by_def_drv over a matrix
   * (ap_apqn_in_matrix_owned_by_def_drv): the first APQN of adapters x
   * domains the host's default drivers own: by the masks; in 6.19 a queue
   * with a driver_override counts as the host's when it is bound to the
   * default driver, whatever the masks say.
   */
  private hostOwned(adapters: IdSet, domains: IdSet): Apqn | undefined {
    if (this.overrides.size === 0) return first(ApqnSet.cross(adapters.intersect(this.apmask), domains.intersect(this.aqmask)));
    for (const adapter of adapters.ids()) {
      for (const domain of domains.ids()) {
        const q = { adapter, domain };
        const override = this.overrides.get(queueKey(q));
        const owned = override !== undefined && this.queues.has(q) ? this.driverOf(q) === HOST_DRIVER : this.apmask.has(adapter) && this.aqmask.has(domain);
        if (owned) return q;
      }
    }
    return undefined;
  }

  /**
   * vfio_ap_ops.c vfio_ap_mdev_verify_no_sharing: the first mdev (but
   * `except`) holding an adapter of `adapters` and a domain of `domains`,
   * and one APQN it holds of them.
   */
  private sharedWith(adapters: IdSet, domains: IdSet, except?: string): { apqn: Apqn; uuid: string } | undefined {
    for (const [uuid, other] of this.mdevs) {
      if (uuid === except) continue;
      // Most mdevs share nothing: no APQN set (65,536 bits) made for them.
      const a = other.adapters.intersect(adapters);
      if (a.isEmpty()) continue;
      const d = other.domains.intersect(domains);
      if (d.isEmpty()) continue;
      const apqn = first(ApqnSet.cross(a, d));
      if (apqn) return { apqn, uuid };
    }
    return undefined;
  }

  /**
   * The driver core's files of a device (core.c): `uevent`, and, for a
   * device on a bus or in a class, the `subsystem` link.
   */
  private deviceFile(devpath: string, name: 'uevent' | 'subsystem', subsystem: string, event: string): Node {
    return name === 'subsystem' ? link(subsystem) : this.uevent(devpath, () => event);
  }

  /**
   * A device's `uevent`: reads what its uevent callbacks add; a write asks
   * for a synthetic event (kobject_synth_uevent): ACTION [UUID [KEY=VALUE...]],
   * sent with the device's variables and SYNTH_UUID (0 when none is given).
   */
  private uevent(devpath: string, show: () => string): Node {
    return {
      kind: 'attr',
      show,
      store: (d) => {
        if (!UEVENT_WRITE.test(d)) throw new Refusal('EINVAL', `not a uevent action: ${JSON.stringify(d)}`);
        const [action, uuid, ...args] = chomp(d).split(' ');
        const properties: Record<string, string> = {};
        for (const line of show().split('\n').filter(Boolean)) {
          const at = line.indexOf('=');
          properties[line.slice(0, at)] = line.slice(at + 1);
        }
        properties['SYNTH_UUID'] = uuid || '0';
        for (const arg of args.filter(Boolean)) {
          const at = arg.indexOf('=');
          if (at > 0) properties[`SYNTH_ARG_${arg.slice(0, at)}`] = arg.slice(at + 1);
        }
        this.emit(action as KernelEvent['action'], `/${devpath}`, properties);
      },
    };
  }

  // --- the mdev core -------------------------------------------------------

  private registeredParents(): MdevParent[] {
    return this.parents.filter((p) => p.registered());
  }

  private parentOf(uuid: string): MdevParent | undefined {
    return this.registeredParents().find((p) => p.typeOf(uuid) !== undefined);
  }

  /**
   * mdev_sysfs.c create_store: 36 or 37 bytes (room for a newline; the 37th
   * byte is not looked at), else EINVAL; guid_parse (uuid_is_valid) of the
   * first 36, else EINVAL; mdev_core.c mdev_device_create: a UUID unique
   * over every parent, else EEXIST. The device is named in lower case.
   */
  private createMdev(parent: MdevParent, type: string, data: string): void {
    if (data.length < 36 || data.length > 37 || !UUID_36.test(data.slice(0, 36))) throw new Refusal('EINVAL', `not a UUID: ${JSON.stringify(data)}`);
    const uuid = data.slice(0, 36).toLowerCase();
    if (this.parentOf(uuid)) throw new Refusal('EEXIST', `mdev ${uuid} exists`);
    parent.create(uuid, type);
    this.allocIommuGroup(uuid);
  }

  /** iommu_group_alloc: the lowest free group number, for a new mdev. */
  private allocIommuGroup(uuid: string): void {
    if (this.iommuGroups.has(uuid)) return;
    const used = new Set(this.iommuGroups.values());
    let group = 0;
    while (used.has(group)) group++;
    this.iommuGroups.set(uuid, group);
  }

  /**
   * mdev_sysfs.c remove_store: kstrtoul (base 0), else EINVAL; 0 does
   * nothing. Removing an mdev a guest holds blocks in every version
   * (vfio_unregister_group_dev waits for the release; since 6.5
   * vfio_ap_mdev_request asks QEMU for it): a Hang, never EBUSY.
   */
  private removeMdev(parent: MdevParent, uuid: string, data: string): void {
    if (parseUlong(data) === 0) return;
    if (parent.name === VFIO_AP_PARENT && this.running.has(uuid)) throw new Hang(uuid);
    parent.remove(uuid);
    this.iommuGroups.delete(uuid);
  }

  private vfioApParent(): MdevParent {
    return {
      name: VFIO_AP_PARENT,
      path: MATRIX,
      deviceApi: 'vfio-ap',
      deviceFiles: () => ({
        driver: link(`bus/matrix/drivers/${VFIO_DRIVER}`),
        subsystem: this.deviceFile(MATRIX, 'subsystem', 'bus/matrix', ''),
        uevent: this.deviceFile(MATRIX, 'uevent', 'bus/matrix', `DRIVER=${VFIO_DRIVER}\n`),
      }),
      registered: () => this.vfioApLoaded,
      types: () => [PASSTHROUGH_TYPE],
      typeName: () => 'VFIO AP Passthrough Device',
      available: () => VFIO_AP_INSTANCES - this.mdevs.size,
      typeOf: (uuid) => (this.mdevs.has(uuid) ? PASSTHROUGH_TYPE : undefined),
      children: () => [...this.mdevs.keys()],
      create: (uuid) => void this.mdevs.set(uuid, { adapters: IdSet.empty(), domains: IdSet.empty(), controlDomains: IdSet.empty() }),
      remove: (uuid) => void this.mdevs.delete(uuid),
      attrs: () => (this.since60 ? [...VFIO_AP_MDEV_ATTRS, ...VFIO_AP_MDEV_ATTRS_60] : VFIO_AP_MDEV_ATTRS),
      attr: (uuid, name) => this.vfioApMdevAttr(uuid, name),
    };
  }

  private mttyParent(): MdevParent {
    const freePorts = (): number => MTTY_PORTS - [...this.mttyMdevs.values()].reduce((n, t) => n + MTTY_TYPES[t].ports, 0);
    return {
      name: MTTY_PARENT,
      path: MTTY_DEVICE,
      deviceApi: 'vfio-pci',
      // A class device: its subsystem is the class.
      deviceFiles: () => ({
        subsystem: this.deviceFile(MTTY_DEVICE, 'subsystem', 'class/mtty', ''),
        uevent: this.deviceFile(MTTY_DEVICE, 'uevent', 'class/mtty', ''),
      }),
      registered: () => this.modules.has('mtty'),
      types: () => Object.keys(MTTY_TYPES),
      typeName: (type) => MTTY_TYPES[type as MttyType].name,
      available: (type) => Math.floor(freePorts() / MTTY_TYPES[type as MttyType].ports),
      typeOf: (uuid) => this.mttyMdevs.get(uuid),
      children: () => [...this.mttyMdevs.keys()],
      create: (uuid, type) => {
        // mtty_init_dev: not enough ports left is ENOSPC.
        if (freePorts() < MTTY_TYPES[type as MttyType].ports) throw new Refusal('ENOSPC', `no ${type} ports left`);
        this.mttyMdevs.set(uuid, type as MttyType);
      },
      remove: (uuid) => void this.mttyMdevs.delete(uuid),
      attrs: () => [],
      attr: () => undefined,
    };
  }

  // --- vfio_ap -------------------------------------------------------------

  private vfioApMdevAttr(uuid: string, attr: string): Node | undefined {
    const m = this.mdevs.get(uuid);
    if (!m) return undefined;
    const change = /^(un)?assign_(adapter|domain|control_domain)$/.exec(attr);
    if (change) {
      const axis: Axis = change[2] === 'control_domain' ? 'control' : (change[2] as Axis);
      return { kind: 'attr', store: (d) => (change[1] ? this.unassign(uuid, m, axis, d) : this.assign(uuid, m, axis, d)) };
    }
    switch (attr) {
      case 'matrix':
        // vfio_ap_ops.c matrix_show: "%02lx.%04lx\n" per APQN, "%02lx.\n" / ".%04lx\n" while an axis is empty.
        return { kind: 'attr', show: () => matrixText(m) };
      case 'control_domains':
        // vfio_ap_ops.c control_domains_show: "%04lx\n" per domain.
        return { kind: 'attr', show: () => m.controlDomains.ids().map((d) => `${formatDomain(d)}\n`).join('') };
      case 'guest_matrix':
        // vfio_ap_ops.c guest_matrix_show (6.0+): the shadow APCB, in matrix_show's format.
        return this.since60 ? { kind: 'attr', show: () => matrixText(this.guestMatrix(m)) } : undefined;
      case 'ap_config':
        // vfio_ap_ops.c ap_config_show/ap_config_store (6.10+; in the '6.0' and '6.19' flavours).
        return this.since60
          ? {
              kind: 'attr',
              show: () => `${m.adapters.toKernelHex()},${m.domains.toKernelHex()},${m.controlDomains.toKernelHex()}\n`,
              store: (d) => this.storeApConfig(uuid, m, d),
            }
          : undefined;
    }
    return undefined;
  }

  /**
   * vfio_ap_ops.c assign_adapter_store/assign_domain_store/
   * assign_control_domain_store.
   * '5.4': EBUSY while a guest uses the mdev; kstrtoul (EINVAL, ERANGE);
   * above ap_max_*_id ENODEV; EADDRNOTAVAIL unless the new APQNs are bound
   * to vfio_ap (vfio_ap_mdev_verify_queues_reserved_for_apid/_apqi); then
   * EADDRINUSE on an APQN of another mdev (vfio_ap_mdev_verify_no_sharing).
   * '6.0', '6.19': kstrtoul, ENODEV, an ID assigned already is a success that
   * does nothing; then the whole new matrix (vfio_ap_mdev_validate_masks):
   * EADDRNOTAVAIL on an APQN the host owns (ap_apqn_in_matrix_owned_by_def_drv),
   * EADDRINUSE on one of another mdev. IDs with no queue are taken
   * (over-provisioning), and a running guest gets them (hot plug).
   */
  private assign(uuid: string, m: SimMdev, axis: Axis, data: string): void {
    this.refuseWhileRunning54(uuid);
    const id = this.parseId(axis, data);
    if (axis === 'control') {
      m.controlDomains.add(id); // control domains make no APQN: nothing else to check
      return;
    }
    const set = axis === 'adapter' ? m.adapters : m.domains;
    if (this.since60 && set.has(id)) return;
    const adapters = axis === 'adapter' ? m.adapters.clone().add(id) : m.adapters;
    const domains = axis === 'domain' ? m.domains.clone().add(id) : m.domains;
    if (this.kernel === '5.4') this.requireBoundToVfio(m, axis, id);
    else this.refuseHostOwned(adapters, domains);
    const shared = this.sharedWith(adapters, domains, uuid);
    if (shared) throw new Refusal('EADDRINUSE', `APQN ${formatApqn(shared.apqn)} is assigned to mdev ${shared.uuid}`);
    m.adapters = adapters;
    m.domains = domains;
  }

  /**
   * vfio_ap_ops.c unassign_adapter_store/unassign_domain_store/
   * unassign_control_domain_store: kstrtoul and ENODEV only ('5.4': EBUSY
   * first while a guest uses the mdev).
   */
  private unassign(uuid: string, m: SimMdev, axis: Axis, data: string): void {
    this.refuseWhileRunning54(uuid);
    const id = this.parseId(axis, data);
    (axis === 'adapter' ? m.adapters : axis === 'domain' ? m.domains : m.controlDomains).delete(id);
  }

  /**
   * vfio_ap_ops.c ap_config_store (6.10+): three masks split on ',' or
   * '\n' (strsep), each parsed as an absolute mask (ap_hex2bitmap): one
   * missing or bad is EINVAL; then vfio_ap_mdev_validate_masks
   * (EADDRNOTAVAIL, EADDRINUSE) and ap_matrix_overflow_check (a bit above
   * ap_max_*_id: ENODEV). On any error the old matrix stays. A running
   * guest gets the change (hot plug).
   */
  private storeApConfig(uuid: string, m: SimMdev, data: string): void {
    const masks = apConfigFields(data);
    if (!masks) throw new Refusal('EINVAL', `not three masks: ${JSON.stringify(data)}`);
    const [adapters, domains, controlDomains] = masks;
    this.refuseHostOwned(adapters, domains);
    const shared = this.sharedWith(adapters, domains, uuid);
    if (shared) throw new Refusal('EADDRINUSE', `APQN ${formatApqn(shared.apqn)} is assigned to mdev ${shared.uuid}`);
    const over = (ids: IdSet, max: number): number | undefined => ids.ids().find((id) => id > max);
    const adapter = over(adapters, this.maxAdapterId);
    if (adapter !== undefined) throw new Refusal('ENODEV', `adapter ${adapter} is above ap_max_adapter_id ${this.maxAdapterId}`);
    const domain = over(domains, this.maxDomainId) ?? over(controlDomains, this.maxDomainId);
    if (domain !== undefined) throw new Refusal('ENODEV', `domain ${domain} is above ap_max_domain_id ${this.maxDomainId}`);
    m.adapters = adapters;
    m.domains = domains;
    m.controlDomains = controlDomains;
  }

  /** vfio_ap_mdev_validate_masks, first half: EADDRNOTAVAIL on an APQN the host's drivers own. */
  private refuseHostOwned(adapters: IdSet, domains: IdSet): void {
    const owned = this.hostOwned(adapters, domains);
    if (owned) throw new Refusal('EADDRNOTAVAIL', `APQN ${formatApqn(owned)} is reserved for the host's drivers`);
  }

  /**
   * vfio_ap_ops.c vfio_ap_mdev_filter_matrix: what the guest gets. The
   * mdev's adapters and domains the AP configuration has (here: adapters
   * with a card, domains with a queue), less every adapter with a queue of
   * those domains that is not bound to vfio_ap (a missing queue included):
   * the AP architecture filters whole adapters, not single APQNs.
   */
  private guestMatrix(m: SimMdev): Pick<SimMdev, 'adapters' | 'domains'> {
    const present = IdSet.empty();
    for (const q of this.queues) present.add(q.domain);
    const adapters = m.adapters.intersect(IdSet.of(this.cards.keys()));
    const domains = m.domains.intersect(present);
    for (const adapter of adapters.ids()) {
      if (domains.ids().some((domain) => this.driverOf({ adapter, domain }) !== VFIO_DRIVER)) adapters.delete(adapter);
    }
    return { adapters, domains };
  }

  /** 5.4 cannot change a running guest's matrix (no AP hotplug before 5.15). */
  private refuseWhileRunning54(uuid: string): void {
    if (this.kernel === '5.4' && this.running.has(uuid)) throw new Refusal('EBUSY', `a guest is using mdev ${uuid}`);
  }

  private parseId(axis: Axis, data: string): number {
    const id = parseUlong(data);
    const [name, max] = axis === 'adapter' ? ['ap_max_adapter_id', this.maxAdapterId] : ['ap_max_domain_id', this.maxDomainId];
    if (id > max) throw new Refusal('ENODEV', `${axis === 'control' ? 'control domain' : axis} ${id} is above ${name} ${max}`);
    return id;
  }

  /**
   * 5.4 (vfio_ap_ops.c vfio_ap_mdev_verify_queues_reserved_for_apid/_apqi,
   * vfio-ap.rst): every APQN of the new ID and the IDs already on the
   * other axis must be bound to vfio_ap; with none there yet, at least one
   * APQN of the new ID must be.
   */
  private requireBoundToVfio(m: SimMdev, axis: 'adapter' | 'domain', id: number): void {
    const other = axis === 'adapter' ? m.domains : m.adapters;
    const apqn = (o: number): Apqn => (axis === 'adapter' ? { adapter: id, domain: o } : { adapter: o, domain: id });
    const bound = (q: Apqn): boolean => this.driverOf(q) === VFIO_DRIVER;
    if (other.isEmpty()) {
      const mine = [...this.queues].filter((q) => (axis === 'adapter' ? q.adapter : q.domain) === id);
      if (!mine.some(bound)) throw new Refusal('EADDRNOTAVAIL', `no APQN of ${axis} ${id} is bound to vfio_ap`);
      return;
    }
    const missing = other.ids().map(apqn).find((q) => !bound(q));
    if (missing) throw new Refusal('EADDRNOTAVAIL', `APQN ${formatApqn(missing)} is not bound to vfio_ap`);
  }

  /** The errno of the first fault that matches the path as written or as resolved. */
  private takeFault(path: string, resolved: string | undefined): string | undefined {
    const paths = resolved === undefined || resolved === path ? [path] : [path, resolved];
    const matches = (f: Fault): boolean =>
      paths.some((p) => {
        if (typeof f.match === 'string') return f.match === p;
        f.match.lastIndex = 0; // a /g pattern would otherwise remember the last match
        return f.match.test(p);
      });
    const i = this.faults.findIndex(matches);
    const fault = this.faults[i];
    if (!fault) return undefined;
    if (--fault.times <= 0) this.faults.splice(i, 1);
    return fault.errno;
  }
}


// --- the kernel's parsers --------------------------------------------------

/**
 * The AP bus's mask parser (ap_bus.c ap_parse_bitmap_str). A string
 * starting with `+` or `-` switches bits of the current mask
 * (modify_bitmap): terms `+N`, `+N-M`, `-N`, `-N-M`, each followed by any
 * run of `,` and newlines; N as simple_strtoul base 0 reads it (decimal,
 * `0x` hex, leading-0 octal), 0-255, N <= M. Anything else is absolute hex
 * (hex2bitmap): an optional lower-case `0x` or `x`, at most 64 digits padded
 * with zeros on the right, one optional newline; no digits at all is an
 * empty mask. Undefined means EINVAL, and nothing is applied.
 */
export function parseMaskWrite(data: string, current: IdSet): IdSet | undefined {
  if (data.startsWith('+') || data.startsWith('-')) return switchBits(data, current);
  return hex2bitmap(data);
}

const SWITCH = new RegExp(`^([+-])${KERNEL_NUMBER}(?:-${KERNEL_NUMBER})?[,\\n]*`, 'i');

function switchBits(data: string, current: IdSet): IdSet | undefined {
  const next = current.clone();
  for (let rest = data; rest !== ''; ) {
    const m = SWITCH.exec(rest);
    if (!m) return undefined;
    const from = kernelNumber(m[2]!);
    const to = m[3] === undefined ? from : kernelNumber(m[3]);
    if (to > BigInt(MAX_ID) || from > to) return undefined;
    for (let id = Number(from); id <= Number(to); id++) {
      if (m[1] === '+') next.add(id);
      else next.delete(id);
    }
    rest = rest.slice(m[0].length);
  }
  return next;
}

/** kstrtoul(buf, 0) (lib/kstrtox.c), refusing as the store functions pass its errno on. */
function parseUlong(data: string): number {
  const value = kstrtoul(data);
  if (value === 'EINVAL') throw new Refusal('EINVAL', `not a number: ${JSON.stringify(data)}`);
  if (value === 'ERANGE') throw new Refusal('ERANGE', `${JSON.stringify(data)} does not fit in an unsigned long`);
  return Number(value);
}

// --- small helpers ---------------------------------------------------------

function normalise(path: string): string {
  return path.split('/').filter(Boolean).join('/');
}

function dir(entries: () => string[]): Node {
  return { kind: 'dir', entries };
}

/** A link to a path of the tree; stat() shows it relative to the link's directory, as sysfs does. */
function link(to: string): Node {
  return { kind: 'link', to };
}

/** The target of a link as kernfs writes it (kernfs_get_target_path): up to the common ancestor, then down. */
function relativeTarget(fromDir: string, to: string): string {
  const from = fromDir === '' ? [] : fromDir.split('/');
  const target = to.split('/');
  let common = 0;
  while (common < from.length && common < target.length && from[common] === target[common]) common++;
  return [...from.slice(common).map(() => '..'), ...target.slice(common)].join('/');
}

/** The queue's place in the maps of bindings and overrides. */
function queueKey(q: Apqn): number {
  return q.adapter * 256 + q.domain;
}

function queuePath(q: Apqn): string {
  return `devices/ap/${cardName(q.adapter)}/${formatApqn(q)}`;
}

function chomp(data: string): string {
  return data.endsWith('\n') ? data.slice(0, -1) : data;
}

function cardName(adapter: number): string {
  return `card${formatAdapter(adapter)}`;
}

function first(apqns: ApqnSet): Apqn | undefined {
  for (const apqn of apqns) return apqn;
  return undefined;
}

function toIdSet(ids: IdSet | Iterable<number>): IdSet {
  return ids instanceof IdSet ? ids.clone() : IdSet.of(ids);
}

/** `AA.DDDD` per APQN; `AA.` or `.DDDD` while the other axis is empty. */
function matrixText(m: Pick<SimMdev, 'adapters' | 'domains'>): string {
  const lines = m.adapters.isEmpty()
    ? m.domains.ids().map((d) => `.${formatDomain(d)}`)
    : m.domains.isEmpty()
      ? m.adapters.ids().map((a) => `${formatAdapter(a)}.`)
      : mdevApqns(m).toArray().map(formatApqn);
  return lines.map((l) => `${l}\n`).join('');
}
