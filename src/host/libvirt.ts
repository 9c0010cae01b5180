// What libvirt says about guests, read from its files only (a qemu hook must
// never call libvirt back: the daemon waits for the hook, with the domain
// locked). Running guests: the status files /run/libvirt/qemu/<name>.xml,
// which exist while the guest runs. Defined guests: /etc/libvirt/qemu/<name>.xml.

import { readdirSync, readFileSync } from 'node:fs';
import type { HostPaths } from './paths.js';
import { domainDevices } from '../model/libvirt-domain.js';
import type { Uuid } from '../model/uuid.js';

export interface Guest {
  name: string;
  /** The mdevs its XML names (of any model: a running guest holds each). */
  mdevs: Uuid[];
}

function guestsIn(dir: string): Guest[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.xml')).sort();
  } catch {
    return [];
  }
  const out: Guest[] = [];
  for (const file of names) {
    let text: string;
    try {
      text = readFileSync(`${dir}/${file}`, 'utf8');
    } catch {
      continue; // gone meanwhile: the guest stopped
    }
    const found = domainDevices(text);
    out.push({ name: found.name ?? file.slice(0, -4), mdevs: found.anyMdevs });
  }
  return out;
}

/** The guests running now, by libvirt's status files. */
export function runningGuests(paths: HostPaths): Guest[] {
  return guestsIn(paths.libvirtRunDir);
}

/** The guests libvirt has defined (persistent definitions). */
export function definedGuests(paths: HostPaths): Guest[] {
  return guestsIn(paths.libvirtConfigDir);
}

/** The guests of `guests` that use mdev `uuid`, by name. */
export function guestsUsing(guests: readonly Guest[], uuid: string): string[] {
  return guests.filter((g) => g.mdevs.includes(uuid as Uuid)).map((g) => g.name);
}
