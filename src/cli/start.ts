// What the entry point (main.ts) loads: reads the command line, sets up
// the output, and loads the one part that runs the command. A file of its
// own, not the entry point's, so that its code comes from a code cache too:
// node compiles the entry point from source on every start.

import { readFileSync } from 'node:fs';
import type { Io } from './context.js';
import { cacheFlavour, parseFastPath } from './fast-path.js';
import { setCacheFlavour } from './code-cache.js';
import { fdWriter, mayBeTerminal } from './fd-writer.js';
import { isJournal, stderrPriority, withPriority } from './journal.js';

/**
 * Set for the commands: a closed pipe (`ap-persist status | head`) is not an
 * error, the command ends there as any filter would. The hook and the
 * callout carry on (their report, mdevctl's lock) and drop the output.
 */
let exitWhenStdoutCloses = false;
/** Set once a writer handed its descriptor to node's stream, which may hold output until node's loop has written it. */
let streamMade = false;
/**
 * Set for the hook: it waits for every command it runs and writes all it says
 * itself, so once it is done nothing is left for node's loop to run.
 */
let doneWhenReturned = false;
const stdoutClosed = (): void => {
  if (exitWhenStdoutCloses) process.exit(process.exitCode ?? 0);
};
// Straight to fd 1 and 2: node's stream objects for them cost milliseconds to make (fd-writer.ts).
const writeOut = fdWriter(1, {
  stream: () => {
    streamMade = true;
    if (process.stdout.listenerCount('error') === 0) {
      process.stdout.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EPIPE') stdoutClosed();
      });
    }
    return process.stdout;
  },
  onClosed: stdoutClosed,
});
const writeErr = fdWriter(2, {
  stream: () => {
    streamMade = true;
    return process.stderr;
  },
});

// Run by a unit, our stderr is the journal: each line at error priority (warnings as such),
// so `journalctl -p err` shows every refusal with its reason.
const stderrToJournal = isJournal(2, process.env);
const io: Io = {
  stdout: writeOut,
  stderr: (t) => writeErr(stderrToJournal ? withPriority(t, stderrPriority(t)) : t),
  journal: isJournal(1, process.env),
  // Asked by status alone; process.stdout (a tty.WriteStream) is made only for what may be a terminal.
  get columns() {
    return mayBeTerminal(1) && process.stdout.isTTY && process.stdout.columns > 0 ? process.stdout.columns : undefined;
  },
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
  // Each command keeps a code cache of its own, holding the functions it compiles.
  setCacheFlavour(cacheFlavour(argv));
  // Each fast path loads only its own modules (in the bundle: initialised on first use).
  if (fast?.command === 'hook') {
    doneWhenReturned = true;
    return (await import('./fast-hook.js')).runFastHook(fast.globals, fast.args, io);
  }
  if (fast?.command === 'callout') return (await import('./fast-callout.js')).runFastCallout(fast.globals, fast.args, io);
  if (fast?.command === 'mdev') return (await import('./fast-unit.js')).runFastUnit(fast.globals, fast.args, io);
  exitWhenStdoutCloses = true;
  const { run } = await import('./program.js');
  return run(argv, io);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Ending here spares node's teardown of the heap and the garbage collection the run's allocations had
    // scheduled for then ('exit' listeners still run): the hook of 64 mdevs with nothing to do, 1.40 -> 1.35 x `node -e 0`.
    if (doneWhenReturned && !streamMade) process.exit();
  },
  (err: unknown) => {
    writeErr(`ap-persist: ${String((err as Error)?.stack ?? err)}\n`);
    process.exitCode = 1;
  },
);
