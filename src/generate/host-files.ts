// What `generate` wants on disk for a store: the chzdev-format mask rules, the
// mdevctl definitions, and each auto mdev's link into ap-persist-mdevs.target,
// as `systemctl enable` would make it. Pure: the caller compares this with the
// disk (reconcile.ts) and does the I/O. Enabling ap-persist-wait.service is
// not generate's: install applies the package's preset (enable.ts).

import { renderMdevctlJson } from '../store/mdevctl-defs.js';
import { isAbsolute, relative } from 'node:path';
import type { HostPaths } from '../host/paths.js';
import type { Store } from '../store/store.js';
import { renderChzdevRules, type RenderChzdevRules } from './chzdev-rules.js';
import { MDEV_TEMPLATE, mdevUnit } from './unit-names.js';

/** A path relative to the root, as `etc/udev/rules.d/41-ap.rules`. */
export type RootPath = string;

export type FileEntry = { kind: 'file'; path: RootPath; content: string; mode: number };
export type HostEntry = FileEntry | { kind: 'symlink'; path: RootPath; target: string };

export interface HostFilesInput {
  store: Store;
  /** The store's path as the admin knows it, for the header of generated files. */
  storeLabel: string;
  paths: HostPaths;
  renderChzdevRules: RenderChzdevRules;
}

/** An empty, `.` or `..` segment (a leading, trailing or double slash makes an empty one). */
const NOT_PLAIN = /(?:^|\/)(?:\.\.?)?(?:\/|$)/;

/** Whether `path` is a plain path below a root: segments, none empty, `.` or `..`. */
export function isPlainPath(path: string): boolean {
  return !NOT_PLAIN.test(path);
}

export function rootPath(paths: HostPaths, absolute: string): RootPath {
  // A plain path below the root is cut as text: path.relative's first call costs the hook 0.1 ms.
  const prefix = paths.root === '/' ? '/' : `${paths.root}/`;
  if (absolute.startsWith(prefix)) {
    const tail = absolute.slice(prefix.length);
    if (isPlainPath(tail)) return tail;
  }
  return relative(paths.root, absolute);
}

/** The store as seen on the target system: `/etc/ap-persist/ap-persist.conf` under any root. */
export function storeLabel(paths: HostPaths): string {
  const rel = rootPath(paths, paths.store);
  return rel.startsWith('..') || isAbsolute(rel) ? paths.store : `/${rel}`;
}

/** The generated files for a store, sorted by path. */
export function desiredHostFiles(input: HostFilesInput): HostEntry[] {
  const { store, paths } = input;
  const entries: HostEntry[] = [];
  const rules = renderChzdevRules(input.renderChzdevRules, store.masks, input.storeLabel);
  if (rules !== undefined) entries.push({ kind: 'file', path: rootPath(paths, paths.chzdevRules), content: rules, mode: 0o644 });

  const wants = rootPath(paths, paths.mdevsWantsDir);
  // As `systemctl enable` links them: to the installed unit, as the target system sees it.
  const installed = (unit: string): string => `/${rootPath(paths, paths.staticUnitsDir)}/${unit}`;
  const autos = store.mdevs.filter((m) => m.start === 'auto');
  // These instance links are made here, not by `systemctl enable
  // ap-persist-mdev@UUID.service` (which makes the very same links, as
  // test/real/systemd-units.test.ts checks): they follow the store, so they
  // belong to generate's reconciliation, written and removed with the other
  // generated files under the AP lock, recorded with them so that uninstall
  // and the next generate remove only what is theirs, and shown by --dry-run
  // and --diff; and generate runs on every store edit and on any --root
  // (tests, images) without depending on systemctl or spawning it per mdev.
  for (const m of autos) {
    // Wanted, not required: with Requires= stopping or restarting one mdev would stop the target and so, through PartOf=, every other.
    entries.push({ kind: 'symlink', path: `${wants}/${mdevUnit(m.uuid)}`, target: installed(MDEV_TEMPLATE) });
  }
  // Every mdev also as an mdevctl definition with its real start mode, so mdevctl,
  // libvirt, chzdev and ap-check see our auto mdevs and refuse what conflicts with
  // them. mdevctl's own autostart and our units do not fight: whichever comes
  // second finds the mdev up with its matrix, which is success, and both go
  // through the callout and the AP lock.
  const mdevctlDir = rootPath(paths, paths.mdevctlMatrixDir);
  for (const m of store.mdevs) {
    entries.push({ kind: 'file', path: `${mdevctlDir}/${m.uuid}`, content: renderMdevctlJson(m, m.start), mode: 0o644 });
  }
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The unit files the links point to, under the root, to warn when `install` has not run. */
export function linkedUnits(entries: readonly HostEntry[]): RootPath[] {
  const targets = entries.flatMap((e) => (e.kind === 'symlink' ? [e.target.replace(/^\//, '')] : []));
  return [...new Set(targets)];
}

/** Directories generate alone fills, removed when it empties them. */
export function ownedDirs(paths: HostPaths): RootPath[] {
  return [rootPath(paths, paths.mdevsWantsDir)];
}
