#!/usr/bin/env node
// Entry point. The hook runs at every boot and AP bus event, the callout on
// every mdevctl call, an mdev unit's start for every auto mdev: each start
// counts (DESIGN.md speed targets). node compiles this one file from source
// on every start, having no code cache for it, so it holds only the code
// cache's loader and loads start.cjs through it, which reads the command
// line and loads the part that runs the command, the same way (the bundle,
// scripts/bundle.ts, makes each a CommonJS file of its own).
//
// It runs only as that bundle's entry point, a CommonJS module: __dirname and
// require are its module's (an import() of start.js would bring esbuild's
// module helpers, compiled here at every start too).

import { writeSync } from 'node:fs';
import { loadPart, setCacheFlavour } from './code-cache.js';

// start.cjs runs a little more of its code for the hook and the callout than for the rest: each keeps a
// cache of its own. A guess from the words alone is enough for that (start.ts reads the command line).
const words = process.argv;
setCacheFlavour(words.includes('hook') ? 'start-hook' : words.includes('callout') ? 'start-callout' : 'start');
try {
  loadPart(`${__dirname}/start.cjs`, require);
} catch (err) {
  // start.cjs missing or unreadable (an install half done): said as start.ts says what it cannot run.
  writeSync(2, `ap-persist: ${String((err as Error)?.stack ?? err)}\n`);
  process.exitCode = 1;
}
