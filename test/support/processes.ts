// Processes the tests started and expect gone: a host command killed at a
// bound, with its group.

import { readFileSync } from 'node:fs';

/** Running: a process that exists and is not a zombie waiting for whoever reaps orphans. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
