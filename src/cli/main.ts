#!/usr/bin/env node
// Entry point. Kept tiny: the hook and the callout run at boot and on every
// mdevctl call, so they load only their own modules (DESIGN.md).

import { readFileSync } from 'node:fs';
import type { Io } from './context.js';

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

const { run } = await import('./program.js');
process.exitCode = await run(process.argv.slice(2), io);
