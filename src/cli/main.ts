#!/usr/bin/env node
// Entry point. Kept tiny: the hook runs at every boot and the callout on every
// mdevctl call, so they skip commander and load only their own modules; the
// bundle (package.json "bundle") makes this file and those two paths plain
// CommonJS, which starts faster than ES modules (DESIGN.md speed targets).

import { readFileSync } from 'node:fs';
import type { Io } from './context.js';
import { parseFastPath } from './fast-path.js';
import { isJournal, stderrPriority, withPriority } from './journal.js';

// Run by a unit, our stderr is the journal: each line at error priority (warnings as such),
// so `journalctl -p err` shows every refusal with its reason.
const stderrToJournal = isJournal(2, process.env);
const io: Io = {
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(stderrToJournal ? withPriority(t, stderrPriority(t)) : t),
  journal: isJournal(1, process.env),
  columns: process.stdout.isTTY && process.stdout.columns > 0 ? process.stdout.columns : undefined,
  env: process.env,
  stdin: () => {
    try {
      return readFileSync(0, 'utf8');
    } catch {
      return '';
    }
  },
};

// udev and mdevctl start us with no PATH at all: host commands (modprobe,
// systemctl, mdevctl) are then looked up where the distributions put them.
if (!process.env['PATH']) process.env['PATH'] = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

async function main(argv: string[]): Promise<number> {
  const fast = parseFastPath(argv);
  // Each fast path loads only its own modules (in the bundle: initialised on first use).
  if (fast?.command === 'hook') return (await import('./fast-hook.js')).runFastHook(fast.globals, fast.args, io);
  if (fast?.command === 'callout') return (await import('./fast-callout.js')).runFastCallout(fast.globals, fast.args, io);
  // A closed pipe (`ap-persist status | head`) is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  });
  const { run } = await import('./program.js');
  return run(argv, io);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`ap-persist: ${String((err as Error)?.stack ?? err)}\n`);
    process.exitCode = 1;
  },
);
