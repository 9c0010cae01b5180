// The store: one INI file holding the host masks and the mdev definitions.
// Validated strictly (unknown keys and sections are errors with file:line);
// edited in place through IniDocument so the admin's comments survive.

import { InputError, placeError } from '../errors.js';
import { writeFileAtomic } from '../fsio/atomic.js';
import { readRegularFile } from '../fsio/read.js';
import { parseIdList } from '../model/idlist.js';
import { IdSet } from '../model/idset.js';
import { parseMaskSpec } from '../model/maskspec.js';
import { isStartMode, type HostMasks, type MdevDefinition, type StartMode } from '../model/mdev.js';
import { uuidOf, type Uuid } from '../model/uuid.js';
import { IniDocument, type Entry } from './ini-document.js';
import { storeFromSnapshot, type StoreSnapshot } from './snapshot.js';
import { codeVersion } from '../package-info.js';

export interface Store {
  masks: HostMasks;
  mdevs: MdevDefinition[];
}

export interface LoadedStore {
  path: string;
  /** False when the file does not exist yet (an empty store). */
  exists: boolean;
  /** The file's text as read (a new store's header when there is none). */
  text: string;
  /** The lines, for edits: parsed when first asked (the boot only reads). */
  readonly doc: IniDocument;
  store: Store;
}

const MDEV_PREFIX = 'mdev.';
const MASK_KEYS = new Set(['apmask', 'aqmask']);
const MDEV_KEYS = new Set(['name', 'adapters', 'domains', 'control_domains', 'start']);

export const NEW_STORE_HEADER = `; ap-persist store: host AP masks and vfio_ap mediated devices.
; Edit by hand or with 'ap-persist mask set' / 'ap-persist mdev define';
; then run 'ap-persist check' and 'ap-persist generate'.
`;

/**
 * The store at `path`. With generate's snapshot of it (store/snapshot.ts)
 * and the same text, its meaning is taken from the snapshot; otherwise the
 * file is parsed and validated (a broken store throws here).
 */
export function loadStore(path: string, snapshot?: StoreSnapshot): LoadedStore {
  const read = readRegularFile(path, 'the store');
  const text = read ?? NEW_STORE_HEADER;
  let doc: IniDocument | undefined;
  const parsed = (): IniDocument => (doc ??= IniDocument.parse(text, path));
  let store = read === undefined ? { masks: { apmask: undefined, aqmask: undefined }, mdevs: [] } : snapshot && storeFromSnapshot(snapshot, codeVersion(), text);
  store ??= validateStore(parsed());
  return {
    path,
    exists: read !== undefined,
    text,
    get doc() {
      return parsed();
    },
    store,
  };
}

export function parseStoreText(text: string, file: string): Store {
  return validateStore(IniDocument.parse(text, file));
}

function validateStore(doc: IniDocument): Store {
  const file = doc.file;
  const masks: HostMasks = { apmask: undefined, aqmask: undefined };
  const mdevs: MdevDefinition[] = [];
  const seen = new Map<string, number>();
  for (const section of doc.sections()) {
    const where = `${file}:${section.line}`;
    if (section.name === '') {
      throw new InputError('a key = value before any [section]', { where, hint: 'put it under [masks] or [mdev.UUID]' });
    }
    // One mdev, one section: [mdev.U], [mdev. U] and [mdev.u] are the same UUID.
    const uuidText = section.name.startsWith(MDEV_PREFIX) ? section.name.slice(MDEV_PREFIX.length) : undefined;
    const uuid = uuidText === undefined ? undefined : uuidOf(uuidText);
    const key = uuid ? `${MDEV_PREFIX}${uuid}` : section.name;
    const first = seen.get(key);
    if (first !== undefined) {
      throw new InputError(`section [${section.name}] defines ${uuidText !== undefined ? `mdev ${key.slice(MDEV_PREFIX.length)}` : `[${section.name}]`} a second time (first at line ${first})`, {
        where,
        hint: 'merge the two sections into one',
      });
    }
    seen.set(key, section.line);
    const entries = uniqueEntries(section.entries, file);
    if (section.name === 'masks') {
      for (const e of entries.values()) {
        if (!MASK_KEYS.has(e.key)) throw unknownKey(e, file, 'masks', MASK_KEYS);
        const spec = tryAt(() => parseMaskSpec(e.value, e.key as 'apmask', true), `${file}:${e.line}`);
        if (spec.kind !== 'absolute') {
          throw new InputError(`${e.key} '${e.value}' is a +/- change; in the store a mask is absolute`, {
            where: `${file}:${e.line}`,
            hint: `list the host-owned IDs, or use 'ap-persist mask set ${e.key}=${e.value}' to apply the change`,
          });
        }
        masks[e.key as 'apmask' | 'aqmask'] = spec.mask;
      }
    } else if (section.name.startsWith(MDEV_PREFIX)) {
      mdevs.push(validateMdev(section.name.slice(MDEV_PREFIX.length), uuid, section.line, entries, file));
    } else {
      throw new InputError(`unknown section [${section.name}]`, {
        where,
        hint: 'sections are [masks] and [mdev.UUID]',
      });
    }
  }
  return { masks, mdevs };
}

function uniqueEntries(entries: Entry[], file: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  for (const e of entries) {
    const prev = out.get(e.key);
    if (prev) {
      throw new InputError(`${e.key} is set twice (first at line ${prev.line})`, {
        where: `${file}:${e.line}`,
        hint: 'keep one of the two lines',
      });
    }
    out.set(e.key, e);
  }
  return out;
}

function unknownKey(e: Entry, file: string, section: string, known: Set<string>): InputError {
  return new InputError(`unknown key '${e.key}' in [${section}]`, {
    where: `${file}:${e.line}`,
    hint: `known keys: ${[...known].join(', ')}`,
  });
}

function tryAt<T>(fn: () => T, where: string): T {
  try {
    return fn();
  } catch (err) {
    return placeError(err, where);
  }
}

function validateMdev(uuidText: string, uuid: Uuid | undefined, line: number, entries: Map<string, Entry>, file: string): MdevDefinition {
  if (!uuid) {
    throw new InputError(`[mdev.${uuidText}]: '${uuidText}' is not a UUID`, {
      where: `${file}:${line}`,
      hint: 'name mdev sections [mdev.UUID] with an 8-4-4-4-12 hex UUID (uuidgen makes one)',
    });
  }
  const sectionName = `mdev.${uuidText}`;
  for (const e of entries.values()) if (!MDEV_KEYS.has(e.key)) throw unknownKey(e, file, sectionName, MDEV_KEYS);
  const ids = (key: string, what: string): IdSet => {
    const e = entries.get(key);
    return e ? tryAt(() => parseIdList(e.value, what, true), `${file}:${e.line}`) : IdSet.empty();
  };
  const startEntry = entries.get('start');
  let start: StartMode = 'auto';
  if (startEntry) {
    if (!isStartMode(startEntry.value)) {
      throw new InputError(`start '${startEntry.value}' is not auto, manual or guest`, {
        where: `${file}:${startEntry.line}`,
        hint: 'write start = auto (made at boot), start = manual (made by hand) or start = guest (made for its libvirt guest)',
      });
    }
    start = startEntry.value;
  }
  const nameEntry = entries.get('name');
  return {
    uuid,
    name: nameEntry?.value || undefined,
    adapters: ids('adapters', 'adapter'),
    domains: ids('domains', 'domain'),
    controlDomains: ids('control_domains', 'control domain'),
    start,
  };
}

export function findMdevSection(doc: IniDocument, uuid: Uuid): string | undefined {
  return doc
    .sections()
    .map((s) => s.name)
    .find((n) => n.startsWith(MDEV_PREFIX) && uuidOf(n.slice(MDEV_PREFIX.length)) === uuid);
}

/**
 * Writes `mdev` into the document. Keys whose meaning did not change keep the
 * admin's spelling (`4,0xab` stays `4,0xab`).
 */
export function putMdev(doc: IniDocument, mdev: MdevDefinition, previous?: MdevDefinition): void {
  const section = findMdevSection(doc, mdev.uuid) ?? `${MDEV_PREFIX}${mdev.uuid}`;
  doc.addSection(section);
  if (mdev.name) {
    if (mdev.name !== previous?.name) doc.set(section, 'name', mdev.name);
  } else doc.delete(section, 'name');
  const putIds = (key: string, ids: IdSet, before: IdSet | undefined, optional: boolean): void => {
    if (optional && ids.isEmpty()) doc.delete(section, key);
    else if (!before || !before.equals(ids) || doc.get(section, key) === undefined) doc.set(section, key, ids.toRanges());
  };
  putIds('adapters', mdev.adapters, previous?.adapters, false);
  putIds('domains', mdev.domains, previous?.domains, false);
  putIds('control_domains', mdev.controlDomains, previous?.controlDomains, true);
  doc.set(section, 'start', mdev.start);
}

export function removeMdev(doc: IniDocument, uuid: Uuid): void {
  const section = findMdevSection(doc, uuid);
  if (section) doc.removeSection(section);
}

/** Sets the absolute masks; an undefined side is left as it is. */
export function putMasks(doc: IniDocument, masks: HostMasks, previous: HostMasks): void {
  for (const key of ['apmask', 'aqmask'] as const) {
    const mask = masks[key];
    if (!mask) continue;
    if (previous[key]?.equals(mask) && doc.get('masks', key) !== undefined) continue;
    doc.set('masks', key, mask.toRanges());
  }
}

/** Drops a mask: the store no longer sets it, so it stays as the kernel has it. */
export function unsetMask(doc: IniDocument, key: 'apmask' | 'aqmask'): void {
  if (doc.get('masks', key) !== undefined) doc.delete('masks', key);
}

/** Validates the edited text as a store, then replaces the file atomically. */
export function saveStore(loaded: LoadedStore): Store {
  const text = loaded.doc.toString();
  const store = parseStoreText(text, loaded.path);
  // Configuration management often links the store to its own file: write through the link.
  writeFileAtomic(loaded.path, text, { mode: 0o644, throughLink: true });
  return store;
}
