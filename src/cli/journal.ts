// Lines for the journal: when a unit's stdout or stderr is the journal,
// a `<N>` prefix (sd-daemon(3)) sets each line's priority, so
// `journalctl -p err` shows what needs the admin.

import { fstatSync } from 'node:fs';
import type { Priority } from '../runtime/hook-report.js';

/** True when `fd` is the journal stream systemd gave us (JOURNAL_STREAM names its device:inode). */
export function isJournal(fd: number, env: Record<string, string | undefined>): boolean {
  const stream = env['JOURNAL_STREAM'];
  if (!stream) return false;
  try {
    const st = fstatSync(fd);
    return stream === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

const LEVEL: Record<Priority, number> = { err: 3, warning: 4, info: 6 };

/** Each line of `text` with the priority prefix. */
export function withPriority(text: string, priority: Priority): string {
  return text.replace(/^(?=.)/gm, `<${LEVEL[priority]}>`);
}

/** What we write to stderr: warnings as such, everything else an error. */
export function stderrPriority(text: string): Priority {
  return /^warning: /.test(text) ? 'warning' : 'err';
}
