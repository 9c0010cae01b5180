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

/** The guests of the XML files in `dir`; `unreadable`: the directory and why, when it could not be read. */
function guestsIn(dir: string): { guests: Guest[]; unreadable?: string } {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.xml')).sort();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // No libvirt, or no guest running: nothing to say.
    return code === 'ENOENT' || code === 'ENOTDIR' ? { guests: [] } : { guests: [], unreadable: `${dir} (${code})` };
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
  return { guests: out };
}

/** The guests running now, by libvirt's status files. */
export function runningGuests(paths: HostPaths): Guest[] {
  return guestsIn(paths.libvirtRunDir).guests;
}

/**
 * Running and defined guests, and libvirt's directories that could not be
 * read (libvirt keeps them root's: run by another user, status sees no guest
 * and must say why).
 */
export function libvirtGuests(paths: HostPaths): { running: Guest[]; defined: Guest[]; unreadable: string[] } {
  const running = guestsIn(paths.libvirtRunDir);
  const defined = guestsIn(paths.libvirtConfigDir);
  return { running: running.guests, defined: defined.guests, unreadable: [running.unreadable, defined.unreadable].filter((u): u is string => u !== undefined) };
}

/** The guests of `guests` that use mdev `uuid`, by name. */
export function guestsUsing(guests: readonly Guest[], uuid: string): string[] {
  return guests.filter((g) => g.mdevs.includes(uuid as Uuid)).map((g) => g.name);
}
