// Every byte of a buffer written to a descriptor. writeSync may write less
// than asked (a file system with less room left than the data needs): the
// rest is written, and the next write throws ENOSPC, rather than a file
// left short without a word.

import { writeSync } from 'node:fs';

export function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0, n = 1; done < bytes.length; done += n) {
    n = writeSync(fd, bytes, done, bytes.length - done);
    if (n <= 0) throw Object.assign(new Error('the write made no progress'), { code: 'EIO' });
  }
}
