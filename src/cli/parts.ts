// The files the tool ships as (scripts/bundle.ts makes them in dist/bin/):
// the entry point, and the parts it loads, each when its command runs.

/** The file main.ts loads (start.cjs, by its path), and the part start.ts loads for each fast path and for the commands, by the module it imports. */
export const PARTS = {
  './start.js': 'start.cjs',
  './fast-hook.js': 'hook.cjs',
  './fast-callout.js': 'callout.cjs',
  './fast-unit.js': 'unit.cjs',
  './program.js': 'program.cjs',
} as const satisfies Record<string, string>;

/** Every bundle: the entry point, the parts, and handlebars (which program.cjs loads). */
export const BUNDLES: readonly string[] = ['ap-persist.cjs', ...Object.values(PARTS), 'handlebars.cjs'];
