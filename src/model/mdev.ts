// A vfio_ap mediated device as the store (or mdevctl) defines it.

import { ApqnSet } from './apqn.js';
import { IdSet } from './idset.js';
import type { Uuid } from './uuid.js';

/**
 * auto: made at boot. manual: made by hand. guest: made right before the libvirt
 * guest that uses it starts, removed after it stopped (the qemu hook).
 */
export type StartMode = 'auto' | 'manual' | 'guest';

export const START_MODES: readonly StartMode[] = ['auto', 'manual', 'guest'];

export function isStartMode(text: string): text is StartMode {
  return (START_MODES as readonly string[]).includes(text);
}

/**
 * mdevctl knows auto and manual: a guest mdev is manual there, so that
 * mdevctl never makes it at boot, and libvirt and mdevctl still list it.
 */
export type MdevctlStart = 'auto' | 'manual';

export function mdevctlStart(start: StartMode): MdevctlStart {
  return start === 'auto' ? 'auto' : 'manual';
}

export interface MdevDefinition {
  uuid: Uuid;
  name?: string | undefined;
  adapters: IdSet;
  domains: IdSet;
  controlDomains: IdSet;
  start: StartMode;
}

/** The usage APQNs an mdev owns; control domains make none. */
export function mdevApqns(mdev: Pick<MdevDefinition, 'adapters' | 'domains'>): ApqnSet {
  return ApqnSet.cross(mdev.adapters, mdev.domains);
}

/** Same adapters, domains and control domains. */
export function sameMatrix(a: Pick<MdevDefinition, 'adapters' | 'domains' | 'controlDomains'>, b: Pick<MdevDefinition, 'adapters' | 'domains' | 'controlDomains'>): boolean {
  return a.adapters.equals(b.adapters) && a.domains.equals(b.domains) && a.controlDomains.equals(b.controlDomains);
}

/**
 * Whether a running mdev is `def`: sameMatrix, or, for one whose matrix sysfs
 * cut (read as an upper bound: sysfs/ap-host.ts readMdevMatrix), `def`
 * within that bound, its control domains the same.
 */
export function runsAs(live: Pick<MdevDefinition, 'adapters' | 'domains' | 'controlDomains'> & { cut?: true }, def: Pick<MdevDefinition, 'adapters' | 'domains' | 'controlDomains'>): boolean {
  if (!live.cut) return sameMatrix(live, def);
  return def.adapters.minus(live.adapters).isEmpty() && def.domains.minus(live.domains).isEmpty() && live.controlDomains.equals(def.controlDomains);
}

/** `uuid (name)` or just the UUID, for messages. */
export function mdevLabel(mdev: { uuid: string; name?: string | undefined }): string {
  return mdev.name ? `${mdev.uuid} (${mdev.name})` : mdev.uuid;
}

/** Host masks; an undefined side means "not set / leave as the kernel has it". */
export interface HostMasks {
  apmask: IdSet | undefined;
  aqmask: IdSet | undefined;
}

/** The APQNs the host's default drivers own: apmask x aqmask. */
export function hostApqns(apmask: IdSet, aqmask: IdSet): ApqnSet {
  return ApqnSet.cross(apmask, aqmask);
}

/** Natural order of two names: digit runs by their value (guest2 before guest10), the rest by code unit. */
export function compareNames(a: string, b: string): number {
  const split = (s: string): string[] => s.match(/\d+|\D+/g) ?? [];
  const x = split(a);
  const y = split(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const p = x[i]!;
    const q = y[i]!;
    if (p === q) continue;
    const digits = /^\d/.test(p) && /^\d/.test(q);
    if (digits) {
      const n = p.replace(/^0+/, '');
      const m = q.replace(/^0+/, '');
      if (n.length !== m.length) return n.length - m.length;
      if (n !== m) return n < m ? -1 : 1;
      if (p.length !== q.length) return p.length - q.length;
      continue;
    }
    return p < q ? -1 : 1;
  }
  return x.length - y.length;
}

/**
 * The order mdevs are listed in: by name (natural order), named before
 * unnamed, then by UUID. Stable across runs, whatever order the store or
 * sysfs gives.
 */
export function compareMdevs(a: { uuid: string; name?: string | null | undefined }, b: { uuid: string; name?: string | null | undefined }): number {
  const an = a.name ?? '';
  const bn = b.name ?? '';
  if (an && !bn) return -1;
  if (!an && bn) return 1;
  const byName = compareNames(an, bn);
  if (byName) return byName;
  return a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0;
}
