// Reading a file root trusts: never blocking on a FIFO or a device someone
// put in its place (open non-blocking, then fstat), and never reading one
// without saying what it is.

import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { RuntimeError } from '../errors.js';

/**
 * The text of the regular file at `path` (a symlink to one is followed);
 * undefined when nothing is there. Anything else is a RuntimeError naming it.
 */
export function readRegularFile(path: string, what: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new RuntimeError(`cannot read ${what}: ${code ?? (err as Error).message}`, { where: path, hint: 'check that it is a readable file (run as root)' });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      const kind = st.isFIFO() ? 'a FIFO' : st.isDirectory() ? 'a directory' : st.isSocket() ? 'a socket' : 'a device';
      throw new RuntimeError(`${what} is ${kind}, not a regular file`, { where: path, hint: 'put a regular file there' });
    }
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}
