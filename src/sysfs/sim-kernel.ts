// The simulated kernel: an in-memory AP bus and vfio_ap behind the same Sysfs
// interface as the real /sys. It refuses what the kernel refuses, with the
// kernel's errno, so boot sequences, mask changes and mdev starts can be
// tested (with faults injected) on any machine. Two flavours: '5.4', as
// Documentation/s390/vfio-ap.rst describes it, and 'current' kernels.

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
const MDEV_ATTRS = [
  'assign_adapter',
  'assign_control_domain',
  'assign_domain',
  'control_domains',
  'matrix',
  'remove',
  'unassign_adapter',
  'unassign_control_domain',
  'unassign_domain',
];
const SUPPORTED_TYPES = `${MATRIX}/mdev_supported_types`;
const PASSTHROUGH = `${SUPPORTED_TYPES}/vfio_ap-passthrough`;

interface SimMdev {
  adapters: IdSet;
  domains: IdSet;
  controlDomains: IdSet;
}

type Axis = 'adapter' | 'domain' | 'control';

type Node =
  | { kind: 'dir'; entries: () => string[] }
  | { kind: 'attr'; show?: () => string; store?: (data: string) => void };

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

export class SimKernel implements Sysfs {
  readonly kernel: KernelFlavour;
  /** Every write the kernel accepted, in order (failed writes are not logged). */
  readonly writes: { path: string; data: string }[] = [];

  private apmask: IdSet;
  private aqmask: IdSet;
  private readonly maxAdapterId: number;
  private readonly maxDomainId: number;
  /** adapter -> hwtype */
  private readonly cards = new Map<number, number>();
  /** The queue devices the AP bus found. */
  private readonly queues = new ApqnSet();
  private loaded: boolean;
  private readonly mdevs = new Map<string, SimMdev>();
  private readonly running = new Set<string>();
  private readonly faults: Fault[] = [];

  constructor(options: SimKernelOptions) {
    this.kernel = options.kernel;
    this.apmask = options.apmask?.clone() ?? IdSet.full();
    this.aqmask = options.aqmask?.clone() ?? IdSet.full();
    this.maxAdapterId = options.maxAdapterId ?? MAX_ID;
    this.maxDomainId = options.maxDomainId ?? MAX_ID;
    this.loaded = options.vfioAp ?? false;
    for (const card of options.cards) this.cards.set(card.adapter, card.hwtype);
    this.queues.addCross(IdSet.of(this.cards.keys()), IdSet.of(options.domains));
  }

  // --- the Sysfs interface -------------------------------------------------

  read(path: string): string {
    const p = normalise(path);
    const node = this.resolve(p);
    if (!node) throw new SysfsError('ENOENT', p, 'read');
    if (node.kind === 'dir') throw new SysfsError('EISDIR', p, 'read');
    if (!node.show) throw new SysfsError('EACCES', p, 'read', 'write-only attribute');
    return node.show();
  }

  write(path: string, data: string): void {
    const p = normalise(path);
    const fault = this.takeFault(p);
    if (fault) throw new SysfsError(fault, p, 'write', 'injected fault');
    const node = this.resolve(p);
    if (!node) throw new SysfsError('ENOENT', p, 'write');
    if (node.kind === 'dir') throw new SysfsError('EISDIR', p, 'write');
    if (!node.store) throw new SysfsError('EACCES', p, 'write', 'read-only attribute');
    // sysfs passes no zero-length write on to the attribute: it succeeds doing nothing.
    if (data !== '') {
      try {
        node.store(data);
      } catch (err) {
        if (err instanceof Refusal) throw new SysfsError(err.code, p, 'write', err.detail);
        throw err;
      }
    }
    this.writes.push({ path: p, data });
  }

  list(dir: string): string[] {
    const node = this.resolve(normalise(dir));
    return node?.kind === 'dir' ? [...node.entries()].sort() : [];
  }

  exists(path: string): boolean {
    return this.resolve(normalise(path)) !== undefined;
  }

  // --- what happens outside sysfs ------------------------------------------

  get vfioApLoaded(): boolean {
    return this.loaded;
  }

  /** `modprobe vfio_ap`: the matrix device appears and vfio_ap probes every free CEX4+ queue. */
  loadVfioAp(): void {
    this.loaded = true;
  }

  /** A guest (QEMU) opens or releases the mdev. */
  setGuestRunning(uuid: string, running: boolean): void {
    if (!this.mdevs.has(uuid)) throw new Error(`no mdev ${uuid} to run a guest on`);
    if (running) this.running.add(uuid);
    else this.running.delete(uuid);
  }

  /**
   * The next `times` writes to a matching path fail with `errno` and change
   * nothing. A string matches the path exactly (as relative to the mount).
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
    if (!this.loaded) throw new Error(`vfio_ap is not loaded: no matrix device to hold mdev ${uuid}`);
    this.mdevs.set(uuid, { adapters: toIdSet(adapters), domains: toIdSet(domains), controlDomains: toIdSet(controlDomains) });
  }

  // --- a fake root on disk -------------------------------------------------

  /**
   * Loads a fake root as src/fakehost/builder.ts lays it out. Bindings are
   * not read: they follow from masks, hwtypes and vfio_ap, as in the kernel.
   * Missing masks or limits take the kernel's defaults; no guest runs.
   */
  static fromDisk(root: string, kernel: KernelFlavour): SimKernel {
    const disk = new FileSysfs(root);
    const masks = readActiveMasks(disk);
    const max = readMaxIds(disk);
    const sim = new SimKernel({
      kernel,
      cards: listCards(disk).map((c) => ({ adapter: c.adapter, hwtype: c.hwtype ?? 0 })),
      domains: [],
      maxAdapterId: max?.adapter,
      maxDomainId: max?.domain,
      apmask: masks?.apmask,
      aqmask: masks?.aqmask,
      vfioAp: vfioApLoaded(disk),
    });
    // The queues the disk has: a fake host need not give every card every domain.
    for (const q of listQueues(disk)) sim.queues.add(q);
    if (sim.loaded) {
      for (const m of listActiveMdevs(disk)) sim.adoptMdev(m.uuid, m.adapters, m.domains, m.controlDomains);
    }
    return sim;
  }

  /**
   * Writes the state under `root/sys` so that FileSysfs reads what this
   * kernel shows; stale queues, driver files and mdev dirs are removed.
   * Files of the AP bus this kernel does not model (bindings, uevent) are left alone.
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

    if (!this.loaded) {
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

  private resolve(path: string): Node | undefined {
    const dir = (entries: () => string[]): Node => ({ kind: 'dir', entries });
    switch (path) {
      case '':
        return dir(() => ['bus', 'devices']);
      case 'bus':
        return dir(() => ['ap']);
      case AP_BUS:
        return dir(() => [...BUS_ATTRS, 'devices']);
      case `${AP_BUS}/apmask`:
        return { kind: 'attr', show: () => `${this.apmask.toKernelHex()}\n`, store: (d) => this.storeMask('apmask', d) };
      case `${AP_BUS}/aqmask`:
        return { kind: 'attr', show: () => `${this.aqmask.toKernelHex()}\n`, store: (d) => this.storeMask('aqmask', d) };
      case `${AP_BUS}/ap_max_adapter_id`:
        return { kind: 'attr', show: () => `${this.maxAdapterId}\n` };
      case `${AP_BUS}/ap_max_domain_id`:
        return { kind: 'attr', show: () => `${this.maxDomainId}\n` };
      case AP_DEVICES:
        return dir(() => [...[...this.cards.keys()].map(cardName), ...[...this.queues].map(formatApqn)]);
      case 'devices':
        return dir(() => (this.loaded ? ['vfio_ap'] : []));
    }
    const device = /^bus\/ap\/devices\/([^/]+)(?:\/([^/]+))?$/.exec(path);
    if (device) return this.deviceNode(device[1]!, device[2]);
    // Everything below exists only while vfio_ap is loaded.
    if (!this.loaded) return undefined;
    switch (path) {
      case 'devices/vfio_ap':
        return dir(() => ['matrix']);
      case MATRIX:
        return dir(() => ['mdev_supported_types', ...this.mdevs.keys()]);
      case SUPPORTED_TYPES:
        return dir(() => ['vfio_ap-passthrough']);
      case PASSTHROUGH:
        return dir(() => ['create']);
      case PASSTHROUGH_CREATE:
        return { kind: 'attr', store: (d) => this.create(d) };
    }
    const mdev = /^devices\/vfio_ap\/matrix\/([^/]+)(?:\/([^/]+))?$/.exec(path);
    return mdev ? this.mdevNode(mdev[1]!, mdev[2]) : undefined;
  }

  private deviceNode(name: string, attr: string | undefined): Node | undefined {
    const card = /^card([0-9a-f]{2})$/.exec(name);
    if (card) {
      const hwtype = this.cards.get(parseInt(card[1]!, 16));
      if (hwtype === undefined) return undefined;
      if (attr === undefined) return { kind: 'dir', entries: () => ['hwtype'] };
      return attr === 'hwtype' ? { kind: 'attr', show: () => `${hwtype}\n` } : undefined;
    }
    const queue = parseApqn(name);
    // Only the canonical spelling names a device, as in sysfs.
    if (!queue || formatApqn(queue) !== name || !this.queues.has(queue)) return undefined;
    const driver = this.driverOf(queue);
    if (attr === undefined) return { kind: 'dir', entries: () => (driver ? ['driver'] : []) };
    // On a real host `driver` is a link to the driver; reading it here gives the name.
    return attr === 'driver' && driver ? { kind: 'attr', show: () => driver } : undefined;
  }

  private mdevNode(uuid: string, attr: string | undefined): Node | undefined {
    const m = this.mdevs.get(uuid);
    if (!m) return undefined;
    if (attr === undefined) return { kind: 'dir', entries: () => MDEV_ATTRS };
    const store = (fn: (d: string) => void): Node => ({ kind: 'attr', store: fn });
    switch (attr) {
      case 'assign_adapter':
        return store((d) => this.assign(uuid, m, 'adapter', d));
      case 'assign_domain':
        return store((d) => this.assign(uuid, m, 'domain', d));
      case 'assign_control_domain':
        return store((d) => this.assign(uuid, m, 'control', d));
      case 'unassign_adapter':
        return store((d) => this.unassign(uuid, m, 'adapter', d));
      case 'unassign_domain':
        return store((d) => this.unassign(uuid, m, 'domain', d));
      case 'unassign_control_domain':
        return store((d) => this.unassign(uuid, m, 'control', d));
      case 'remove':
        return store((d) => this.remove(uuid, d));
      case 'matrix':
        return { kind: 'attr', show: () => matrixText(m) };
      case 'control_domains':
        return { kind: 'attr', show: () => m.controlDomains.ids().map((d) => `${formatDomain(d)}\n`).join('') };
    }
    return undefined;
  }

  // --- the AP bus ----------------------------------------------------------

  /** The default drivers take apmask x aqmask; vfio_ap, once loaded, takes every other CEX4+ queue. */
  private driverOf(q: Apqn): string | undefined {
    if (this.apmask.has(q.adapter) && this.aqmask.has(q.domain)) return HOST_DRIVER;
    return this.loaded && (this.cards.get(q.adapter) ?? 0) >= MIN_VFIO_HWTYPE ? VFIO_DRIVER : undefined;
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

  // --- vfio_ap -------------------------------------------------------------

  private create(data: string): void {
    const text = chomp(data);
    if (text !== text.trim() || !isUuid(text)) throw new Refusal('EINVAL', `not a UUID: ${JSON.stringify(data)}`);
    const uuid = text.toLowerCase();
    if (this.mdevs.has(uuid)) throw new Refusal('EEXIST', `mdev ${uuid} exists`);
    this.mdevs.set(uuid, { adapters: IdSet.empty(), domains: IdSet.empty(), controlDomains: IdSet.empty() });
  }

  private remove(uuid: string, data: string): void {
    if (parseUlong(data) === 0) return;
    if (this.running.has(uuid)) throw new Refusal('EBUSY', `a guest is using mdev ${uuid}`);
    this.mdevs.delete(uuid);
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

  private takeFault(path: string): string | undefined {
    const matches = (f: Fault): boolean => {
      if (typeof f.match === 'string') return f.match === path;
      f.match.lastIndex = 0; // a /g pattern would otherwise remember the last match
      return f.match.test(path);
    };
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
