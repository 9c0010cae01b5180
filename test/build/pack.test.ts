// What `npm pack` ships (package.json "files"): the bundle, the man page and
// completion, rules, units, presets, templates, LICENSE and README; never the
// compiled tree, the benchmarks, the example builder, the simulated kernel or
// the tests. The bundle holds none of those either, and the packed tree runs
// on its own.

import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BUNDLES as SHIPPED_BUNDLES } from '../../src/cli/parts.js';
import { buildFakeHost } from '../../src/fakehost/builder.js';
import { threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { snapshotTree, tempDir } from '../support/host.js';
import { itWith, requireTools } from '../support/real-tools.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NOT_SHIPPED = /^(src|test|bench|examples|scripts)\/|^dist\/(src|bench|examples|scripts|test)\/|sim-kernel|fakehost|sim-runner|\.test\.|tsconfig|vitest/;

/** npm pack, without the prepare script (the tree is built already; a build here would race the other tests). */
function npmPack(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('npm', ['pack', '--ignore-scripts', '--json', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The tool as `npm run build` bundles it (scripts/bundle.ts). */
const BUNDLES = SHIPPED_BUNDLES.map((f) => `dist/bin/${f}`);

const listed = (dir: string): string[] => readdirSync(join(ROOT, dir)).filter((f) => !f.startsWith('.')).map((f) => `${dir}/${f}`);

/** The modules a bundle was made of: esbuild's `// path` comment before each. */
function bundledModules(file: string): string[] {
  return [...readFileSync(join(ROOT, file), 'utf8').matchAll(/^\/\/ ((?:dist\/|node_modules\/)\S+)$/gm)].map((m) => m[1]!);
}

describe('the npm package', () => {
  const npm = requireTools('npm');

  itWith(npm, 'ships exactly the bundle, man page, completion, rules, units, presets, templates, LICENSE and README', () => {
    const r = npmPack('--dry-run');
    expect(r.status, r.stderr).toBe(0);
    const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path).sort();
    const expected = [
      'LICENSE',
      'README.md',
      'package.json',
      ...BUNDLES,
      'dist/share/man/man8/ap-persist.8',
      'dist/share/bash-completion/completions/ap-persist',
      ...listed('rules'),
      ...listed('units'),
      ...listed('presets'),
      ...listed('templates'),
    ].sort();
    expect(files).toEqual(expected);
    expect(files.filter((f) => NOT_SHIPPED.test(f))).toEqual([]);
  }, 60_000);

  it('the bundle is made of the runtime alone: no simulated kernel, fake host, example, benchmark, test or docs generator', () => {
    const modules = BUNDLES.flatMap(bundledModules);
    // The check has teeth: the comments are there.
    expect(modules).toContain('dist/src/runtime/hook.js');
    expect(modules).toContain('dist/src/cli/program.js');
    expect(modules.filter((m) => /sim-kernel|fakehost|sim-runner|examples|bench|\/test\/|cli\/docs\.js|scripts\//.test(m))).toEqual([]);
    for (const file of BUNDLES) expect(readFileSync(join(ROOT, file), 'utf8'), file).not.toMatch(/SimKernel|buildFakeHost/);
    // The hook, the callout and the mdev units start without commander and handlebars (they are in the other bundles).
    for (const file of ['dist/bin/ap-persist.cjs', 'dist/bin/start.cjs', 'dist/bin/hook.cjs', 'dist/bin/callout.cjs', 'dist/bin/unit.cjs']) {
      expect(bundledModules(file).filter((m) => /node_modules\/(commander|handlebars)\//.test(m)), file).toEqual([]);
    }
    expect(bundledModules('dist/bin/handlebars.cjs')).toContain('node_modules/handlebars/lib/index.js');
  });

  itWith(npm, 'runs from the packed tree alone (with its dependencies): --version, a staged install, the hook', () => {
    const dest = tempDir('ap-persist-pack-');
    const r = npmPack('--pack-destination', dest);
    expect(r.status, r.stderr).toBe(0);
    const tarball = join(dest, (JSON.parse(r.stdout) as { filename: string }[])[0]!.filename);
    expect(spawnSync('tar', ['-xzf', tarball, '-C', dest]).status).toBe(0);
    const pkg = join(dest, 'package');
    // npm would install the dependencies; the checkout's are the same ones.
    symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));
    const bin = join(pkg, 'dist/bin/ap-persist.cjs');
    const tool = (...args: string[]): { status: number | null; stdout: string; stderr: string } => {
      const x = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', ACTION: 'change', DEVPATH: '/devices/ap', BINDINGS: 'complete', COMPLETECOUNT: '1' } });
      return { status: x.status, stdout: x.stdout, stderr: x.stderr };
    };
    const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
    expect(tool('--version')).toEqual({ status: 0, stdout: `${version}\n`, stderr: '' });

    const stage = tempDir('ap-persist-stage-');
    const staged = tool('--root', stage, 'install', '--staged', '--node', '/usr/bin/node', '--bin', '/usr/lib/ap-persist/ap-persist.cjs');
    expect(staged.status, staged.stderr).toBe(0);
    expect(snapshotTree(stage).get('usr/lib/systemd/system/ap-persist-wait.service')).toContain('ExecStart=/usr/bin/node /usr/lib/ap-persist/ap-persist.cjs wait --timeout 90\n');

    const host = tempDir();
    buildFakeHost(host, threeGuestsHost());
    const hook = tool('--root', host, 'hook');
    expect(hook.status, hook.stderr).toBe(0);
    expect(tool('--root', host, 'check').status).toBe(0);
  }, 60_000);
});
