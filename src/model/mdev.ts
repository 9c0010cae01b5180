// A vfio_ap mediated device as the store (or mdevctl) defines it.

import { ApqnSet } from './apqn.js';
import { IdSet } from './idset.js';
import type { Uuid } from './uuid.js';

export type StartMode = 'auto' | 'manual';

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
