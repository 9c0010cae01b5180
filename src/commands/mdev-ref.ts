// An mdev as the admin names it on the command line: its UUID, or its name
// in the store (mdevctl keeps no names for vfio_ap mdevs, so the store's are
// the only ones). An ambiguous or unknown name is bad input (exit 2).

import { InputError } from '../errors.js';
import { hexRanges } from '../model/apqn.js';
import { compareMdevs, type MdevDefinition } from '../model/mdev.js';
import { uuidOf, type Uuid } from '../model/uuid.js';

/** The store's mdev that `ref` names: a UUID, else a unique name; undefined for a UUID the store does not hold. */
export function findMdevByRef(mdevs: readonly MdevDefinition[], ref: string, storePath: string): MdevDefinition | undefined {
  const text = ref.trim();
  const uuid = uuidOf(text);
  if (uuid) {
    const byUuid = mdevs.find((m) => m.uuid === uuid);
    // A name may be a UUID too (a libvirt domain's, say): it is looked up when no mdev has that UUID.
    if (byUuid) return byUuid;
    const named = byName(mdevs, text, storePath);
    return named;
  }
  const named = byName(mdevs, text, storePath);
  if (!named) {
    throw new InputError(`no mdev named '${text}' in the store, and '${text}' is not a UUID`, {
      where: storePath,
      hint: "'ap-persist mdev list' shows every mdev with its name and UUID",
    });
  }
  return named;
}

function byName(mdevs: readonly MdevDefinition[], name: string, storePath: string): MdevDefinition | undefined {
  const found = mdevs.filter((m) => m.name !== undefined && m.name === name).sort(compareMdevs);
  if (found.length > 1) {
    const list = found.map((m) => `    ${m.uuid}  adapters ${hexRanges(m.adapters.ids(), 'adapter') || '-'}, domains ${hexRanges(m.domains.ids(), 'domain') || '-'}, start ${m.start}`).join('\n');
    throw new InputError(`the name '${name}' is ambiguous: ${found.length} mdevs in the store have it:\n${list}`, {
      where: storePath,
      hint: "give the UUID of the one you mean (or rename one: 'ap-persist mdev modify UUID --name NEW')",
    });
  }
  return found[0];
}

/** The UUID `ref` names: a UUID as it is (the store need not hold it), else the store's mdev of that name. */
export function uuidOfRef(ref: string, mdevs: () => { mdevs: readonly MdevDefinition[]; path: string }): Uuid {
  const uuid = uuidOf(ref);
  if (uuid) return uuid;
  const store = mdevs();
  return findMdevByRef(store.mdevs, ref, store.path)!.uuid;
}
