// The bundles' code cache: V8's bytecode for a bundle (hook.cjs, callout.cjs,
// program.cjs), kept beside it, so that the boot hook and every mdevctl
// callout do not compile their code again on each start (measured: the hook
// with 64 mdevs 2.0 -> 1.7 x `node -e 0`). A cache holds the functions the
// run that wrote it compiled, so each command keeps a cache of its own
// (setCacheFlavour): a callout's pre-define after a cache its pre-start
// wrote compiled the whole define path again on every run.
//
// The cache is code that runs as root, so it is used only when it is as safe
// as the bundle itself: a regular file in the bundle's directory, owned by
// the bundle's owner (or root), written by no one else, in a directory no one
// else can write. V8 checks its own version and flags but of the source only
// its length, so each cache names the bundle it was made from (inode, size,
// change time; a package upgrade or any edit changes them) and is remade when
// that differs. The process that compiled the code writes the cache as it
// exits, when it owns the directory; where it cannot (a read-only /usr, a
// sandbox), the tool runs as it would without one.

import { closeSync, constants, fstatSync, fsyncSync, lstatSync, openSync, readFileSync, readSync, renameSync, statSync, unlinkSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Script } from 'node:vm';
import { writeAll } from '../fsio/write-all.js';

const MAGIC = 'ap-persist code cache 2\n';

/** What became of the cache of the last bundle loaded (for the tests). */
export type CacheUse = 'used' | 'written' | 'untrusted' | 'none';

/** Writable by group or others. */
const othersWrite = (st: Stats): boolean => (st.mode & 0o022) !== 0;

/** A command's name in a cache file's: lower-case words and dashes, no more. */
const FLAVOUR = /^[a-z][a-z-]{0,39}$/;

let flavour: string | undefined;

/**
 * The command the parts loaded from now on run (`pre-define`, `mask-show`):
 * its own cache, holding what that command compiles. Anything but a plain
 * name is none (the bundle's one cache).
 */
export function setCacheFlavour(name: string | undefined): void {
  flavour = name !== undefined && FLAVOUR.test(name) ? name : undefined;
}

/** The cache file of `bundle` for this command and this node's flags: --jitless code is another cache. */
export function cachePath(bundle: string): string {
  return `${bundle}${flavour ? `.${flavour}` : ''}${process.execArgv.includes('--jitless') ? '.jitless' : ''}.v8-cache`;
}

/** The file's identity: any replacement or edit changes it. */
const identity = (st: Stats): string => `${st.dev}:${st.ino}:${st.size}:${st.ctimeMs}`;

/**
 * What the cache must have been made from: this node, these flags, this very
 * file. The header adds how long the bytes after it are (V8 does not check
 * them: a short cache would crash every run, not be refused).
 */
function cacheKey(st: Stats): string {
  return `${MAGIC}${process.version} ${JSON.stringify(process.execArgv)} ${identity(st)} `;
}

const header = (key: string, length: number): string => `${key}${length}\n`;

/**
 * The cached bytes, when the cache file is trusted, made from this bundle and
 * whole. Read into a plain Uint8Array and looked at with V8's own methods:
 * Buffer's (indexOf, equals, subarray) are node's JavaScript, compiled at
 * their first use in every run.
 */
function readCache(path: string, key: string, owner: number): { data?: Uint8Array; use: CacheUse } {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return { use: 'none' };
  }
  try {
    const file = fstatSync(fd);
    if (!file.isFile() || (file.uid !== owner && file.uid !== 0) || othersWrite(file)) return { use: 'untrusted' };
    // One read into an array of the size fstat gave: readFileSync(fd) asks again and reads in steps (0.1 ms more).
    const bytes = new Uint8Array(file.size);
    let got = 0;
    for (let n = 1; got < file.size && n > 0; got += n) n = readSync(fd, bytes, got, file.size - got, got);
    if (got !== file.size) return { use: 'none' };
    const end = bytes.indexOf(0x0a, MAGIC.length);
    if (end < 0) return { use: 'none' };
    const head = Buffer.from(header(key, bytes.length - end - 1));
    if (end + 1 !== head.length) return { use: 'none' };
    for (let i = 0; i <= end; i++) if (bytes[i] !== head[i]) return { use: 'none' };
    return { data: bytes.subarray(end + 1), use: 'used' };
  } finally {
    closeSync(fd);
  }
}

/** Beside the cache, on disk, then renamed over it: a reader (after a crash too) sees the old cache or the new, whole. */
function writeCache(path: string, key: string, data: Buffer): boolean {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  try {
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    try {
      const bytes = Buffer.concat([Buffer.from(header(key, data.length)), data]);
      writeAll(fd, bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    return true;
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      // never made
    }
    return false;
  }
}

export let lastUse: CacheUse = 'none';

/**
 * The function node's CommonJS loader runs a module's code in. The fast
 * paths' parts come in it (scripts/bundle.ts writes them so): wrapped here,
 * V8 would copy the whole text into the young heap once more at each start
 * (the hook's 110 kB, of the 1 MB whose filling costs a garbage collection).
 */
export const PART_HEAD = '(function (exports, require, module, __filename, __dirname) {';
export const PART_TAIL = '\n})';

const atProcessExit = (write: () => void): void => {
  process.once('exit', write);
};

/**
 * Loads the CommonJS bundle at `bundle` as `require` would, compiled from its
 * code cache when there is a trusted one, and leaves a cache for the next
 * run when there was none (`atExit` schedules that write; at process exit).
 * `require` is the loading bundle's own: the bundles sit side by side and
 * require only built-in modules and each other.
 */
export function loadPart(bundle: string, require: NodeRequire, atExit = atProcessExit): unknown {
  // The text and the identity of one and the same file (an upgrade may replace it meanwhile).
  const fd = openSync(bundle, constants.O_RDONLY);
  let source: string;
  let st: Stats;
  try {
    st = fstatSync(fd);
    source = readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
  const dir = dirname(bundle);
  // lstat, which every command calls anyway (node compiles each of its fs functions at its first call); a
  // link there is no directory others cannot change, and so no cache.
  const dirSt = lstatSync(dir);
  // A bundle others can change is not ours to vouch for; nor, then, is a cache beside it.
  const trusted = !othersWrite(dirSt) && !othersWrite(st) && (dirSt.uid === st.uid || dirSt.uid === 0);
  const path = cachePath(bundle);
  // Made before the cache is looked for, so that the run that writes the cache has compiled it too.
  const key = cacheKey(st);
  const cached = trusted ? readCache(path, key, st.uid) : { use: 'untrusted' as CacheUse };
  const wrapped = source.startsWith(PART_HEAD) ? source : `${PART_HEAD} ${source}${PART_TAIL}`;
  const script = new Script(wrapped, { filename: bundle, ...(cached.data ? { cachedData: cached.data } : {}) });
  lastUse = cached.data && !script.cachedDataRejected ? 'used' : cached.use === 'untrusted' ? 'untrusted' : 'none';
  if (lastUse === 'none' && trusted && process.geteuid?.() === dirSt.uid) {
    // At exit: the cache then holds the code of every function this run compiled, not only the top level.
    atExit(() => {
      // Only for the file this code came from: one replaced meanwhile would get the old code under its name.
      let now: Stats | undefined;
      try {
        now = statSync(bundle);
      } catch {
        return;
      }
      if (identity(now) === identity(st) && writeCache(path, key, script.createCachedData())) lastUse = 'written';
    });
  }
  const module = { exports: {} as unknown };
  const fn = script.runInThisContext() as (e: unknown, r: NodeRequire, m: { exports: unknown }, f: string, d: string) => void;
  fn.call(module.exports, module.exports, require, module, bundle, dir);
  return module.exports;
}
