// The AP configuration lock lives in /run/lock, which every user may write
// (1777). Each story is an attack by an unprivileged user (uid 65534) or a
// fault, against the tool running as root: it must never write through a
// planted name, and a file a user left there must never hold the lock.

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lchownSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquireLock, releaseLock, withLock } from '../../src/host/lock.js';
import { tempDir } from '../support/host.js';
import { itWith } from '../support/real-tools.js';

const NOBODY = 65534;
const asRoot = { missing: process.geteuid?.() === 0 ? undefined : 'the attacks need root to plant files owned by another user' };

/** A /run/lock of the test's own: sticky and world-writable, as on the host. */
function runLock(): { dir: string; lock: string } {
  const dir = join(tempDir('ap-persist-lock-'), 'run/lock');
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o1777);
  return { dir, lock: join(dir, 's390apconfig.lock') };
}

/** A file the user plants, owned by the user. */
function plant(path: string, text: string, mtime?: Date): void {
  writeFileSync(path, text);
  chownSync(path, NOBODY, NOBODY);
  if (mtime) utimesSync(path, mtime, mtime);
}

const quick = { timeoutMs: 300 };
const longAgo = new Date(Date.now() - 10 * 60_000);

describe('the AP configuration lock against what a user plants in /run/lock', () => {
  itWith(asRoot, "symlinks at every name libap's temporary file could have for our PID: root writes through none of them", () => {
    const { dir, lock } = runLock();
    const victim = join(tempDir('ap-persist-victim-'), 'shadow');
    writeFileSync(victim, 'root:secret\n');
    // The old name: lock + PID (5 digits) + two hex digits; all 256 of them.
    for (let i = 0; i < 256; i++) {
      const name = `${lock}${String(process.pid).padStart(5, '0')}${i.toString(16).padStart(2, '0')}`;
      symlinkSync(victim, name);
      lchownSync(name, NOBODY, NOBODY);
    }
    withLock(lock, () => expect(readFileSync(lock, 'utf8')).toBe(`${process.pid}\n`));
    expect(readFileSync(victim, 'utf8')).toBe('root:secret\n');
    expect(existsSync(lock)).toBe(false);
    // Nothing of ours is left among the planted names.
    expect(readdirSync(dir).filter((n) => !lstatSync(join(dir, n)).isSymbolicLink())).toEqual([]);
  });

  itWith(asRoot, 'a symlink as the lock itself is no lock: broken, and the victim is untouched', () => {
    const { lock } = runLock();
    const victim = join(tempDir('ap-persist-victim-'), 'passwd');
    writeFileSync(victim, `${process.ppid}\n`);
    symlinkSync(victim, lock);
    const held = acquireLock(lock, quick);
    expect(held.acquired).toBe(true);
    held.release();
    expect(readFileSync(victim, 'utf8')).toBe(`${process.ppid}\n`);
  });

  for (const [what, text] of [
    ['garbage', 'garbage\n'],
    ['0', '0\n'],
    ['-1', '-1\n'],
    ['an empty file', ''],
    ["the user's own live PID", `${process.pid}\n`],
  ] as const) {
    itWith(asRoot, `a user's lock file holding ${what} is broken at once`, () => {
      const { lock } = runLock();
      // process.pid is alive, yet in a user's file it names no lock holder; we lock as another PID.
      plant(lock, text);
      const t0 = Date.now();
      const held = acquireLock(lock, { owner: process.pid + 1, timeoutMs: 2_000 });
      expect(held.acquired).toBe(true);
      expect(Date.now() - t0).toBeLessThan(1_000);
      expect(readFileSync(lock, 'utf8')).toBe(`${process.pid + 1}\n`);
      held.release();
      expect(existsSync(lock)).toBe(false);
    });
  }

  itWith(asRoot, 'a socket as the lock (open() fails with ENXIO) is broken at once', () => {
    const { lock } = runLock();
    expect(spawnSync('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(lock)})`]).status).toBe(0);
    lchownSync(lock, NOBODY, NOBODY);
    const held = acquireLock(lock, { timeoutMs: 2_000 });
    expect(held.acquired).toBe(true);
    held.release();
  });

  itWith(asRoot, 'a directory as the lock (unlink cannot remove it) is renamed aside, its contents untouched', () => {
    const { dir, lock } = runLock();
    mkdirSync(lock);
    writeFileSync(join(lock, 'keep'), 'a user\'s file');
    chownSync(lock, NOBODY, NOBODY);
    const held = acquireLock(lock, { timeoutMs: 2_000 });
    expect(held.acquired).toBe(true);
    held.release();
    const aside = readdirSync(dir).filter((n) => n.startsWith('s390apconfig.lock.broken-'));
    expect(aside).toHaveLength(1);
    expect(readFileSync(join(dir, aside[0]!, 'keep'), 'utf8')).toBe("a user's file");
  });

  itWith(asRoot, 'a FIFO as the lock never blocks the reader: broken at once', async () => {
    const { lock } = runLock();
    await new Promise<void>((resolve, reject) => spawn('mkfifo', [lock]).on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`mkfifo ${c}`)))));
    chownSync(lock, NOBODY, NOBODY);
    const held = acquireLock(lock, { timeoutMs: 2_000 });
    expect(held.acquired).toBe(true);
    held.release();
  });
});

describe('a breaker mark a user plants', () => {
  itWith(asRoot, 'is removed at once, and the stale lock broken', () => {
    const { dir, lock } = runLock();
    writeFileSync(lock, '4194304\n');
    plant(join(dir, '.s390apconfig.lock.break'), '');
    const held = acquireLock(lock, quick);
    expect(held.acquired).toBe(true);
    held.release();
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe("the lock root's own tools hold", () => {
  it('a live PID holds it until the timeout, with the holder named', () => {
    const { lock } = runLock();
    writeFileSync(lock, `${process.ppid}\n`);
    expect(() => acquireLock(lock, quick)).toThrow(`the AP configuration lock is held by PID ${process.ppid}`);
    expect(readFileSync(lock, 'utf8')).toBe(`${process.ppid}\n`);
  });

  it('a dead PID is stale and broken', () => {
    const { lock } = runLock();
    writeFileSync(lock, '4194304\n');
    const held = acquireLock(lock, quick);
    expect(held.acquired).toBe(true);
    held.release();
  });

  it("a root-owned lock holding no PID waits two minutes (libap may be between create and write), then is stale", () => {
    const { lock } = runLock();
    writeFileSync(lock, '-1\n');
    expect(() => acquireLock(lock, quick)).toThrow('the AP configuration lock is held by a lock file that is not a PID');
    utimesSync(lock, longAgo, longAgo);
    const held = acquireLock(lock, quick);
    expect(held.acquired).toBe(true);
    held.release();
  });

  it('one breaker at a time: while another removes a stale lock (its mark fresh), the lock is tried again, not broken twice', () => {
    const { dir, lock } = runLock();
    writeFileSync(lock, '4194304\n');
    const mark = join(dir, '.s390apconfig.lock.break');
    writeFileSync(mark, '');
    expect(() => acquireLock(lock, quick)).toThrow('the AP configuration lock is held by PID 4194304');
    expect(readFileSync(lock, 'utf8')).toBe('4194304\n');
    expect(existsSync(mark)).toBe(true);
    // A breaker killed at it leaves its mark: a few seconds on, the mark goes and the stale lock is broken.
    utimesSync(mark, longAgo, longAgo);
    const held = acquireLock(lock, quick);
    expect(held.acquired).toBe(true);
    expect(existsSync(mark)).toBe(false);
    held.release();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('release removes only a lock that names the owner', () => {
    const { lock } = runLock();
    writeFileSync(lock, `${process.ppid}\n`);
    releaseLock(lock, process.pid);
    expect(readFileSync(lock, 'utf8')).toBe(`${process.ppid}\n`);
  });
});
