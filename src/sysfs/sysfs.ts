// The one door to sysfs. Paths are relative to the sysfs mount (`bus/ap/apmask`),
// so the same runtime code drives the real /sys, a fake root on disk, or the
// simulated kernel, and never knows which.

export interface Sysfs {
  read(path: string): string;
  write(path: string, data: string): void;
  /** Entry names in a directory, sorted; [] when it does not exist. */
  list(dir: string): string[];
  exists(path: string): boolean;
}

import { RuntimeError } from '../errors.js';

/** A refused sysfs access, carrying the errno the kernel gave. */
export class SysfsError extends RuntimeError {
  constructor(
    readonly code: string,
    readonly path: string,
    readonly op: 'read' | 'write' | 'list',
    detail?: string,
  ) {
    // A runtime failure (exit 1) that reaches the admin as one line, never a stack trace.
    super(`cannot ${op} sysfs ${path}: ${code}${detail ? ` (${detail})` : ''}`);
  }
}

export function isSysfsError(err: unknown, code?: string): err is SysfsError {
  return err instanceof SysfsError && (code === undefined || err.code === code);
}
