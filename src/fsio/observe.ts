// What a path holds on disk now, without following a link: the one reader
// behind generate's ownership rule and the drift checks.

import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { RuntimeError } from '../errors.js';

export type Observed =
  | { kind: 'absent' }
  | { kind: 'file'; content: string }
  | { kind: 'symlink'; target: string }
  | { kind: 'other'; what: string };

export function observe(path: string): Observed {
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
    throw new RuntimeError(`cannot read: ${(err as Error).message}`, { where: path });
  }
  if (st.isSymbolicLink()) return { kind: 'symlink', target: readlinkSync(path) };
  if (st.isFile()) return { kind: 'file', content: readFileSync(path, 'utf8') };
  return { kind: 'other', what: st.isDirectory() ? 'a directory' : 'not a regular file' };
}
