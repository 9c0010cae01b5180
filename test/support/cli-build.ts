// The CLI built from src/ for the tests that run it as a process (mdevctl's
// callouts, the CLI under contention): once per run of the fast suite, by its
// global setup (vitest.config.ts), and shared by every file; elsewhere (the
// system suite) each file builds its own.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions, type Plugin } from 'esbuild';
import { inject } from 'vitest';
import { PARTS as SHIPPED_PARTS } from '../../src/cli/parts.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The entry point of this run's build of the CLI (setup below). */
    apPersistCli?: string;
  }
}

const PROJECT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The parts main.ts loads when the command line asks for one, each in a file of its own as the package ships them (scripts/bundle.ts). */
const PARTS: Record<string, string> = SHIPPED_PARTS;

/**
 * Builds the CLI from src/ into a directory of its own, so that tests running
 * it as a process neither race another run's build nor the developer's dist/.
 * CommonJS files (esbuild, a fifth of a second), as the package ships the
 * tool (dist/bin/ap-persist.cjs): the entry point, which loads the hook, the
 * callout or the commands from a file of its own through its code cache.
 * node starts that in about 15 ms less than the ES modules of a file-by-file
 * build, and the callout in 12 ms less than from one file holding every part
 * (node compiles every byte it loads), which counts where mdevctl runs the
 * callout dozens of times. It lives under node_modules so that package-info
 * finds the project's package.json (and its templates) above it. Type errors
 * are the typecheck's to report (`npm test`), not this build's.
 */
async function buildOwnCli(): Promise<{ main: string; cleanup(): void }> {
  const cache = join(PROJECT, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const out = mkdtempSync(join(cache, 'ap-persist-test-build-'));
  // package-info finds package.json from import.meta.url: in CommonJS, the file's own URL.
  const metaUrl = join(out, 'import-meta-url.js');
  writeFileSync(metaUrl, 'export const importMetaUrl = require("node:url").pathToFileURL(__filename).href;\n');
  const main = join(out, 'ap-persist.cjs');
  const cli = join(PROJECT, 'src/cli');
  const common: BuildOptions = {
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node18',
    inject: [metaUrl],
    define: { 'import.meta.url': 'importMetaUrl' },
    logLevel: 'silent',
    logOverride: { 'empty-import-meta': 'error' },
  };
  // main.ts's import('./fast-callout.js') loads callout.cjs through its code cache when the
  // callout runs, as in the shipped bundle (an import() of a file would go through node's
  // slower ES module loader).
  const codeCache = join(cli, 'code-cache.ts');
  const partsAreOtherFiles: Plugin = {
    name: 'parts-are-other-files',
    setup(b) {
      b.onResolve({ filter: /.*/, namespace: 'other-file' }, (args) => (args.path === codeCache ? undefined : { path: args.path, external: true }));
      b.onResolve({ filter: /^\.\/[\w-]+\.js$/ }, (args) =>
        args.importer === join(cli, 'main.ts') && PARTS[args.path] ? { path: PARTS[args.path]!, namespace: 'other-file' } : undefined,
      );
      b.onLoad({ filter: /.*/, namespace: 'other-file' }, (args) => ({
        contents: `module.exports = require(${JSON.stringify(codeCache)}).loadPart(require("node:path").join(__dirname, ${JSON.stringify(args.path)}), require);`,
        loader: 'js',
        resolveDir: cli,
      }));
    },
  };
  try {
    await Promise.all([
      build({ ...common, entryPoints: [join(cli, 'main.ts')], outfile: main, plugins: [partsAreOtherFiles] }),
      ...Object.entries(PARTS).map(([entry, file]) => build({ ...common, entryPoints: [join(cli, entry.replace(/\.js$/, '.ts'))], outfile: join(out, file) })),
    ]);
    for (const file of [main, ...Object.values(PARTS).map((f) => join(out, f))]) if (!existsSync(file)) throw new Error(`the build in ${out} has no ${file}`);
  } catch (err) {
    rmSync(out, { recursive: true, force: true });
    throw err;
  }
  return { main, cleanup: () => rmSync(out, { recursive: true, force: true }) };
}

export interface BuiltRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * The built CLI at `main` run as a process on `root`, as an admin or a unit
 * runs it (PATH alone in its environment). `preload`: CommonJS source that
 * node runs first (`--require`; node runs it in worker threads too), written
 * beside the root; `flags`: node's own, before it.
 */
export function runBuilt(main: string, root: string, args: readonly string[], options: { preload?: string; flags?: readonly string[]; input?: string } = {}): BuiltRun {
  const preload = join(dirname(root), `preload-${Math.random().toString(36).slice(2)}.cjs`);
  if (options.preload !== undefined) writeFileSync(preload, options.preload);
  const r = spawnSync(process.execPath, [...(options.flags ?? []), ...(options.preload !== undefined ? ['--require', preload] : []), main, '--root', root, ...args], {
    encoding: 'utf8',
    input: options.input ?? '',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  return { code: r.status, signal: r.signal, stderr: r.stderr };
}

/** The CLI to run as a process: this run's build (its cleanup is the run's), or one of this file's own. */
export async function buildCli(): Promise<{ main: string; cleanup(): void }> {
  const shared = inject('apPersistCli');
  if (shared && existsSync(shared)) return { main: shared, cleanup: () => {} };
  return buildOwnCli();
}

/**
 * vitest globalSetup of the fast project: one build for every file (five of
 * them run the CLI as a process), removed after the run. Tests only read it
 * (the code caches the parts write beside themselves are written whole, by
 * rename, as where the package is installed).
 */
export async function setup({ provide }: { provide(key: 'apPersistCli', value: string): void }): Promise<() => void> {
  const built = await buildOwnCli();
  provide('apPersistCli', built.main);
  return () => built.cleanup();
}
