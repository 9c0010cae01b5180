// Shared by the callout tests: a fake host for the kernel documentation's
// example 3, the callout run in-process with stdin, device JSON as mdevctl
// writes it, and a private build of the CLI for tests that run it as a process.

import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions, type Plugin } from 'esbuild';
import type { FakeHost } from '../../src/fakehost/builder.js';
import { HostPaths } from '../../src/host/paths.js';
import { parseIdList } from '../../src/model/idlist.js';
import { runCallout, type CalloutOptions } from '../../src/runtime/callout.js';
import { FileSysfs } from '../../src/sysfs/file-sysfs.js';
import type { RunResult } from '../support/host.js';

export const PROJECT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

// Kernel vfio-ap.rst, example 3: guest1 adapters 1,2 domains 5,6 and guest2
// adapter 1 domains 6,7 both want APQN 01.0006.
export const GUEST1 = '11111111-1111-4111-8111-111111111111';
export const GUEST2 = '22222222-2222-4222-8222-222222222222';
export const GUEST3 = '33333333-3333-4333-8333-333333333333';
export const ACTIVE = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

/** The host keeps adapters 0 and 3-255 and domains 0-4 and 8-255: 1,2 x 5,6,7 are free. */
export const STORE_MASKS = '[masks]\napmask = 0,3-255\naqmask = 0-4,8-255\n';

export const GUEST1_STORE = `${STORE_MASKS}
[mdev.${GUEST1}]
name = guest1
adapters = 1,2
domains = 5,6
start = auto
`;

export function exampleHost(extra: Partial<FakeHost> = {}): FakeHost {
  return {
    cards: [0, 1, 2, 3].map((adapter) => ({ adapter, hwtype: 13 })),
    domains: [4, 5, 6, 7, 8, 9],
    masks: { apmask: parseIdList('0,3-255'), aqmask: parseIdList('0-4,8-255') },
    vfioAp: true,
    store: STORE_MASKS,
    ...extra,
  };
}

/** The compact JSON mdevctl writes on the callout's stdin. */
export function deviceJson(
  start: 'auto' | 'manual',
  adapters: (number | string)[],
  domains: (number | string)[],
  controlDomains: (number | string)[] = [],
  type = 'vfio_ap-passthrough',
): string {
  const attrs = [
    ...adapters.map((id) => ({ assign_adapter: `${id}` })),
    ...domains.map((id) => ({ assign_domain: `${id}` })),
    ...controlDomains.map((id) => ({ assign_control_domain: `${id}` })),
  ];
  return JSON.stringify({ mdev_type: type, start, attrs });
}

export interface Call {
  event: string;
  action: string;
  uuid: string;
  type?: string;
  parent?: string;
  state?: string;
}

export function calloutArgs(call: Call): string[] {
  return ['-t', call.type ?? 'vfio_ap-passthrough', '-e', call.event, '-a', call.action, '-s', call.state ?? 'none', '-u', call.uuid, '-p', call.parent ?? 'matrix'];
}

/** Runs the callout in-process on the fake root, as mdevctl would with `stdin`. */
export async function callout(root: string, call: Call, stdin = '', options: CalloutOptions = {}): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const io = { stdout: (t: string) => void (stdout += t), stderr: (t: string) => void (stderr += t), env: {}, stdin: () => stdin };
  const code = await runCallout(calloutArgs(call), io, new FileSysfs(root), new HostPaths(root), { parentPid: process.pid, ...options });
  return { code, stdout, stderr };
}

/** The parts main.ts loads when the command line asks for one, each in a file of its own as the package ships them (scripts/bundle.ts). */
const PARTS: Record<string, string> = { './fast-hook.js': 'hook.cjs', './fast-callout.js': 'callout.cjs', './program.js': 'program.cjs' };

/**
 * Builds the CLI from src/ into a directory of its own, so that tests running
 * it as a process neither race each other's builds nor the developer's dist/.
 * CommonJS files (esbuild, a fifth of a second), as the package ships the
 * tool (dist/bin/ap-persist.cjs): the entry point, which requires the hook,
 * the callout or the commands from a file of its own. node starts that in
 * about 15 ms less than the ES modules of a file-by-file build, and the
 * callout in 25 ms less than from one file holding every part (node parses
 * every byte it loads), which counts where mdevctl runs the callout dozens
 * of times. It lives under node_modules so that package-info finds the
 * project's package.json (and its templates) above it. Type errors are the
 * typecheck's to report (`npm test`), not this build's.
 */
export async function buildCli(): Promise<{ main: string; cleanup(): void }> {
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
  // main.ts's import('./fast-callout.js') becomes a require('./callout.cjs') when the callout
  // runs (an import() of a file would go through node's slower ES module loader).
  const partsAreOtherFiles: Plugin = {
    name: 'parts-are-other-files',
    setup(b) {
      b.onResolve({ filter: /.*/, namespace: 'other-file' }, (args) => ({ path: args.path, external: true }));
      b.onResolve({ filter: /^\.\/(fast-hook|fast-callout|program)\.js$/ }, (args) =>
        args.importer === join(cli, 'main.ts') ? { path: `./${PARTS[args.path]}`, namespace: 'other-file' } : undefined,
      );
      b.onLoad({ filter: /.*/, namespace: 'other-file' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});`, loader: 'js' }));
    },
  };
  await Promise.all([
    build({ ...common, entryPoints: [join(cli, 'main.ts')], outfile: main, plugins: [partsAreOtherFiles] }),
    ...Object.entries(PARTS).map(([entry, file]) => build({ ...common, entryPoints: [join(cli, entry.replace(/\.js$/, '.ts'))], outfile: join(out, file) })),
  ]);
  for (const file of [main, ...Object.values(PARTS).map((f) => join(out, f))]) if (!existsSync(file)) throw new Error(`the build in ${out} has no ${file}`);
  return { main, cleanup: () => rmSync(out, { recursive: true, force: true }) };
}
