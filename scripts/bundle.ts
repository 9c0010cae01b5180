// npm run bundle (after tsc): the installed tool, as CommonJS files that
// each load only when their part of the tool runs.
//
//   dist/bin/ap-persist.cjs  the entry point: the code cache's loader, which
//                            loads start.cjs
//   dist/bin/start.cjs       reads the command line, then loads the one file
//                            below that runs it
//   dist/bin/hook.cjs        the hook (every boot)
//   dist/bin/callout.cjs     the mdevctl callout (every mdevctl call)
//   dist/bin/unit.cjs        mdev start and stop, as the mdev units run them
//                            (every auto mdev, at every boot and shutdown)
//   dist/bin/program.cjs     every other command, with commander and ini
//   dist/bin/handlebars.cjs  handlebars, required by program.cjs when a
//                            template is first compiled (generate, install,
//                            status of an installed host)
//
// CommonJS, not ES modules, and node_modules bundled in: node's ES module
// loader and its look-ups of many small files in node_modules cost more than
// the whole command (`mask show` went from 3.7 to 2.5 x `node -e 0` in CPU
// time). One file per part: node compiles every byte of the files it loads,
// so the hook and the callout never compile commander or handlebars, and the
// commands not the hook's or the callout's code. Within a file a module is
// initialised when first imported, and the built-in modules that take
// milliseconds to load (node:child_process, node:crypto, and node:os for its
// signal numbers) are loaded on first use: a command that runs no host
// command (every command under --root) or hashes nothing never loads them.
//
// `// path` comments before each module stay (test/build/pack.test.ts reads
// them to check what went in).

import { build, type Plugin } from 'esbuild';
import { createRequire } from 'node:module';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { PARTS as SHIPPED_PARTS } from '../src/cli/parts.js';
import { PART_HEAD, PART_TAIL } from '../src/cli/code-cache.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIST = join(ROOT, 'dist');

/**
 * Built-in modules loaded on first use of one of their exports (node:os: its signal numbers, wanted only once a
 * command ran; node:worker_threads, 2.4-2.7 ms to load, only when generate syncs many files at once).
 */
const LAZY_BUILTINS = ['child_process', 'crypto', 'os', 'worker_threads'];

const require = createRequire(import.meta.url);

/** The code cache's loader (src/cli/code-cache.ts), bundled into the file that loads another. */
const CODE_CACHE = join(DIST, 'src/cli/code-cache.js');

/** Loads our bundle `file` (`./hook.cjs`) beside this one, through its code cache. */
const loadOtherFile = (file: string): string =>
  `require(${JSON.stringify(CODE_CACHE)}).loadPart(require("node:path").join(__dirname, ${JSON.stringify(file)}), require)`;

/**
 * A module whose exports require it when first read: `import { spawn } from
 * 'node:child_process'` gets such an object, and esbuild's CommonJS output
 * reads imports at their use (`(0, import_x.spawn)(...)`), so the module
 * loads when the first command runs, not when the file does. `modules` maps
 * each import name to what is required then (a built-in, or another bundle).
 */
function loadedOnFirstUse(modules: Record<string, string>, onlyOurNames = true): Plugin {
  const names = Object.keys(modules);
  const filter = new RegExp(`^(${names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$`);
  return {
    name: 'loaded-on-first-use',
    setup(b) {
      // The shim's own require of the real module, at run time (esbuild asks the first callback that matches).
      b.onResolve({ filter: /.*/, namespace: 'first-use' }, (args) => (args.path === CODE_CACHE ? undefined : { path: args.path, external: true }));
      b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'first-use' }));
      b.onLoad({ filter: /.*/, namespace: 'first-use' }, (args) => {
        const target = modules[args.path]!;
        // A built-in's: in a bundle of our code alone, the names it imports (each file defines a getter
        // per name when it loads: node:crypto has some eighty; checkShimNames holds it to that); where
        // other packages may use more (commander's childProcess.spawn), all. Another bundle's: its exports.
        const keys =
          target.startsWith('./') || !onlyOurNames
            ? Object.keys(require(target.startsWith('./') ? args.path : target) as object).filter((k) => k !== 'default' && /^[A-Za-z_$][\w$]*$/.test(k))
            : importedNames(target);
        const getters = keys.map((k) => `  get ${k}() { return load().${k}; },`).join('\n');
        const loader = target.startsWith('./') ? loadOtherFile(target) : `require(${JSON.stringify(target)})`;
        return {
          contents: `// ${args.path}, loaded on first use\nlet m;\nconst load = () => m || (m = ${loader});\nmodule.exports = {\n${getters}\n};\n`,
          loader: 'js',
          resolveDir: ROOT,
        };
      });
    },
  };
}

/** The compiled sources (dist/src/**\/*.js), in path order: what the bundles are made of. */
const SOURCES: readonly { path: string; text: string }[] = (() => {
  const out: { path: string; text: string }[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else if (e.name.endsWith('.js')) out.push({ path: relative(DIST, path), text: readFileSync(path, 'utf8') });
    }
  };
  walk(join(DIST, 'src'));
  return out;
})();

/** Every name our compiled sources import from `builtin` (`import { spawn } from 'node:child_process'`). */
function importedNames(builtin: string): string[] {
  const names = new Set<string>();
  const from = new RegExp(`import \\{([^}]*)\\} from '(?:node:)?${builtin.replace(/^node:/, '')}';`, 'g');
  for (const { text } of SOURCES) for (const m of text.matchAll(from)) for (const spec of m[1]!.split(',')) names.add(spec.trim().split(/\s+as\s+/)[0]!);
  names.delete('');
  return [...names].sort();
}

/** The built-ins loaded on first use, by both their names. */
const builtinsOnFirstUse = Object.fromEntries(LAZY_BUILTINS.flatMap((m) => [[m, `node:${m}`], [`node:${m}`, `node:${m}`]]));

/**
 * handlebars requires source-map (63 kB) at load, for source maps of
 * compiled templates, which we never ask for; without it (an empty module)
 * it uses its own small SourceNode, with the same output.
 */
const noSourceMap: Plugin = {
  name: 'no-source-map',
  setup(b) {
    b.onResolve({ filter: /^source-map$/ }, () => ({ path: 'source-map', namespace: 'empty' }));
    b.onLoad({ filter: /.*/, namespace: 'empty' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
  },
};

/**
 * start.ts loads each part with `import('./fast-hook.js')` and the like: here
 * a `require` of that part's file (node's ES module loader, which import()
 * would go through, costs milliseconds more), when the command line asks for it.
 */
const PARTS: Record<string, string> = Object.fromEntries(Object.entries(SHIPPED_PARTS).map(([module, file]) => [module, `./${file}`]));
const partsAreOtherFiles: Plugin = {
  name: 'parts-are-other-files',
  setup(b) {
    b.onResolve({ filter: /.*/, namespace: 'other-file' }, (args) => (args.path === CODE_CACHE ? undefined : { path: args.path, external: true }));
    b.onResolve({ filter: /^\.\/[\w-]+\.js$/ }, (args) => (PARTS[args.path] ? { path: PARTS[args.path]!, namespace: 'other-file' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'other-file' }, (args) => ({ contents: `module.exports = ${loadOtherFile(args.path)};`, loader: 'js', resolveDir: ROOT }));
  },
};

/**
 * package-info.ts finds package.json from its own file (`import.meta.url`):
 * in a CommonJS bundle, the bundle's file. Any other import.meta stops the build.
 */
const importMetaUrl: Plugin = {
  name: 'import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      return { contents: text.replaceAll('import.meta.url', 'require("node:url").pathToFileURL(__filename).href'), loader: 'js' };
    });
  },
};

/**
 * What the bundles say they are (src/package-info.ts codeVersion): the version of the
 * package.json they ship with and a digest of the compiled code they are made of, so
 * that a build of the same version with other code (a distribution's patch) is another.
 */
function buildName(): string {
  const digest = createHash('sha256');
  for (const { path, text } of SOURCES) digest.update(`${path}\0`).update(text).update('\0');
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  return `${version}+${digest.digest('hex').slice(0, 12)}`;
}
const BUILD = buildName();

const common = {
  bundle: true,
  define: { AP_PERSIST_BUILD: JSON.stringify(BUILD) },
  format: 'cjs',
  platform: 'node',
  target: 'node18',
  logLevel: 'warning',
  logOverride: { 'empty-import-meta': 'error' },
} as const;

// The ES module the command path was before (a stale one would only mislead), and the
// code caches of the bundles made before (remade by their first run; src/cli/code-cache.ts).
rmSync(join(DIST, 'bin/program.js'), { force: true });
for (const f of existsSync(join(DIST, 'bin')) ? readdirSync(join(DIST, 'bin')) : []) if (f.includes('.v8-cache')) rmSync(join(DIST, 'bin', f), { force: true });

/**
 * `wrapped`: the part comes in its module function, as loadPart (src/cli/code-cache.ts) compiles it. The
 * fast paths' parts only: program.cjs and handlebars.cjs are also imported as plain CommonJS (the fault
 * suite runs the commands in its own process).
 */
const bundle = (entry: string, out: string, plugins: Plugin[], wrapped = false): Promise<unknown> =>
  build({
    ...common,
    entryPoints: [entry],
    outfile: join(DIST, 'bin', out),
    plugins: [...plugins, importMetaUrl],
    ...(wrapped ? { banner: { js: PART_HEAD }, footer: { js: PART_TAIL.trimStart() } } : {}),
  });

await Promise.all([
  bundle(join(DIST, 'src/cli/main.js'), 'ap-persist.cjs', [loadedOnFirstUse(builtinsOnFirstUse)]),
  bundle(join(DIST, 'src/cli/start.js'), 'start.cjs', [partsAreOtherFiles, loadedOnFirstUse(builtinsOnFirstUse)], true),
  bundle(join(DIST, 'src/cli/fast-hook.js'), 'hook.cjs', [loadedOnFirstUse(builtinsOnFirstUse)], true),
  bundle(join(DIST, 'src/cli/fast-callout.js'), 'callout.cjs', [loadedOnFirstUse(builtinsOnFirstUse)], true),
  bundle(join(DIST, 'src/cli/fast-unit.js'), 'unit.cjs', [loadedOnFirstUse(builtinsOnFirstUse)], true),
  bundle(join(DIST, 'src/cli/program.js'), 'program.cjs', [loadedOnFirstUse({ ...builtinsOnFirstUse, handlebars: './handlebars.cjs' }, false)]),
  bundle(require.resolve('handlebars'), 'handlebars.cjs', [noSourceMap]),
]);

/**
 * The bundles whose built-in shims carry only the names our code imports: each use of a
 * shim there must be one of those names, and nothing else may require the built-in
 * (a package's `require('node:os').cpus()` would find no getter): else the build stops.
 */
function checkShimNames(file: string): void {
  const text = readFileSync(join(DIST, 'bin', file), 'utf8');
  for (const builtin of LAZY_BUILTINS) {
    const known = new Set(importedNames(`node:${builtin}`));
    const shim = builtin.replace(/\W/g, '_');
    for (const m of text.matchAll(new RegExp(`import_node_${shim}\\d*\\.([A-Za-z_$][\\w$]*)`, 'g'))) {
      if (!known.has(m[1]!)) throw new Error(`${file}: node:${builtin}'s ${m[1]} is used but not among the names our code imports (${[...known].join(', ')})`);
    }
    const required = [...text.matchAll(new RegExp(`require_node_${shim}\\(\\)`, 'g'))].length;
    const imported = [...text.matchAll(new RegExp(`import_node_${shim}\\d* = __toESM\\(require_node_${shim}\\(\\)`, 'g'))].length;
    if (required !== imported) throw new Error(`${file}: node:${builtin} is required other than by an import of ours: bundle it with every name (loadedOnFirstUse(..., false))`);
  }
}
for (const file of ['ap-persist.cjs', 'start.cjs', 'hook.cjs', 'callout.cjs', 'unit.cjs']) checkShimNames(file);

