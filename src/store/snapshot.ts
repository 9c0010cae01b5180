// The store as generate read it, kept in its record (generated.json): the
// file's text and what it means. The boot (hook, callout) reads the store at
// every event; when its text is the one generate validated, by the same
// version of the tool, the meaning is taken from here instead of parsing and
// validating the file again. Any difference in the text or the version, or a
// snapshot that is not well formed, and the store is read as always.
// Pure: no I/O.

import { IdSet } from '../model/idset.js';
import { isStartMode, type HostMasks, type MdevDefinition } from '../model/mdev.js';
import { uuidOf } from '../model/uuid.js';
import type { Store } from './store.js';

/** An ID set as its eight 32-bit words (IdSet.words): JSON.parse reads them, no code of ours per ID or digit. */
type Words = number[];

interface SnapshotMdev {
  uuid: string;
  name?: string;
  start: string;
  adapters: Words;
  domains: Words;
  control_domains: Words;
}

export interface StoreSnapshot {
  /** The version of ap-persist that validated it (codeVersion): another version may read the store otherwise. */
  tool: string;
  /** The store file's text, byte for byte. */
  content: string;
  masks: { apmask: Words | null; aqmask: Words | null };
  mdevs: SnapshotMdev[];
}

const words = (ids: IdSet): Words => Array.from(ids.words);

export function storeSnapshot(tool: string, content: string, store: Store): StoreSnapshot {
  return {
    tool,
    content,
    masks: { apmask: store.masks.apmask ? words(store.masks.apmask) : null, aqmask: store.masks.aqmask ? words(store.masks.aqmask) : null },
    mdevs: store.mdevs.map((m) => ({
      uuid: m.uuid,
      ...(m.name ? { name: m.name } : {}),
      start: m.start,
      adapters: words(m.adapters),
      domains: words(m.domains),
      control_domains: words(m.controlDomains),
    })),
  };
}

/** The snapshot as the record holds it, if it is one: anything else is no snapshot. */
export function asSnapshot(value: unknown): StoreSnapshot | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const s = value as Partial<StoreSnapshot>;
  if (typeof s.tool !== 'string' || typeof s.content !== 'string' || typeof s.masks !== 'object' || s.masks === null || !Array.isArray(s.mdevs)) return undefined;
  return s as StoreSnapshot;
}

/**
 * Reads the snapshot's ID sets into one buffer, each set a view of its own
 * eight words there (IdSet.inWords): one typed array, not one per set.
 */
class SetReader {
  private readonly words: Uint32Array;
  private next = 0;
  constructor(sets: number) {
    this.words = new Uint32Array(8 * sets);
  }

  /** Eight integers 0 .. 2^32-1, as IdSet words; undefined for anything else. */
  idSet(value: unknown): IdSet | undefined {
    if (!Array.isArray(value) || value.length !== 8) return undefined;
    // One test per word (a string, a fraction, a negative or a larger number fails it): the boot reads some 200 sets.
    for (let i = 0; i < 8; i++) if (value[i] >>> 0 !== value[i]) return undefined;
    const at = this.next;
    this.next += 8;
    this.words.set(value as number[], at);
    return IdSet.inWords(this.words.subarray(at, at + 8));
  }

  mask(value: unknown): IdSet | undefined | null {
    return value === null ? null : (this.idSet(value) ?? undefined);
  }
}

/**
 * The store `text` means, from `snapshot` when it was taken of this very
 * text by this `tool`; undefined when the store must be read as always.
 */
export function storeFromSnapshot(snapshot: StoreSnapshot, tool: string, text: string): Store | undefined {
  if (snapshot.tool !== tool || snapshot.content !== text) return undefined;
  const sets = new SetReader(2 + 3 * snapshot.mdevs.length);
  const apmask = sets.mask(snapshot.masks.apmask);
  const aqmask = sets.mask(snapshot.masks.aqmask);
  if (apmask === undefined || aqmask === undefined) return undefined;
  const masks: HostMasks = { apmask: apmask ?? undefined, aqmask: aqmask ?? undefined };
  const mdevs: MdevDefinition[] = [];
  for (const m of snapshot.mdevs as unknown[]) {
    const s = m as Partial<Record<keyof SnapshotMdev, unknown>> | null;
    const uuid = typeof s?.uuid === 'string' ? uuidOf(s.uuid) : undefined;
    const adapters = sets.idSet(s?.adapters);
    const domains = sets.idSet(s?.domains);
    const controlDomains = sets.idSet(s?.control_domains);
    const start = s?.start;
    if (!uuid || uuid !== s!.uuid || !adapters || !domains || !controlDomains || typeof start !== 'string' || !isStartMode(start)) return undefined;
    if (s!.name !== undefined && typeof s!.name !== 'string') return undefined;
    mdevs.push({ uuid, name: (s!.name as string | undefined) || undefined, adapters, domains, controlDomains, start });
  }
  return { masks, mdevs };
}
