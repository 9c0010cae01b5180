// Where the fast suite's temporary roots go (vitest.config.ts): a directory of
// this run on a tmpfs (/dev/shm) when TMPDIR is not set and the tmpfs has
// room. The tests write thousands of small trees, fsync every atomic write
// and remove it all again; on a disk that is most of their wall time (the
// fsyncs) and a fifth of their CPU, on a tmpfs next to nothing (the suite
// holds 10 MB there at most). Nothing the tests check depends on the file
// system under their roots: a kill -9 leaves the page cache as it is on any
// file system, and the full disks are tmpfs mounts of their own.
//
// The directory is named after the vitest process, made by the fast
// project's global setup and removed with everything in it when the run ends.

import { accessSync, constants, mkdirSync, readdirSync, rmSync, statfsSync } from 'node:fs';

const SHM = '/dev/shm';
const PREFIX = 'ap-persist-test-';
const TMPFS_MAGIC = 0x01021994;
/** Room the tmpfs must have (a container's /dev/shm may be 64 MB, shared). */
const MIN_FREE = 256 * 1024 * 1024;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** This run's temporary directory, or undefined: TMPDIR is set, or there is no writable tmpfs with room. */
export function scratchDir(): string | undefined {
  if (process.env['TMPDIR']) return undefined;
  try {
    const fs = statfsSync(SHM);
    if (fs.type !== TMPFS_MAGIC || fs.bavail * fs.bsize < MIN_FREE) return undefined;
    accessSync(SHM, constants.W_OK);
  } catch {
    return undefined;
  }
  return `${SHM}/${PREFIX}${process.pid}`;
}

/**
 * vitest globalSetup of the fast project: makes the directory its TMPDIR
 * names, and removes it after the run; and the directories of runs that
 * were killed (it is memory).
 */
export function setup(project: { config: { env?: Record<string, string | undefined> } }): () => void {
  const dir = project.config.env?.['TMPDIR'];
  if (dir === undefined || !dir.startsWith(`${SHM}/${PREFIX}`)) return () => {};
  for (const name of readdirSync(SHM)) {
    const pid = name.startsWith(PREFIX) ? Number(name.slice(PREFIX.length)) : NaN;
    if (Number.isInteger(pid) && pid > 0 && !alive(pid)) rmSync(`${SHM}/${name}`, { recursive: true, force: true });
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return () => rmSync(dir, { recursive: true, force: true });
}
