// The configuration lock shared with s390-tools (chzdev, ap-check) and so with
// mdevctl: run/lock/s390apconfig.lock holds the owner's PID in decimal. It is
// made with link() so that taking it is atomic, and is stale when that PID is
// gone (or, holding no PID, older than two minutes). /run/lock is
// world-writable: see readOwner and writeTemp for what a user may plant there.

import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, linkSync, lstatSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { removeLeftovers } from '../fsio/atomic.js';
import { openMakingDir } from '../fsio/mark.js';
import { RuntimeError } from '../errors.js';

const RETRY_MS = 30;
const EMPTY_STALE_MS = 120_000;

/**
 * Random hex for a temporary name, from the kernel's generator: node:crypto
 * would do the same, but loading it costs 4 ms, and 10 ms without the JIT (the
 * callout), for 8 bytes. Where /dev/urandom cannot be read, node:crypto.
 */
function randomHex(bytes: number): string {
  const buf = Buffer.alloc(bytes);
  try {
    const fd = openSync('/dev/urandom', constants.O_RDONLY);
    try {
      if (readSync(fd, buf, 0, bytes, null) === bytes) return buf.toString('hex');
    } finally {
      closeSync(fd);
    }
  } catch {
    // no /dev/urandom here (a bare chroot): below
  }
  return randomBytes(bytes).toString('hex');
}

export interface LockOptions {
  /** The PID written to the lock; the callout locks for its parent mdevctl. */
  owner?: number;
  /** Give up after this long. */
  timeoutMs?: number;
}

export interface HeldLock {
  /** False when the owner already held it (a callout of the same mdevctl run). */
  acquired: boolean;
  release(): void;
}

function pidAlive(pid: number): boolean {
  // No process has a larger PID; kill() would take it for another number.
  if (pid > PID_MAX) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What the lock file says: a live owner, a file to break, or nothing there; `id` tells one file from its successor. */
type Owner = ({ pid: number } | { invalid: string; breakNow: boolean; directory?: boolean }) & { id: string } | 'gone';

const PID = /^[1-9][0-9]{0,9}\n?$/;
const PID_MAX = 4_194_304; // PID_MAX_LIMIT on 64-bit kernels

/**
 * Reads the lock without following a link or blocking on a FIFO. Only a file
 * owned by root (or by us, when not root) can be a lock: /run/lock is
 * world-writable, and a file any user left there (garbage, "0", "-1", a
 * user's own PID, a FIFO) is no owner and is broken at once. A lock file of
 * ours that holds no valid PID is stale after two minutes, as in libap.
 */
function readOwner(path: string): Owner {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    // ELOOP (a symlink), ENXIO (a socket), EACCES...: judged by what it is, without opening it.
    return unopenable(path);
  }
  try {
    const st = fstatSync(fd);
    const id = `${st.dev}:${st.ino}`;
    if (st.isDirectory()) return { invalid: 'a directory', breakNow: true, directory: true, id };
    if (!st.isFile()) return { invalid: 'not a regular file', breakNow: true, id };
    if (!trusted(st.uid)) return { invalid: `owned by uid ${st.uid}`, breakNow: true, id };
    const buf = Buffer.alloc(40);
    const text = buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString('latin1');
    if (PID.test(text)) return { pid: Number.parseInt(text, 10), id };
    return { invalid: text === '' ? 'empty' : 'not a PID', breakNow: Date.now() - st.mtimeMs > EMPTY_STALE_MS, id };
  } catch {
    return 'gone';
  } finally {
    closeSync(fd);
  }
}

const trusted = (uid: number): boolean => uid === 0 || uid === process.geteuid?.();

function unopenable(path: string): Owner {
  try {
    const st = lstatSync(path);
    const id = `${st.dev}:${st.ino}`;
    if (st.isSymbolicLink()) return { invalid: 'a symbolic link', breakNow: true, id };
    if (st.isSocket()) return { invalid: 'a socket', breakNow: true, id };
    if (!st.isFile() || !trusted(st.uid)) return { invalid: 'not a regular file of root', breakNow: true, id };
    return { invalid: 'unreadable', breakNow: Date.now() - st.mtimeMs > EMPTY_STALE_MS, id };
  } catch {
    return 'gone';
  }
}

/**
 * Removes a stale lock; a directory (which unlink cannot remove, and whose
 * contents are a user's) is renamed aside in /run/lock instead.
 */
function breakLock(path: string, owner: Exclude<Owner, 'gone'>): boolean {
  // One breaker at a time. Between looking at the lock and removing it, another breaker may have
  // removed it and a third process taken it anew: that lock, removed in its turn, left two holders
  // (the race suite lost a define to it when a dozen commands queued behind a dead owner).
  const breaker = join(dirname(path), `.${basename(path)}.break`);
  let fd: number;
  try {
    fd = openSync(breaker, CREATE_NEW, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') clearStaleBreaker(breaker);
    // Another is breaking it: try the lock again.
    return false;
  }
  closeSync(fd);
  try {
    // Still the very lock judged stale: not one another breaker removed and a new owner made since.
    if (!sameOwner(readOwner(path), owner)) return false;
    removeAside(path, 'directory' in owner && owner.directory === true);
    return true;
  } catch {
    // someone else cleaned it
    return false;
  } finally {
    try {
      unlinkSync(breaker);
    } catch {
      // already gone
    }
  }
}

/** A breaker's mark holds a few milliseconds: one older (its breaker was killed), or a user's, is removed. */
const BREAKER_STALE_MS = 5_000;

function clearStaleBreaker(breaker: string): void {
  try {
    const st = lstatSync(breaker);
    if (st.isFile() && trusted(st.uid) && Date.now() - st.mtimeMs < BREAKER_STALE_MS) return;
    removeAside(breaker, st.isDirectory());
  } catch {
    // gone meanwhile
  }
}

/** Removes the file at `path`; a directory (libap's lock, or one planted there) is renamed aside, not emptied. */
function removeAside(path: string, directory: boolean): void {
  if (directory) renameSync(path, `${path}.broken-${randomHex(8)}`);
  else unlinkSync(path);
}

function isStale(owner: Exclude<Owner, 'gone'>): boolean {
  return 'pid' in owner ? !pidAlive(owner.pid) : owner.breakNow;
}

/** The same file, saying the same: not one another process broke and made anew meanwhile. */
const sameOwner = (a: Owner, b: Owner): boolean => (a === 'gone' || b === 'gone' ? a === b : a.id === b.id && ('pid' in a ? 'pid' in b && a.pid === b.pid : !('pid' in b)));

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** A new file of ours in /run/lock: never one someone planted there, link or file. */
const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * The temporary file libap links to the lock, made with O_EXCL (a name
 * someone planted, link or file, is never opened) and a random suffix.
 */
function writeTemp(path: string, owner: number): string {
  removeLeftovers(dirname(path), basename(path));
  for (let attempt = 0; ; attempt++) {
    // Named as our atomic writes name theirs, so that one a killed run left is removed here too.
    const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomHex(8)}`);
    try {
      const fd = openMakingDir(tmp, CREATE_NEW);
      try {
        writeSync(fd, `${owner}\n`);
      } catch (err) {
        // A full /run: leave nothing of ours in /run/lock.
        closeSync(fd);
        unlinkSync(tmp);
        throw err;
      }
      closeSync(fd);
      return tmp;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 8) throw err;
    }
  }
}

/** Tries once; true when the lock is now ours, 'broken' when a stale one was just removed (try again at once). */
export function tryLock(path: string, owner = process.pid): boolean | 'held-by-owner' | 'broken' {
  let tmp: string;
  try {
    tmp = writeTemp(path, owner);
  } catch (err) {
    throw new RuntimeError(`cannot take the AP configuration lock: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, {
      where: path,
      hint: 'run as root; the lock directory must be writable',
    });
  }
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
  }
  const current = readOwner(path);
  if (current === 'gone') return false;
  if ('pid' in current && current.pid === owner) return 'held-by-owner';
  // Removed only if it still says the same (breakLock looks again): another process may have broken it and taken it meanwhile.
  if (isStale(current)) return breakLock(path, current) ? 'broken' : false;
  return false;
}

export function acquireLock(path: string, options: LockOptions = {}): HeldLock {
  const owner = options.owner ?? process.pid;
  const deadline = Date.now() + (options.timeoutMs ?? 90_000);
  for (let broken = 0; ; ) {
    const got = tryLock(path, owner);
    if (got === 'held-by-owner') return { acquired: false, release: () => {} };
    if (got === true) return { acquired: true, release: () => releaseLock(path, owner) };
    // As libap: after breaking a stale lock, try again now, not after a sleep that
    // lets a user who plants the file in a loop win every time (bounded all the same).
    if (got === 'broken' && ++broken % 100 !== 0) continue;
    if (Date.now() >= deadline) {
      const holder = readOwner(path);
      throw new RuntimeError(`the AP configuration lock is held by ${holder !== 'gone' && 'pid' in holder ? `PID ${holder.pid}` : holder === 'gone' ? 'a process that just left' : `a lock file that is ${holder.invalid}`}`, {
        where: path,
        hint: 'another ap-persist, chzdev or mdevctl is changing the AP configuration; retry when it is done',
      });
    }
    sleep(RETRY_MS);
  }
}

/** Removes the lock when `owner` holds it. */
export function releaseLock(path: string, owner = process.pid): void {
  const current = readOwner(path);
  if (current !== 'gone' && 'pid' in current && current.pid === owner) {
    try {
      unlinkSync(path);
    } catch {
      // already released
    }
  }
}

export function withLock<T>(path: string, fn: () => T, options: LockOptions = {}): T {
  const lock = acquireLock(path, options);
  try {
    return fn();
  } finally {
    lock.release();
  }
}
