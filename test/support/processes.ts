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

/** Gives a process killed just now the moment the kernel takes to end and reap it (at most `ms`). */
export async function untilGone(pid: number, ms = 2_000): Promise<void> {
  for (const end = Date.now() + ms; alive(pid) && Date.now() < end; ) await new Promise((res) => setTimeout(res, 20));
}
