// sysfs as files under a root directory: the real /sys when the root is `/`,
// or a fake host laid out on disk by tests and examples.

import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { SysfsError, type Sysfs } from './sysfs.js';

export class FileSysfs implements Sysfs {
  private readonly base: string;

  constructor(root: string) {
    this.base = join(root, 'sys');
  }

  /** Where `path` (relative, from our own code) is: joined as text, as the kernel resolves it (path.join costs more on the hot paths). */
  private at(path: string): string {
    return `${this.base}/${path}`;
  }

  read(path: string): string {
    const full = this.at(path);
    try {
      return readFileSync(full, 'utf8');
    } catch (err) {
      // A link to a directory (a queue's `driver`) reads as its target, the way sysfs tools resolve it.
      if ((err as NodeJS.ErrnoException).code === 'EISDIR' && lstatSync(full).isSymbolicLink()) return readlinkSync(full);
      throw toSysfsError(err, path, 'read');
    }
  }

  write(path: string, data: string): void {
    const full = join(this.base, path);
    let real: string;
    try {
      real = realpathSync(existsSync(full) ? full : dirname(full));
    } catch (err) {
      throw toSysfsError(err, path, 'write');
    }
    // A link out of the sysfs tree (a fake root's) is never written through; sysfs's own stay inside.
    if (!insideTree(this.base, real)) throw new SysfsError('EXDEV', path, 'write', `leads outside sysfs, to ${real}`);
    try {
      // The kernel takes one write per attribute; a plain file takes the text.
      writeFileSync(full, data.endsWith('\n') ? data : `${data}\n`);
    } catch (err) {
      throw toSysfsError(err, path, 'write');
    }
  }

  list(dir: string): string[] {
    try {
      return readdirSync(this.at(dir)).sort();
    } catch {
      return [];
    }
  }

  exists(path: string): boolean {
    return existsSync(this.at(path));
  }
}

function insideTree(base: string, real: string): boolean {
  const rel = relative(realpathSync(base), real);
  return !isAbsolute(rel) && rel.split(sep)[0] !== '..';
}

function toSysfsError(err: unknown, path: string, op: 'read' | 'write'): SysfsError {
  const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
  return new SysfsError(code, path, op);
}
