// The configuration lock shared with s390-tools (chzdev, ap-check) and so with
// mdevctl: run/lock/s390apconfig.lock holds the owner's PID in decimal. It is
// made with link() so that taking it is atomic, and is stale when that PID is
// gone (or, empty, older than two minutes).

import { linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { RuntimeError } from '../errors.js';

const RETRY_MS = 30;
const EMPTY_STALE_MS = 120_000;

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
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(path: string): number | undefined | 'gone' {
  try {
    const text = readFileSync(path, 'utf8').trim();
    return text === '' ? undefined : parseInt(text, 10);
  } catch {
    return 'gone';
  }
}

function isStale(path: string, owner: number | undefined): boolean {
  if (owner === undefined) {
    try {
      return Date.now() - statSync(path).mtimeMs > EMPTY_STALE_MS;
    } catch {
      return true;
    }
  }
  return Number.isNaN(owner) || !pidAlive(owner);
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Tries once; true when the lock is now ours. */
export function tryLock(path: string, owner = process.pid): boolean | 'held-by-owner' {
  const tmp = `${path}${String(process.pid).padStart(5, '0')}${Math.floor(Math.random() * 256).toString(16).padStart(2, '0')}`;
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(tmp, `${owner}\n`);
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
  if (current === owner) return 'held-by-owner';
  if (isStale(path, current)) {
    // Remove only if it still names the same dead owner.
    if (readOwner(path) === current) {
      try {
        unlinkSync(path);
      } catch {
        // someone else cleaned it
      }
    }
  }
  return false;
}

export function acquireLock(path: string, options: LockOptions = {}): HeldLock {
  const owner = options.owner ?? process.pid;
  const deadline = Date.now() + (options.timeoutMs ?? 90_000);
  for (;;) {
    const got = tryLock(path, owner);
    if (got === 'held-by-owner') return { acquired: false, release: () => {} };
    if (got) return { acquired: true, release: () => releaseLock(path, owner) };
    if (Date.now() >= deadline) {
      const holder = readOwner(path);
      throw new RuntimeError(`the AP configuration lock is held by PID ${holder === 'gone' ? '?' : holder}`, {
        where: path,
        hint: 'another ap-persist, chzdev or mdevctl is changing the AP configuration; retry when it is done',
      });
    }
    sleep(RETRY_MS);
  }
}

/** Removes the lock when `owner` holds it. */
export function releaseLock(path: string, owner = process.pid): void {
  if (readOwner(path) === owner) {
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
