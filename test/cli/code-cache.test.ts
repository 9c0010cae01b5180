// The bundles' code cache (src/cli/code-cache.ts): bytecode that runs as
// root, so the stories are about when it must NOT be used. V8 itself checks
// only the length of the source, which is what makes these tests able to
// fail: a cache made from another text of the same length would be taken.

import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { cachePath, PART_HEAD, PART_TAIL } from '../../src/cli/code-cache.js';
import { threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { givenHost } from '../support/host.js';

const NOBODY = 65534;
const asRoot = process.geteuid?.() === 0;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A bundle dir as the package has it (root's, 0755) with one part answering `word`. */
function bundleDir(word: string): { dir: string; part: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ap-persist-cache-'));
  dirs.push(dir);
  chmodSync(dir, 0o755);
  const part = join(dir, 'part.cjs');
  writeFileSync(part, partSource(word), { mode: 0o644 });
  return { dir, part };
}

const partSource = (word: string): string => `"use strict";\nfunction answer() { return ${JSON.stringify(word)}; }\nmodule.exports = { answer };\n`;

const CODE_CACHE = new URL('../../dist/src/cli/code-cache.js', import.meta.url).href;
let lastUse = '';

/**
 * Loads `part` as the launcher does, in a node of its own (V8 keeps what one
 * process compiled and would not look at a cache for the same text again);
 * returns its answer, and sets lastUse to what became of the cache.
 */
function load(part: string, flags: string[] = []): string {
  const script = `import { createRequire } from 'node:module';
import * as cache from ${JSON.stringify(CODE_CACHE)};
const answer = cache.loadPart(process.argv[1], createRequire(process.argv[1])).answer();
process.on('exit', () => console.log(JSON.stringify({ answer, use: cache.lastUse })));`;
  const r = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script, part], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout) as { answer: string; use: string };
  lastUse = out.use;
  return out.answer;
}

describe('the code cache of a bundle', () => {
  it('is written by the first run and used by the next, which gives the same answer', () => {
    const { part } = bundleDir('hello');
    expect(load(part)).toBe('hello');
    expect(lastUse).toBe('written');
    expect(readFileSync(cachePath(part), 'latin1')).toMatch(/^ap-persist code cache 2\n/);
    const made = statSync(cachePath(part)).mtimeMs;
    expect(load(part)).toBe('hello');
    expect(lastUse).toBe('used');
    expect(statSync(cachePath(part)).mtimeMs).toBe(made);
  });

  it('takes a part that comes in its module function (as the bundle writes the fast paths) as it is, from its cache too', () => {
    const { part } = bundleDir('hello');
    writeFileSync(part, `${PART_HEAD}\n${partSource('hello')}${PART_TAIL}\n`);
    expect(load(part)).toBe('hello');
    expect(lastUse).toBe('written');
    expect(load(part)).toBe('hello');
    expect(lastUse).toBe('used');
  });

  it('is not used for a bundle changed since, even to a text of the same length, and is made again', () => {
    const { part } = bundleDir('hello');
    load(part);
    writeFileSync(part, partSource('jello'));
    expect(load(part)).toBe('jello');
    expect(lastUse).toBe('written');
    expect(load(part)).toBe('jello');
    expect(lastUse).toBe('used');
  });

  it('is used under node flags that make its header long (it names them all)', () => {
    const { part } = bundleDir('hello');
    const flags = [`--title=${'x'.repeat(5000)}`];
    expect(load(part, flags)).toBe('hello');
    expect(lastUse).toBe('written');
    const made = statSync(cachePath(part)).mtimeMs;
    expect(load(part, flags)).toBe('hello');
    expect(lastUse).toBe('used');
    expect(statSync(cachePath(part)).mtimeMs).toBe(made);
  });

  it('a cache whose bytes are not as long as its header says is not used but made again (V8 checks no sum of them)', () => {
    const { part } = bundleDir('hello');
    load(part);
    const whole = readFileSync(cachePath(part));
    writeFileSync(cachePath(part), Buffer.concat([whole, Buffer.from([0])]));
    expect(load(part)).toBe('hello');
    expect(lastUse).toBe('written');
    expect(readFileSync(cachePath(part)).length).toBe(whole.length);
  });

  it.runIf(asRoot)('is ignored when another user owns it or may write it, and never written over then', () => {
    // A cache for this very bundle, made from another text of the same length: what a user would plant.
    const { part } = bundleDir('hello');
    const planted = cachePath(part);
    writeFileSync(part, partSource('jello'));
    load(part);
    const jelloCache = readFileSync(planted);
    writeFileSync(part, partSource('hello'));
    const key = (): Buffer => {
      // Our header for the current file, with the other text's bytecode after it.
      load(part);
      return readFileSync(planted).subarray(0, readFileSync(planted).indexOf(0x0a, 'ap-persist code cache 2\n'.length) + 1);
    };
    const forged = Buffer.concat([key(), jelloCache.subarray(jelloCache.indexOf(0x0a, 'ap-persist code cache 2\n'.length) + 1)]);
    writeFileSync(planted, forged);
    // Root's and root's alone: trusted, and V8 takes it, so the forged code runs. This is what the checks guard.
    expect(load(part)).toBe('jello');
    chownSync(planted, NOBODY, NOBODY);
    expect(load(part)).toBe('hello');
    expect(lastUse).toBe('untrusted');
    expect(statSync(planted).uid).toBe(NOBODY);
    chownSync(planted, 0, 0);
    chmodSync(planted, 0o666);
    expect(load(part)).toBe('hello');
    expect(lastUse).toBe('untrusted');
  });

  it.runIf(asRoot)('is neither read nor written beside a bundle in a directory others may write', () => {
    const { dir, part } = bundleDir('hello');
    chmodSync(dir, 0o777);
    expect(load(part)).toBe('hello');
    expect(lastUse).toBe('untrusted');
    expect(readdirSync(dir)).toEqual(['part.cjs']);
  });
});

describe('the installed bundles', () => {
  const BIN = fileURLToPath(new URL('../../dist/bin/ap-persist.cjs', import.meta.url));

  it('leave a cache per bundle, per command and per node flags, and give the same output from it', () => {
    // The package's layout: package.json, and the bundles in dist/bin.
    const top = mkdtempSync(join(tmpdir(), 'ap-persist-bin-'));
    dirs.push(top);
    chmodSync(top, 0o755);
    const copy = join(top, 'dist/bin');
    cpSync(dirname(BIN), copy, { recursive: true, filter: (src) => !src.includes('.v8-cache') });
    cpSync(join(dirname(BIN), '../../package.json'), join(top, 'package.json'));
    const bin = join(copy, 'ap-persist.cjs');
    const host = givenHost(threeGuestsHost());
    const ap = (flags: string[], ...args: string[]): string => {
      const r = spawnSync(process.execPath, [...flags, bin, '--root', host.root, ...args], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '/usr/bin' } });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout;
    };
    const caches = (): string[] => readdirSync(copy).filter((f) => f.endsWith('.v8-cache')).sort();
    const first = ap([], 'mask', 'show');
    // start.cjs (what the entry point loads: src/cli/main.ts) keeps one cache for the commands.
    expect(caches()).toEqual(['program.cjs.mask-show.v8-cache', 'start.cjs.start.v8-cache']);
    const made = statSync(join(copy, 'program.cjs.mask-show.v8-cache')).mtimeMs;
    const startMade = statSync(join(copy, 'start.cjs.start.v8-cache')).mtimeMs;
    expect(ap([], 'mask', 'show')).toBe(first);
    // Both used, neither written again (a cache V8 refused would be).
    expect(statSync(join(copy, 'program.cjs.mask-show.v8-cache')).mtimeMs).toBe(made);
    expect(statSync(join(copy, 'start.cjs.start.v8-cache')).mtimeMs).toBe(startMade);
    // Another command compiles other functions: a cache of its own, which holds them.
    const status = ap([], 'status');
    expect(caches()).toEqual(['program.cjs.mask-show.v8-cache', 'program.cjs.status.v8-cache', 'start.cjs.start.v8-cache']);
    expect(ap([], 'status')).toBe(status);
    // The callout's flags: a cache of their own, the others left as they were.
    expect(ap(['--jitless'], 'mask', 'show')).toBe(first);
    expect(caches()).toEqual([
      'program.cjs.mask-show.jitless.v8-cache',
      'program.cjs.mask-show.v8-cache',
      'program.cjs.status.v8-cache',
      'start.cjs.start.jitless.v8-cache',
      'start.cjs.start.v8-cache',
    ]);
    expect(statSync(join(copy, 'program.cjs.mask-show.v8-cache')).mtimeMs).toBe(made);
    // The hook keeps start.cjs's cache of its own: it runs more of it than the commands do.
    ap([], 'hook', '--event', 'change-2');
    expect(caches()).toContain('start.cjs.start-hook.v8-cache');
    expect(caches()).toContain('hook.cjs.v8-cache');
  });

  it('name the cache after the command line: callout event and action, command and subcommand; nothing that is not a name', async () => {
    const { cacheFlavour, COMMANDS } = await import('../../src/cli/fast-path.js');
    const { buildProgram } = await import('../../src/cli/program.js');
    const program = buildProgram({ stdout: () => {}, stderr: () => {}, env: {} }, () => async () => {});
    expect(COMMANDS).toEqual(Object.fromEntries(program.commands.map((c) => [c.name(), c.commands.map((s) => s.name())])));
    expect(cacheFlavour(['callout', '-t', 'vfio_ap-passthrough', '-e', 'pre', '-a', 'define', '-s', 'none', '-u', 'U', '-p', 'matrix'])).toBe('pre-define');
    expect(cacheFlavour(['callout', '--type=vfio_ap-passthrough', '--event=post', '--action=start'])).toBe('post-start');
    expect(cacheFlavour(['--root', '/x', 'mask', 'show'])).toBe('mask-show');
    expect(cacheFlavour(['mdev', 'start', 'bfccf00d-21f1-448c-9979-b7341129d985'])).toBe('mdev-start');
    expect(cacheFlavour(['--json', 'status', '--matrix'])).toBe('status');
    expect(cacheFlavour(['libvirt-hook', '--', 'Guest1', 'prepare', 'begin', '-'])).toBe('libvirt-hook');
    // Not a subcommand (a typo, a guest named as libvirt would not name it): the command's cache.
    expect(cacheFlavour(['mask', 'sett'])).toBe('mask');
    expect(cacheFlavour(['libvirt-hook', 'web-server', 'prepare', 'begin', '-'])).toBe('libvirt-hook');
    // The hook's part runs nothing else; typos and paths make no cache of their own.
    // The boot's first hook keeps its own; a later event's, the hook's one cache.
    expect(cacheFlavour(['hook', '--event', 'change-1'])).toBe('hook-boot');
    expect(cacheFlavour(['--root', '/x', 'hook', '--event=add'])).toBe('hook-boot');
    for (const argv of [['hook', '--event', 'change-2'], ['hook'], ['stauts'], ['../../x'], [], ['--version'], ['callout', '-e', 'pre'], ['constructor'], ['__proto__']]) expect(cacheFlavour(argv), argv.join(' ')).toBeUndefined();
    const { cachePath, setCacheFlavour } = await import('../../src/cli/code-cache.js');
    setCacheFlavour('../evil');
    expect(cachePath('/b/part.cjs')).toBe(`/b/part.cjs${process.execArgv.includes('--jitless') ? '.jitless' : ''}.v8-cache`);
    setCacheFlavour('pre-define');
    expect(cachePath('/b/part.cjs')).toMatch(/^\/b\/part\.cjs\.pre-define\./);
    setCacheFlavour(undefined);
  });
});
