// Whether a file root runs or writes through can be changed by someone else:
// it, or a directory above it, owned by another user or writable by group or
// others.

import { lstatSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * Owned by root (or by us) and writable by its owner alone; a sticky
 * directory such as /tmp counts too, as no one else may rename or remove
 * what root owns in it.
 */
function rootsOnly(path: string): boolean {
  const st = statSync(path);
  const mine = st.uid === 0 || st.uid === process.geteuid?.();
  return mine && ((st.mode & 0o022) === 0 || (st.isDirectory() && (st.mode & 0o1000) !== 0));
}

/**
 * The first of `path` and its directories, up to `top` (the root the tool
 * works under) when `path` is below it, else up to /, that another user could
 * change; undefined when none.
 */
export function untrustedOnTheWay(path: string, top = '/'): string | undefined {
  const stop = path === top || path.startsWith(top.endsWith('/') ? top : `${top}/`) ? top : '/';
  for (let p = path; ; p = dirname(p)) {
    if (!rootsOnly(p)) return p;
    if (p === stop || dirname(p) === p) return undefined;
  }
}

/**
 * Follows `path` link by link. Each hop (the link itself, read with lstat)
 * must be root's, and the directories it sits in, lexically and resolved,
 * root's alone: otherwise someone could re-point a hop between our check
 * and our use. The end is checked like a directory on the way.
 * `{ real }` where it leads, or `{ unsafe }`: the first path another user
 * could change.
 */
export function followTrusted(path: string, top = '/'): { real: string } | { unsafe: string } {
  let p = resolve(path);
  for (let hops = 0; hops < 40; hops++) {
    const dir = dirname(p);
    const unsafeDir = untrustedOnTheWay(dir, top) ?? untrustedOnTheWay(realpathSync(dir), top);
    if (unsafeDir) return { unsafe: unsafeDir };
    const st = lstatSync(p);
    if (!st.isSymbolicLink()) return rootsOnly(p) ? { real: p } : { unsafe: p };
    if (!(st.uid === 0 || st.uid === process.geteuid?.())) return { unsafe: p };
    // A relative target is taken from the directory the link really sits in, as the kernel
    // takes it: `dir` may itself lead through a link (its `..` is then another directory).
    p = resolve(realpathSync(dir), readlinkSync(p));
  }
  return { unsafe: path };
}
