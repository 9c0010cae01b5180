// The simulated kernel: an in-memory AP bus and vfio_ap behind the same Sysfs
// interface as the real /sys. It refuses what the kernel refuses, with the
// kernel's errno, so boot sequences, mask changes and mdev starts can be
// tested (with faults injected) on any machine. Two flavours: '5.4', as
// Documentation/s390/vfio-ap.rst describes it, and 'current' kernels.
//
// The tree has the shape of a real sysfs (directories, attributes, relative
// links, the mdev core's files), so that the same model can also be mounted
// as a filesystem (test/support/sim-sysfs) for real tools such as mdevctl.

import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ApqnSet, formatApqn, parseApqn, type Apqn, formatAdapter, formatDomain } from '../model/apqn.js';
import { IdSet, MAX_ID } from '../model/idset.js';
import { hostApqns, mdevApqns } from '../model/mdev.js';
import { isUuid } from '../model/uuid.js';
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
  vfioApLoaded,
} from './ap-host.js';
import { FileSysfs } from './file-sysfs.js';
import { SysfsError, type Sysfs } from './sysfs.js';

export type KernelFlavour = '5.4' | 'current';

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
  queues: { apqn: string; driver: string | null }[];
  mdevs: SimMdevState[];
  writes: { path: string; data: string }[];
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

export const HOST_DRIVER = 'cex4queue';
export const VFIO_DRIVER = 'vfio_ap';

/** CEX4 and newer: the only cards vfio_ap registers for. */
const MIN_VFIO_HWTYPE = 10;

/**
 * What a current-kernel assign answers when an APQN is another mdev's.
 * DESIGN.md asks for EBUSY. NOTE: upstream vfio_ap_mdev_validate_masks()
 * returns EADDRINUSE here too; the AP bus gives EBUSY only for a mask change
 * (the in_use callback). Kept in one place so it is easy to change.
 */
const CURRENT_SHARING_ERRNO = 'EBUSY';

const BUS_ATTRS = ['ap_max_adapter_id', 'ap_max_domain_id', 'apmask', 'aqmask'];
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

  private apmask: IdSet;
  private aqmask: IdSet;
  private readonly maxAdapterId: number;
  private readonly maxDomainId: number;
  /** adapter -> hwtype */
  private readonly cards = new Map<number, number>();
  /** Usage domains a card added later brings (the AP configuration's domains). */
  private readonly usageDomains: IdSet;
  /** The queue devices the AP bus found. */
  private readonly queues = new ApqnSet();
  private readonly modules = new Set<ModuleName>();
  private readonly loadFaults = new Map<ModuleName, { errno: string; times: number }>();
  private readonly mdevs = new Map<string, SimMdev>();
  private readonly mttyMdevs = new Map<string, MttyType>();
  private readonly running = new Set<string>();
  private readonly faults: Fault[] = [];
  private readonly parents: readonly MdevParent[];

  constructor(options: SimKernelOptions) {
    this.kernel = options.kernel;
    this.apmask = options.apmask?.clone() ?? IdSet.full();
    this.aqmask = options.aqmask?.clone() ?? IdSet.full();
    this.maxAdapterId = options.maxAdapterId ?? MAX_ID;
    this.maxDomainId = options.maxDomainId ?? MAX_ID;
    if (options.vfioAp) this.modules.add('vfio_ap');
    if (options.mtty) this.modules.add('mtty');
    for (const card of options.cards) this.cards.set(card.adapter, card.hwtype);
    this.usageDomains = IdSet.of(options.domains);
    this.queues.addCross(IdSet.of(this.cards.keys()), this.usageDomains);
    this.parents = [this.vfioApParent(), this.mttyParent()];
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
    return node.show();
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
    // sysfs passes no zero-length write on to the attribute: it succeeds doing nothing.
    if (data !== '') {
      try {
        node.store(data);
      } catch (err) {
        if (err instanceof Refusal) throw new SysfsError(err.code, p, 'write', err.detail);
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

  /** `modprobe NAME`; loading a loaded module does nothing, as modprobe. Throws KernelEventError when made to fail. */
  loadModule(name: ModuleName): void {
    const fault = this.loadFaults.get(name);
    if (fault) {
      if (--fault.times <= 0) this.loadFaults.delete(name);
      throw new KernelEventError(fault.errno, `could not insert '${name}'`);
    }
    this.modules.add(name);
  }

  /** The next `times` loads of `name` fail with `errno` (ENODEV: what vfio_ap_init answers without AP instructions). */
  failLoad(name: ModuleName, errno = 'ENODEV', times = 1): void {
    this.loadFaults.set(name, { errno, times });
  }

  /**
   * An AP bus scan finds a new card (ap_scan_adapter): a card device and a
   * queue per usage domain, each bound by the masks like the others.
   */
  addCard(adapter: number, hwtype: number, domains: Iterable<number> = this.usageDomains.ids()): void {
    if (adapter > this.maxAdapterId) throw new KernelEventError('ENODEV', `adapter ${adapter} is above ap_max_adapter_id ${this.maxAdapterId}`);
    if (this.cards.has(adapter)) throw new KernelEventError('EEXIST', `card ${formatAdapter(adapter)} is there already`);
    this.cards.set(adapter, hwtype);
    this.queues.addCross(IdSet.of([adapter]), IdSet.of(domains));
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
      queues: [...this.queues].map((q) => ({ apqn: formatApqn(q), driver: this.driverOf(q) ?? null })),
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
    };
  }

  // --- a fake root on disk -------------------------------------------------

  /**
   * Loads a fake root as src/fakehost/builder.ts lays it out. Bindings are
   * not read: they follow from masks, hwtypes and vfio_ap, as in the kernel.
   * Missing masks or limits take the kernel's defaults; no guest runs.
   */
  static fromDisk(root: string, kernel: KernelFlavour, more: Pick<SimKernelOptions, 'mtty'> = {}): SimKernel {
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
    });
    // The queues the disk has: a fake host need not give every card every domain.
    // A card added later gets the domains the others have.
    for (const q of queues) {
      sim.queues.add(q);
      sim.usageDomains.add(q.domain);
    }
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
   * and `uevent` are left alone.
   */
  saveTo(root: string): void {
    const sys = join(root, 'sys');
    const put = (rel: string, text: string): void => {
      mkdirSync(dirname(join(sys, rel)), { recursive: true });
      writeFileSync(join(sys, rel), text);
    };
    for (const name of BUS_ATTRS) put(`${AP_BUS}/${name}`, this.read(`${AP_BUS}/${name}`));

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
        return dir(() => ['bus', 'class', 'devices', 'module']);
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
          return dir(() => [...BUS_ATTRS, ...(this.kernel === '5.4' ? [] : ['bindings']), 'devices', 'drivers']);
        case 'apmask':
          return { kind: 'attr', show: () => `${this.apmask.toKernelHex()}\n`, store: (d) => this.storeMask('apmask', d) };
        case 'aqmask':
          return { kind: 'attr', show: () => `${this.aqmask.toKernelHex()}\n`, store: (d) => this.storeMask('aqmask', d) };
        case 'ap_max_adapter_id':
          return { kind: 'attr', show: () => `${this.maxAdapterId}\n` };
        case 'ap_max_domain_id':
          return { kind: 'attr', show: () => `${this.maxDomainId}\n` };
        case 'bindings':
          // Came with the BINDINGS=complete event, after 5.4.
          return this.kernel === '5.4' ? undefined : { kind: 'attr', show: () => this.bindingsText() };
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
        if (second === 'uevent') return parts.length === 2 ? uevent(() => '') : undefined;
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
    if (name === 'uevent' || name === 'subsystem') return child === undefined ? deviceFile(name, AP_BUS, '') : undefined;
    const hwtype = this.card(name);
    if (hwtype === undefined) return undefined;
    const adapter = parseInt(name.slice(4), 16);
    if (child === undefined) return dir(() => ['hwtype', 'subsystem', 'uevent', ...this.queues.row(adapter).ids().map((d) => formatApqn({ adapter, domain: d }))]);
    if (attr === undefined && (child === 'hwtype' || child === 'uevent' || child === 'subsystem')) {
      if (child === 'hwtype') return { kind: 'attr', show: () => `${hwtype}\n` };
      const type = hwtype.toString(16).toUpperCase();
      return deviceFile(child, AP_BUS, `DEVTYPE=ap_card\nDEV_TYPE=${type.padStart(4, '0')}\nMODALIAS=ap:t${type.padStart(2, '0')}\n`);
    }
    const queue = this.queue(child);
    if (queue?.adapter !== adapter) return undefined;
    switch (attr) {
      case undefined:
        return dir(() => [...(this.driverOf(queue) ? ['driver'] : []), 'subsystem', 'uevent']);
      case 'driver': {
        const driver = this.driverOf(queue);
        return driver ? link(`${AP_BUS}/drivers/${driver}`) : undefined;
      }
      case 'uevent':
      case 'subsystem': {
        const driver = this.driverOf(queue);
        return deviceFile(attr, AP_BUS, `DEVTYPE=ap_queue\n${driver ? `DRIVER=${driver}\n` : ''}`);
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
        return dir(() => [...parent.attrs(first), 'mdev_type', 'remove', 'subsystem', 'uevent']);
      case 'mdev_type':
        return link(`${parent.path}/mdev_supported_types/${type}`);
      case 'remove':
        return { kind: 'attr', store: (d) => this.removeMdev(parent, first, d) };
      case 'uevent':
      case 'subsystem':
        return deviceFile(second, 'bus/mdev', '');
    }
    return parent.attr(first, second);
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

  /** The default drivers take apmask x aqmask; vfio_ap, once loaded, takes every other CEX4+ queue. */
  private driverOf(q: Apqn): string | undefined {
    if (this.apmask.has(q.adapter) && this.aqmask.has(q.domain)) return HOST_DRIVER;
    return this.vfioApLoaded && (this.cards.get(q.adapter) ?? 0) >= MIN_VFIO_HWTYPE ? VFIO_DRIVER : undefined;
  }

  /** ap_bus.c bindings_show: bound queues / queues, `(complete)` when all are bound. */
  private bindingsText(): string {
    let apqns = 0;
    let bound = 0;
    for (const q of this.queues) {
      apqns++;
      if (this.driverOf(q)) bound++;
    }
    return bound === apqns ? `${bound}/${apqns} (complete)\n` : `${bound}/${apqns}\n`;
  }

  private storeMask(which: 'apmask' | 'aqmask', data: string): void {
    const next = parseMaskWrite(data, this[which]);
    if (!next) throw new Refusal('EINVAL', `not a mask the AP bus accepts: ${JSON.stringify(data)}`);
    const apmask = which === 'apmask' ? next : this.apmask;
    const aqmask = which === 'aqmask' ? next : this.aqmask;
    if (this.kernel === 'current') {
      // The AP bus asks vfio_ap (in_use) about the APQNs the host would gain; 5.4 asks no one.
      const gained = hostApqns(apmask, aqmask).minus(hostApqns(this.apmask, this.aqmask));
      const taken = this.ownerOf(gained);
      if (taken) throw new Refusal('EBUSY', `APQN ${formatApqn(taken.apqn)} is assigned to mdev ${taken.uuid}`);
    }
    this.apmask = apmask;
    this.aqmask = aqmask;
  }

  // --- the mdev core -------------------------------------------------------

  private registeredParents(): MdevParent[] {
    return this.parents.filter((p) => p.registered());
  }

  private parentOf(uuid: string): MdevParent | undefined {
    return this.registeredParents().find((p) => p.typeOf(uuid) !== undefined);
  }

  /** mdev_sysfs.c create_store, mdev_core.c mdev_device_create: a UUID, unique over every parent. */
  private createMdev(parent: MdevParent, type: string, data: string): void {
    const text = chomp(data);
    if (text !== text.trim() || !isUuid(text)) throw new Refusal('EINVAL', `not a UUID: ${JSON.stringify(data)}`);
    const uuid = text.toLowerCase();
    if (this.parentOf(uuid)) throw new Refusal('EEXIST', `mdev ${uuid} exists`);
    parent.create(uuid, type);
  }

  /** mdev_sysfs.c remove_store: kstrtoul; 0 does nothing. */
  private removeMdev(parent: MdevParent, uuid: string, data: string): void {
    if (parseUlong(data) !== 0) parent.remove(uuid);
  }

  private vfioApParent(): MdevParent {
    return {
      name: VFIO_AP_PARENT,
      path: MATRIX,
      deviceApi: 'vfio-ap',
      deviceFiles: () => ({
        driver: link(`bus/matrix/drivers/${VFIO_DRIVER}`),
        subsystem: deviceFile('subsystem', 'bus/matrix', ''),
        uevent: deviceFile('uevent', 'bus/matrix', `DRIVER=${VFIO_DRIVER}\n`),
      }),
      registered: () => this.vfioApLoaded,
      types: () => [PASSTHROUGH_TYPE],
      typeName: () => 'VFIO AP Passthrough Device',
      available: () => VFIO_AP_INSTANCES - this.mdevs.size,
      typeOf: (uuid) => (this.mdevs.has(uuid) ? PASSTHROUGH_TYPE : undefined),
      children: () => [...this.mdevs.keys()],
      create: (uuid) => void this.mdevs.set(uuid, { adapters: IdSet.empty(), domains: IdSet.empty(), controlDomains: IdSet.empty() }),
      remove: (uuid) => {
        if (this.running.has(uuid)) throw new Refusal('EBUSY', `a guest is using mdev ${uuid}`);
        this.mdevs.delete(uuid);
      },
      attrs: () => VFIO_AP_MDEV_ATTRS,
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
        subsystem: deviceFile('subsystem', 'class/mtty', ''),
        uevent: deviceFile('uevent', 'class/mtty', ''),
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
        return { kind: 'attr', show: () => matrixText(m) };
      case 'control_domains':
        return { kind: 'attr', show: () => m.controlDomains.ids().map((d) => `${formatDomain(d)}\n`).join('') };
    }
    return undefined;
  }

  private assign(uuid: string, m: SimMdev, axis: Axis, data: string): void {
    this.refuseWhileRunning54(uuid);
    const id = this.parseId(axis, data);
    if (axis === 'control') {
      m.controlDomains.add(id); // control domains make no APQN: nothing else to check
      return;
    }
    const set = axis === 'adapter' ? m.adapters : m.domains;
    if (this.kernel === 'current' && set.has(id)) return;
    const next: SimMdev = {
      ...m,
      adapters: axis === 'adapter' ? m.adapters.clone().add(id) : m.adapters,
      domains: axis === 'domain' ? m.domains.clone().add(id) : m.domains,
    };
    if (this.kernel === '5.4') {
      this.requireBoundToVfio(m, axis, id);
      const shared = this.ownerOf(mdevApqns(next), uuid);
      if (shared) throw new Refusal('EADDRINUSE', `APQN ${formatApqn(shared.apqn)} is assigned to mdev ${shared.uuid}`);
    } else {
      // Current kernels take IDs not present yet (over-provisioning); only the host's pool and other mdevs count.
      const hostOwned = first(mdevApqns(next).intersect(hostApqns(this.apmask, this.aqmask)));
      if (hostOwned) throw new Refusal('EADDRNOTAVAIL', `APQN ${formatApqn(hostOwned)} is reserved for the host's drivers`);
      const shared = this.ownerOf(mdevApqns(next), uuid);
      if (shared) throw new Refusal(CURRENT_SHARING_ERRNO, `APQN ${formatApqn(shared.apqn)} is assigned to mdev ${shared.uuid}`);
    }
    m.adapters = next.adapters;
    m.domains = next.domains;
  }

  private unassign(uuid: string, m: SimMdev, axis: Axis, data: string): void {
    this.refuseWhileRunning54(uuid);
    const id = this.parseId(axis, data);
    (axis === 'adapter' ? m.adapters : axis === 'domain' ? m.domains : m.controlDomains).delete(id);
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
   * 5.4 (vfio-ap.rst): every APQN of the new ID and the IDs already on the
   * other axis must be bound to vfio_ap; with none there yet, at least one
   * APQN of the new ID must be.
   */
  private requireBoundToVfio(m: SimMdev, axis: 'adapter' | 'domain', id: number): void {
    const other = axis === 'adapter' ? m.domains : m.adapters;
    const apqn = (o: number): Apqn => (axis === 'adapter' ? { adapter: id, domain: o } : { adapter: o, domain: id });
    const bound = (q: Apqn): boolean => this.queues.has(q) && this.driverOf(q) === VFIO_DRIVER;
    if (other.isEmpty()) {
      const mine = [...this.queues].filter((q) => (axis === 'adapter' ? q.adapter : q.domain) === id);
      if (!mine.some(bound)) throw new Refusal('EADDRNOTAVAIL', `no APQN of ${axis} ${id} is bound to vfio_ap`);
      return;
    }
    const missing = other.ids().map(apqn).find((q) => !bound(q));
    if (missing) throw new Refusal('EADDRNOTAVAIL', `APQN ${formatApqn(missing)} is not bound to vfio_ap`);
  }

  /** The first of `apqns` some mdev (other than `except`) has, and that mdev. */
  private ownerOf(apqns: ApqnSet, except?: string): { apqn: Apqn; uuid: string } | undefined {
    for (const [uuid, other] of this.mdevs) {
      if (uuid === except) continue;
      const apqn = first(apqns.intersect(mdevApqns(other)));
      if (apqn) return { apqn, uuid };
    }
    return undefined;
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
 * The AP bus's mask parser (ap_parse_mask_str). A string starting with `+` or
 * `-` switches bits of the current mask: a comma list of `+N`/`-N`, or ranges
 * `+N-M`; N as the kernel's strtoul reads it (decimal, `0x` hex, leading-0
 * octal), 0-255. Anything else is absolute hex (`0x` optional in the
 * kernel too), padded on the right, at most 64 digits. One trailing newline is
 * allowed. Undefined means EINVAL, and nothing is applied.
 */
export function parseMaskWrite(data: string, current: IdSet): IdSet | undefined {
  if (data.startsWith('+') || data.startsWith('-')) return switchBits(data, current);
  const m = /^(?:0?x)?([0-9a-fA-F]*)\n?$/.exec(data);
  if (!m || m[1]!.length > 64) return undefined;
  // An empty value (`echo > apmask`) is a valid, empty mask to the kernel.
  return m[1] ? IdSet.fromHexDigits(m[1]) : IdSet.empty();
}

const NUMBER = '(0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*)';
const SWITCH = new RegExp(`^([+-])${NUMBER}(?:-${NUMBER})?[,\\n]*`, 'i');
const ULONG = new RegExp(`^\\+?${NUMBER}\\n?$`, 'i');
const ULONG_MAX = 2n ** 64n - 1n;

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

/**
 * kstrtoul(buf, 0): an optional `+`, then decimal, `0x` hex or leading-0
 * octal, one optional newline; anything else EINVAL, above 2^64-1 ERANGE.
 */
function parseUlong(data: string): number {
  const m = ULONG.exec(data);
  if (!m) throw new Refusal('EINVAL', `not a number: ${JSON.stringify(data)}`);
  const value = kernelNumber(m[1]!);
  if (value > ULONG_MAX) throw new Refusal('ERANGE', `${m[1]} does not fit in an unsigned long`);
  return Number(value);
}

/** A number as the kernel's strtoul with base 0 reads it. */
function kernelNumber(text: string): bigint {
  if (/^0x/i.test(text)) return BigInt(`0x${text.slice(2)}`);
  return text.length > 1 && text.startsWith('0') ? BigInt(`0o${text.slice(1)}`) : BigInt(text);
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

/**
 * The driver core's files of every device (core.c): `uevent`, which shows
 * what the device's uevent callbacks add and takes a synthetic event (there
 * is no netlink here, so a write is only logged), and, for a device on a bus
 * or in a class, the `subsystem` link.
 */
function deviceFile(name: 'uevent' | 'subsystem', subsystem: string, event: string): Node {
  return name === 'subsystem' ? link(subsystem) : uevent(() => event);
}

function uevent(show: () => string): Node {
  return {
    kind: 'attr',
    show,
    store: (d) => {
      if (!UEVENT_WRITE.test(d)) throw new Refusal('EINVAL', `not a uevent action: ${JSON.stringify(d)}`);
    },
  };
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
function matrixText(m: SimMdev): string {
  const lines = m.adapters.isEmpty()
    ? m.domains.ids().map((d) => `.${formatDomain(d)}`)
    : m.domains.isEmpty()
      ? m.adapters.ids().map((a) => `${formatAdapter(a)}.`)
      : mdevApqns(m).toArray().map(formatApqn);
  return lines.map((l) => `${l}\n`).join('');
}
