// The bundles' code cache: V8's bytecode for a bundle (hook.cjs, callout.cjs,
// program.cjs), kept beside it, so that the boot hook and every mdevctl
// callout do not compile their code again on each start (measured: the hook
// with 64 mdevs 2.0 -> 1.7 x `node -e 0`).
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

import { closeSync, constants, fstatSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Script } from 'node:vm';

const MAGIC = 'ap-persist code cache 1\n';

/** What became of the cache of the last bundle loaded (for the tests). */
export type CacheUse = 'used' | 'written' | 'untrusted' | 'none';

/** Writable by group or others. */
const othersWrite = (st: Stats): boolean => (st.mode & 0o022) !== 0;

/** The cache file of `bundle` for this node's flags: --jitless code is another cache. */
export function cachePath(bundle: string): string {
  return `${bundle}${process.execArgv.includes('--jitless') ? '.jitless' : ''}.v8-cache`;
}

/** What the cache must have been made from: this node, these flags, this very file. */
function cacheKey(st: Stats): string {
  return `${process.version} ${JSON.stringify(process.execArgv)} ${st.dev}:${st.ino}:${st.size}:${st.ctimeMs}\n`;
}

/** The cached bytes, when the cache file is trusted and made from this bundle. */
function readCache(path: string, owner: number, key: string): { data?: Buffer; use: CacheUse } {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return { use: 'none' };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || (st.uid !== owner && st.uid !== 0) || othersWrite(st)) return { use: 'untrusted' };
    const bytes = readFileSync(fd);
    const head = Buffer.from(MAGIC + key);
    if (bytes.length <= head.length || !bytes.subarray(0, head.length).equals(head)) return { use: 'none' };
    return { data: bytes.subarray(head.length), use: 'used' };
  } finally {
    closeSync(fd);
  }
}

/** Beside the cache, then renamed over it: a reader sees the old cache or the new, whole. */
function writeCache(path: string, key: string, data: Buffer): boolean {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  try {
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    try {
      const bytes = Buffer.concat([Buffer.from(MAGIC + key), data]);
      for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done);
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
  const source = readFileSync(bundle, 'utf8');
  const dir = dirname(bundle);
  const st = statSync(bundle);
  const dirSt = statSync(dir);
  // A bundle others can change is not ours to vouch for; nor, then, is a cache beside it.
  const trusted = !othersWrite(dirSt) && !othersWrite(st) && (dirSt.uid === st.uid || dirSt.uid === 0);
  const path = cachePath(bundle);
  const key = cacheKey(st);
  const cached = trusted ? readCache(path, st.uid, key) : { use: 'untrusted' as CacheUse };
  const wrapped = `(function (exports, require, module, __filename, __dirname) { ${source}\n})`;
  const script = new Script(wrapped, { filename: bundle, ...(cached.data ? { cachedData: cached.data } : {}) });
  lastUse = cached.data && !script.cachedDataRejected ? 'used' : cached.use === 'untrusted' ? 'untrusted' : 'none';
  if (lastUse === 'none' && trusted && process.geteuid?.() === dirSt.uid) {
    // At exit: the cache then holds the code of every function this run compiled, not only the top level.
    atExit(() => {
      if (writeCache(path, key, script.createCachedData())) lastUse = 'written';
    });
  }
  const module = { exports: {} as unknown };
  const fn = script.runInThisContext() as (e: unknown, r: NodeRequire, m: { exports: unknown }, f: string, d: string) => void;
  fn.call(module.exports, module.exports, require, module, bundle, dir);
  return module.exports;
}
