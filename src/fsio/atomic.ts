// Atomic file replacement: write a temp file beside the target, fsync it,
// rename it over the target, fsync the directory. A crash leaves either the
// old file or the new one, never half of each.

import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { RuntimeError } from '../errors.js';

export interface AtomicWriteOptions {
  /** File mode for a new file; an existing file keeps its own. */
  mode?: number;
  /**
   * False for volatile state under /run (emptied at every boot anyway): the
   * rename still makes the write atomic, but no fsync waits for the disk.
   */
  durable?: boolean;
}

export function writeFileAtomic(path: string, data: string, options: AtomicWriteOptions = {}): void {
  try {
    replace(path, data, options);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new RuntimeError(`cannot write the file: ${e.code ?? e.message}`, {
      where: path,
      hint: e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS' ? 'run as root, on a writable file system' : 'check that its directory can be created and written',
    });
  }
}

function replace(path: string, data: string, options: AtomicWriteOptions): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  let mode = options.mode ?? 0o644;
  try {
    mode = statSync(path).mode & 0o7777;
  } catch {
    // new file: keep the requested mode
  }
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${Date.now()}`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, data);
    if (options.durable !== false) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    unlinkSync(tmp);
    throw err;
  }
  if (options.durable !== false) syncDir(dir);
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic.
  }
}
