#!/usr/bin/env node
// Entry point. Kept tiny: the hook and the callout run at boot and on every
// mdevctl call, so they load only their own modules (DESIGN.md).

import { readFileSync } from 'node:fs';
import type { Io } from './context.js';
import { parseFastPath } from './fast-path.js';

const io: Io = {
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
  env: process.env,
  stdin: () => {
    try {
      return readFileSync(0, 'utf8');
    } catch {
      return '';
    }
  },
};

// A closed pipe (`ap-persist status | head`) is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
});

const argv = process.argv.slice(2);
const fast = parseFastPath(argv);
if (fast?.command === 'hook') {
  const { runFastHook } = await import('./fast-hook.js');
  process.exitCode = await runFastHook(fast.globals, io);
} else if (fast?.command === 'callout') {
  const { runFastCallout } = await import('./fast-callout.js');
  process.exitCode = await runFastCallout(fast.globals, fast.args, io);
} else {
  const { run } = await import('./program.js');
  process.exitCode = await run(argv, io);
}
