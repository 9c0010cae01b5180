// generated.json: what `generate` wrote last time, so that it can tell its
// own stale files (update or remove them) from files someone else wrote or
// changed since (refuse to touch them). Pure: parse and render only.

import { createHash } from 'node:crypto';
import { InputError } from '../errors.js';
import type { Observed } from '../fsio/observe.js';
import { isPlainPath, type HostEntry, type RootPath } from './host-files.js';
import { asSnapshot, type StoreSnapshot } from '../store/snapshot.js';

/**
 * `adopted`: the path held a file before ap-persist took it over (generate
 * found it already right, or import took it in): chzdev's or mdevctl's, so
 * uninstall leaves it to them.
 *
 * `content`: the text itself, beside its hash. The boot hook and the callout
 * ask of every file whether it still holds what generate wrote: a string
 * comparison, where hashing meant loading node:crypto (8-10 ms, the largest
 * part of the hook's own time). Records without it (older versions) are
 * compared by hash; the hash stays for the versions that read only it.
 */
export type ManifestEntry = ({ path: RootPath; sha256: string; content?: string } | { path: RootPath; symlink: string }) & { adopted?: true };

const VERSION = 1;

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The record of a file with this text. */
export function fileEntry(path: RootPath, content: string): ManifestEntry {
  return { path, sha256: sha256(content), content };
}

export function manifestEntry(entry: HostEntry): ManifestEntry {
  return entry.kind === 'file' ? fileEntry(entry.path, entry.content) : { path: entry.path, symlink: entry.target };
}

/** Whether `observed` is what the record says generate (or import) put there. */
export function holdsRecorded(observed: Observed, recorded: ManifestEntry): boolean {
  if ('symlink' in recorded) return observed.kind === 'symlink' && observed.target === recorded.symlink;
  if (observed.kind !== 'file') return false;
  return recorded.content !== undefined ? observed.content === recorded.content : sha256(observed.content) === recorded.sha256;
}

/** Entries by path; a path may be named more than once (the pending list of two first runs killed in turn). */
export function entriesByPath(entries: readonly ManifestEntry[]): Map<RootPath, ManifestEntry[]> {
  const byPath = new Map<RootPath, ManifestEntry[]>();
  for (const e of entries) byPath.set(e.path, [...(byPath.get(e.path) ?? []), e]);
  return byPath;
}

/** Whether `observed` at `path` is what one of the entries naming it says. */
export function holdsListed(listed: ReadonlyMap<RootPath, readonly ManifestEntry[]>, path: RootPath, observed: Observed): boolean {
  return listed.get(path)?.some((e) => holdsRecorded(observed, e)) ?? false;
}

/**
 * The record: the files, one key per line, and the store they were
 * generated from (store/snapshot.ts), when known, on one line of its own
 * (its ID sets are arrays of eight numbers: a line per number would be most
 * of the file).
 */
export function renderManifest(entries: readonly ManifestEntry[], store?: StoreSnapshot): string {
  const files = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const record = JSON.stringify({ generator: 'ap-persist', version: VERSION, files }, null, 2);
  return store ? `${record.slice(0, -2)},\n  "store": ${JSON.stringify(store)}\n}\n` : `${record}\n`;
}

/** What a file in the record's format is, and what to do when it is damaged. */
export interface RecordKind {
  what: string;
  hint: string;
}

export const GENERATED_RECORD: RecordKind = {
  what: 'the record of generated files',
  hint: 'delete it and run ap-persist generate again: files identical to what it writes are taken over, others are reported',
};

export const PENDING_RECORD: RecordKind = {
  what: 'the list of files a generate was putting in place',
  hint: "repair it, or delete it: the next generate then takes the files it names for chzdev's or mdevctl's, and uninstall leaves them",
};

export function parseManifest(text: string, where: string, kind: RecordKind = GENERATED_RECORD): ManifestEntry[] {
  return parseRecord(text, where, kind).files;
}

/** The record's files and its snapshot of the store (none in records of older versions, or when it is not well formed). */
export function parseRecord(text: string, where: string, kind: RecordKind = GENERATED_RECORD): { files: ManifestEntry[]; store?: StoreSnapshot } {
  const damaged = (why: string): InputError => new InputError(`${kind.what} is damaged: ${why}`, { where, hint: kind.hint });
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw damaged((err as Error).message);
  }
  if (typeof doc !== 'object' || doc === null) throw damaged('not a JSON object');
  const { version, files, store } = doc as { version?: unknown; files?: unknown; store?: unknown };
  if (version !== VERSION || !Array.isArray(files)) throw damaged(`not version ${VERSION} with a files list`);
  // A plain loop over the entries, one test per field: the boot reads this record at every hook and callout.
  const entries: ManifestEntry[] = new Array(files.length);
  for (let i = 0; i < files.length; i++) {
    const e = files[i] as Record<string, unknown> | null;
    const path = e?.['path'];
    if (typeof path !== 'string') throw damaged(`entry ${i} has no path`);
    // generate writes plain paths under the root; any other is not its record.
    if (!isPlainPath(path)) throw damaged(`entry ${i} (${path}) is not a plain path under the root`);
    const { sha256: hash, content, symlink } = e!;
    let entry: ManifestEntry;
    if (typeof hash === 'string') {
      if (content !== undefined && typeof content !== 'string') throw damaged(`entry ${i} (${path}) has a content that is not text`);
      entry = content === undefined ? { path, sha256: hash } : { path, sha256: hash, content };
    } else if (typeof symlink === 'string') entry = { path, symlink };
    else throw damaged(`entry ${i} (${path}) has neither sha256 nor symlink`);
    if (e!['adopted'] === true) entry.adopted = true;
    entries[i] = entry;
  }
  const snapshot = asSnapshot(store);
  return snapshot ? { files: entries, store: snapshot } : { files: entries };
}
