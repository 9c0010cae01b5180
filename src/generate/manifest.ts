// generated.json: what `generate` wrote last time, so that it can tell its
// own stale files (update or remove them) from files someone else wrote or
// changed since (refuse to touch them). Pure: parse and render only.

import { createHash } from 'node:crypto';
import { InputError } from '../errors.js';
import type { Observed } from '../fsio/observe.js';
import type { HostEntry, RootPath } from './host-files.js';

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

export function renderManifest(entries: readonly ManifestEntry[]): string {
  const files = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return `${JSON.stringify({ generator: 'ap-persist', version: VERSION, files }, null, 2)}\n`;
}

export function parseManifest(text: string, where: string): ManifestEntry[] {
  const damaged = (why: string): InputError =>
    new InputError(`the record of generated files is damaged: ${why}`, {
      where,
      hint: 'delete it and run ap-persist generate again: files identical to what it writes are taken over, others are reported',
    });
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw damaged((err as Error).message);
  }
  if (typeof doc !== 'object' || doc === null) throw damaged('not a JSON object');
  const { version, files } = doc as { version?: unknown; files?: unknown };
  if (version !== VERSION || !Array.isArray(files)) throw damaged(`not version ${VERSION} with a files list`);
  return files.map((f: unknown, i) => {
    const e = f as Record<string, unknown>;
    if (typeof e?.['path'] !== 'string') throw damaged(`entry ${i} has no path`);
    // generate writes plain paths under the root; any other is not its record.
    if (!e['path'].split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..')) throw damaged(`entry ${i} (${e['path']}) is not a plain path under the root`);
    const adopted = e['adopted'] === true ? { adopted: true as const } : {};
    if (typeof e['sha256'] === 'string') {
      if (e['content'] !== undefined && typeof e['content'] !== 'string') throw damaged(`entry ${i} (${e['path']}) has a content that is not text`);
      return { path: e['path'], sha256: e['sha256'], ...(typeof e['content'] === 'string' ? { content: e['content'] } : {}), ...adopted };
    }
    if (typeof e['symlink'] === 'string') return { path: e['path'], symlink: e['symlink'], ...adopted };
    throw damaged(`entry ${i} (${e['path']}) has neither sha256 nor symlink`);
  });
}
