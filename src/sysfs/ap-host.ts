// What the AP bus and vfio_ap show in sysfs, read through the Sysfs interface:
// masks, cards, queues, limits and the active mdevs.

import { RuntimeError } from '../errors.js';
import { apConfigFields } from '../model/ap-config.js';
import { ApqnSet, parseApqn, type Apqn } from '../model/apqn.js';
import { IdSet, MAX_ID } from '../model/idset.js';
import { isUuid, type Uuid } from '../model/uuid.js';
import { isSysfsError, type Sysfs } from './sysfs.js';

export const AP_BUS = 'bus/ap';
export const AP_DEVICES = 'bus/ap/devices';
export const MATRIX = 'devices/vfio_ap/matrix';
export const PASSTHROUGH_CREATE = `${MATRIX}/mdev_supported_types/vfio_ap-passthrough/create`;

export function mdevPath(uuid: string, attr?: string): string {
  return attr ? `${MATRIX}/${uuid}/${attr}` : `${MATRIX}/${uuid}`;
}

/** Parses the kernel's `0x` + 64 digits; undefined when it is not that. */
export function parseKernelMask(text: string): IdSet | undefined {
  return IdSet.fromKernelHex(text.trim());
}

export interface ActiveMasks {
  apmask: IdSet;
  aqmask: IdSet;
}

/** The active masks, or undefined when the AP bus has none to show. */
export function readActiveMasks(sysfs: Sysfs): ActiveMasks | undefined {
  const apmask = parseKernelMask(readAttr(sysfs, `${AP_BUS}/apmask`) ?? '');
  const aqmask = parseKernelMask(readAttr(sysfs, `${AP_BUS}/aqmask`) ?? '');
  return apmask && aqmask ? { apmask, aqmask } : undefined;
}

export interface MaxIds {
  adapter: number;
  domain: number;
}

export function readMaxIds(sysfs: Sysfs): MaxIds | undefined {
  const read = (name: string): number | undefined => {
    const n = parseInt(readAttr(sysfs, `${AP_BUS}/${name}`) ?? '', 10);
    return Number.isNaN(n) ? undefined : n;
  };
  const adapter = read('ap_max_adapter_id');
  const domain = read('ap_max_domain_id');
  return adapter === undefined || domain === undefined ? undefined : { adapter, domain };
}

export interface Card {
  adapter: number;
  hwtype: number | undefined;
}

export interface Queue extends Apqn {
  /** The bound driver's name, undefined when unbound. */
  driver: string | undefined;
}

/** `names`: the listing of bus/ap/devices when the caller has it already. */
export function listCards(sysfs: Sysfs, names: readonly string[] = sysfs.list(AP_DEVICES)): Card[] {
  return names
    .filter((n) => n.length === 6 && /^card[0-9a-f]{2}$/.test(n))
    .map((n) => {
      const hw = parseInt(readAttr(sysfs, `${AP_DEVICES}/${n}/hwtype`) ?? '', 10);
      return { adapter: parseInt(n.slice(4), 16), hwtype: Number.isNaN(hw) ? undefined : hw };
    });
}

export function listQueues(sysfs: Sysfs): Queue[] {
  const queues: Queue[] = [];
  for (const name of sysfs.list(AP_DEVICES)) {
    const apqn = parseApqn(name);
    if (!apqn) continue;
    queues.push({ ...apqn, driver: readDriver(sysfs, name) });
  }
  return queues;
}

/** The queues present, by name alone: no attribute is read (65,536 on a full machine). */
export function listQueueApqns(sysfs: Sysfs, names: readonly string[] = sysfs.list(AP_DEVICES)): Apqn[] {
  return presentApqns(sysfs, names).toArray();
}

/** The queues present as a set, by name alone, without an object per queue. */
export function presentApqns(sysfs: Sysfs, names: readonly string[] = sysfs.list(AP_DEVICES)): ApqnSet {
  const set = new ApqnSet();
  for (const name of names) {
    const key = queueKey(name);
    if (key >= 0) set.addKey(key);
  }
  return set;
}

/** Hex digit value of a char code, -1 for anything else. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

/** adapter * 256 + domain for a queue name (`05.00ab`, as parseApqn reads it), -1 for any other name. */
function queueKey(name: string): number {
  if (name.length !== 7 || name.charCodeAt(2) !== 46) {
    // Not the plain form: whatever parseApqn makes of it (a name with blanks around it).
    if (name.startsWith('card')) return -1;
    const apqn = parseApqn(name);
    return apqn ? apqn.adapter * 256 + apqn.domain : -1;
  }
  let adapter = 0;
  for (let i = 0; i < 2; i++) {
    const d = hexDigit(name.charCodeAt(i));
    if (d < 0) return -1;
    adapter = adapter * 16 + d;
  }
  let domain = 0;
  for (let i = 3; i < 7; i++) {
    const d = hexDigit(name.charCodeAt(i));
    if (d < 0) return -1;
    domain = domain * 16 + d;
  }
  return domain > 255 ? -1 : adapter * 256 + domain;
}

function readDriver(sysfs: Sysfs, queue: string): string | undefined {
  // On a real host `driver` is a symlink; the fake root stores the name in a file.
  return readAttr(sysfs, `${AP_DEVICES}/${queue}/driver`)?.trim().split('/').pop() || undefined;
}

export interface ActiveMdev {
  uuid: Uuid;
  adapters: IdSet;
  domains: IdSet;
  controlDomains: IdSet;
  /** As ActiveMatrix's: the matrix an upper bound. */
  cut?: true;
}

/**
 * vfio_ap's matrix attribute: one `AA.DDDD` line per APQN, `AA.` or `.DDDD`
 * while only one side is assigned (matrix_show). Any other line means we do
 * not know what the mdev holds, so it is an error, never an empty matrix:
 * an empty one would let a mask change give its queues to the host.
 */
export function parseMatrix(text: string, where = 'matrix'): { adapters: IdSet; domains: IdSet } {
  const adapters = IdSet.empty();
  const domains = IdSet.empty();
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((line, i) => {
    const m = /^([0-9a-f]{2})?\.([0-9a-f]{4})?$/i.exec(line);
    if (!m || (!m[1] && !m[2])) {
      throw new RuntimeError(`line ${i + 1}, '${line.slice(0, 40)}', is not an APQN as vfio_ap prints it (AA.DDDD): what this mdev holds is unknown`, {
        where,
        hint: 'nothing was changed; check the kernel and the vfio_ap module',
      });
    }
    if (m[1]) adapters.add(parseInt(m[1], 16));
    if (m[2]) domains.add(parseInt(m[2], 16));
  });
  return { adapters, domains };
}

export function parseControlDomains(text: string): IdSet {
  const set = IdSet.empty();
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (/^[0-9a-f]{4}$/i.test(t)) set.add(parseInt(t, 16));
  }
  return set;
}

export function vfioApLoaded(sysfs: Sysfs): boolean {
  return sysfs.exists(MATRIX);
}

/** An active mdev's usage matrix: all the conflict checks need. */
export interface ActiveMatrix {
  uuid: Uuid;
  adapters: IdSet;
  domains: IdSet;
  /** sysfs cut its matrix and the kernel has no ap_config: `adapters` x `domains` is an upper bound (readMdevMatrix). */
  cut?: true;
}

/** The active mdevs' directory names under vfio_ap's matrix device, as sysfs spells them. */
export function activeMdevNames(sysfs: Sysfs): string[] {
  return sysfs.list(MATRIX).filter(isUuid);
}

/**
 * The active mdevs' matrices, one read each (the boot hook's and the callout's
 * view). A matrix that cannot be read is an error, not an empty mdev: taken as
 * empty, its queues could be given to the host. One that vanished was removed.
 */
export function listActiveMatrices(sysfs: Sysfs, names: readonly string[] = activeMdevNames(sysfs)): ActiveMatrix[] {
  const out: ActiveMatrix[] = [];
  for (const uuid of names) {
    let matrix: { adapters: IdSet; domains: IdSet };
    try {
      matrix = readMdevMatrix(sysfs, uuid);
    } catch (err) {
      if (isSysfsError(err, 'ENOENT')) continue;
      throw err;
    }
    out.push({ uuid: uuid.toLowerCase() as Uuid, ...matrix });
  }
  return out;
}

/**
 * What sysfs hands out of an attribute whose show function wrote a page or
 * more (s390's PAGE_SIZE is 4096): its first PAGE_SIZE - 1 bytes
 * (fs/sysfs/file.c sysfs_kf_seq_show, "returned bad count").
 */
export const SYSFS_SHOW_MAX = 4095;

/** Whether a matrix attribute's text is all of it: matrix_show's lines are of even length, a cut one is 4095 bytes. */
export const matrixComplete = (text: string): boolean => text.length < SYSFS_SHOW_MAX;

/**
 * An active mdev's matrix. vfio_ap's matrix_show prints 8 bytes per APQN
 * with no bound, so from 512 APQNs on sysfs cuts it, at a line end plus a
 * whole `AA.DDDD`: it parses as a smaller matrix, whose missing queues a
 * mask change could give to the host. Such an mdev is read from its
 * ap_config (6.10+: the masks themselves, 0x + 64 digits each). Without one
 * (`cut`), what the listing shows bounds it from above: it lists adapter by
 * adapter, each with all the domains, in order; so every adapter past the
 * last one shown may be held too, and while only one adapter shows, every
 * domain past the last one shown. Taken so, nothing of the mdev is ever
 * given to the host; only whether it is exactly a definition is unknown.
 */
export function readMdevMatrix(sysfs: Sysfs, uuid: string): { adapters: IdSet; domains: IdSet; cut?: true } {
  const path = mdevPath(uuid, 'matrix');
  const text = sysfs.read(path);
  if (matrixComplete(text)) return parseMatrix(text, `/sys/${path}`);
  const config = readAttr(sysfs, mdevPath(uuid, 'ap_config'));
  const fields = config === undefined ? undefined : apConfigFields(config);
  if (fields) return { adapters: fields[0], domains: fields[1] };
  const shown = parseMatrix(text, `/sys/${path}`);
  /** `ids` and every ID past its last one. */
  const andPast = (ids: IdSet): IdSet => {
    const last = ids.ids().at(-1) ?? 0;
    return ids.union(IdSet.of(Array.from({ length: MAX_ID - last }, (_, i) => last + 1 + i)));
  };
  return { adapters: andPast(shown.adapters), domains: shown.adapters.size > 1 ? shown.domains : andPast(shown.domains), cut: true };
}

/** The active mdevs with their control domains too. */
export function listActiveMdevs(sysfs: Sysfs): ActiveMdev[] {
  return listActiveMatrices(sysfs).map((m) => ({
    ...m,
    controlDomains: parseControlDomains(readAttr(sysfs, mdevPath(m.uuid, 'control_domains')) ?? ''),
  }));
}

/** The attribute's text, or undefined when it cannot be read (one call instead of exists + read). */
export function readAttr(sysfs: Sysfs, path: string): string | undefined {
  try {
    return sysfs.read(path);
  } catch {
    return undefined;
  }
}
