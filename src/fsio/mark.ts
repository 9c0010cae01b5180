// Marks under /run: files whose being there is what counts (systemd's
// ConditionPathExists=, the hook's next run); the text in them only says why.
// One open makes one, not a temporary file and a rename as writeFileAtomic
// does: a reader that finds a mark half written still finds it there, and
// /run is emptied at every boot, so nothing is synced.

import { closeSync, constants, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { describeFailure } from '../errors.js';
import { writeError } from './atomic.js';
import { writeAll } from './write-all.js';

/** Never through a link put there in its place; never waiting on a FIFO. */
const FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * Opens `path` with `flags` (creating it), making its directory only when the
 * open says it is not there: a mkdir per file would be a system call or two
 * more in every hook and every lock.
 */
export function openMakingDir(path: string, flags: number, mode = 0o644): number {
  try {
    return openSync(path, flags, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(dirname(path), { recursive: true });
    return openSync(path, flags, mode);
  }
}

/** Makes the mark at `path` (and its directory), holding `text`. */
export function writeMark(path: string, text = ''): void {
  try {
    const fd = openMakingDir(path, FLAGS);
    try {
      writeAll(fd, Buffer.from(text, 'utf8'));
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    throw writeError(path, err);
  }
}

/** writeMark, for a caller that carries on: the failure in words, or undefined. */
export function tryWriteMark(path: string, text = ''): string | undefined {
  try {
    writeMark(path, text);
    return undefined;
  } catch (err) {
    return describeFailure(err).message;
  }
}
