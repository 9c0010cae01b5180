// The mdevctl callouts for vfio_ap: ours and s390-tools' ap-check.
//
// mdevctl takes the answer of the first callout that does not say "not my
// type" (exit 2). mdevctl 1.3 and newer sort the callouts by path, so
// ap-check comes before ap-persist; 1.2 takes them in directory order. With
// both present ours may never be asked. Ours refuses everything ap-check
// refuses (and what ap-check cannot see: active mdevs at define, drift), so
// install moves ap-check out of mdevctl's reach, keeping it whole under
// /var/lib/ap-persist/set-aside/ at its own path, and uninstall puts it back.

import { closeSync, copyFileSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readlinkSync, renameSync, rmdirSync, symlinkSync, unlinkSync } from 'node:fs';
import { confine } from '../fsio/confine.js';
import { dirname, join } from 'node:path';
import { CALLOUT_NAME } from '../generate/static-files.js';
import type { HostPaths } from './paths.js';

/** What s390-tools installs: the program (2.22 and newer in /usr/lib, older in /etc) and its /etc wrapper. */
export const AP_CHECK_NAMES: readonly string[] = ['ap-check', 'ap-check.sh'];

export interface CalloutsView {
  /** Our callout, where it is installed. */
  ours: string[];
  /** s390-tools' ap-check, where mdevctl would run it. */
  apCheck: string[];
  /** ap-check as install set it aside, for uninstall to put back. */
  setAside: string[];
}

function present(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export function readCallouts(paths: HostPaths): CalloutsView {
  const ours: string[] = [];
  const apCheck: string[] = [];
  const setAside: string[] = [];
  for (const dir of paths.calloutDirs) {
    const names = new Set(entries(dir));
    const aside = new Set(entries(setAsidePath(paths, dir)));
    if (names.has(CALLOUT_NAME)) ours.push(join(dir, CALLOUT_NAME));
    for (const name of AP_CHECK_NAMES) {
      if (names.has(name)) apCheck.push(join(dir, name));
      if (aside.has(name)) setAside.push(setAsidePath(paths, join(dir, name)));
    }
  }
  return { ours, apCheck, setAside };
}

/** Where `path` (under the root) is kept while set aside. */
export function setAsidePath(paths: HostPaths, path: string): string {
  return join(paths.setAsideDir, path.slice(paths.root.length));
}

export interface Moved {
  from: string;
  to: string;
}

/** A set-aside copy not put back: s390-tools installed a newer ap-check, or is gone with its directory. */
export interface Dropped {
  path: string;
  why: 'newer' | 'gone';
}

export interface MoveResult {
  moved: Moved[];
  failed: (Moved & { reason: string })[];
}

/**
 * rename(2) keeps the file whole (mode, owner, a symlink as a symlink);
 * across file systems a link is made anew and a file copied and synced
 * before the original goes.
 */
function move(from: string, to: string): void {
  mkdirSync(dirname(to), { recursive: true, mode: 0o755 });
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    const tmp = `${to}.ap-persist-tmp`;
    if (lstatSync(from).isSymbolicLink()) symlinkSync(readlinkSync(from), tmp);
    else {
      copyFileSync(from, tmp);
      const fd = openSync(tmp, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    renameSync(tmp, to);
    unlinkSync(from);
  }
}

function moveAll(paths: HostPaths, pairs: Moved[]): MoveResult {
  const result: MoveResult = { moved: [], failed: [] };
  for (const pair of pairs) {
    try {
      move(confine(paths.root, pair.from), confine(paths.root, pair.to));
      result.moved.push(pair);
    } catch (err) {
      result.failed.push({ ...pair, reason: (err as Error).message });
    }
  }
  return result;
}

/**
 * Moves every ap-check callout under the set-aside directory. One set aside
 * before (and brought back by an s390-tools update) is replaced by the newer.
 */
export function setApCheckAside(paths: HostPaths, callouts: CalloutsView = readCallouts(paths)): MoveResult {
  return moveAll(paths, callouts.apCheck.map((from) => ({ from, to: setAsidePath(paths, from) })));
}

/**
 * Puts back what setApCheckAside moved. Where s390-tools has installed
 * ap-check again meanwhile, that one stays and the old copy is dropped.
 */
export function restoreApCheck(paths: HostPaths): MoveResult & { dropped: Dropped[] } {
  const pairs: Moved[] = [];
  const dropped: Dropped[] = [];
  for (const dir of paths.calloutDirs) {
    for (const name of AP_CHECK_NAMES) {
      const to = join(dir, name);
      const from = setAsidePath(paths, to);
      if (!present(from)) continue;
      // s390-tools put a newer one there; or removed its callout directory with itself: nothing to go back to.
      const why = present(to) ? 'newer' : !present(dir) ? 'gone' : undefined;
      if (why) {
        unlinkSync(confine(paths.root, from));
        dropped.push({ path: from, why });
      } else pairs.push({ from, to });
    }
  }
  const result = moveAll(paths, pairs);
  pruneEmpty(paths.setAsideDir);
  return { ...result, dropped };
}

/** Removes `dir` and the directories below it that hold nothing: the set-aside tree is ours alone. */
function pruneEmpty(dir: string): void {
  for (const name of entries(dir)) {
    const path = join(dir, name);
    if (lstatSync(path).isDirectory()) pruneEmpty(path);
  }
  if (present(dir) && entries(dir).length === 0) rmdirSync(dir);
}
