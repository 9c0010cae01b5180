// The built-in modules that cost milliseconds to load (node:child_process,
// node:crypto, node:os, node:worker_threads: 2.4-2.7 ms alone) load on first
// use (scripts/bundle.ts LAZY_BUILTINS), never because a bundle holds code
// that could use them. Given the example host, the commands that run at
// every event or that an admin runs to look load none of them. The bundle as
// shipped (dist/bin, made by `npm run build`, which `npm test` runs first):
// the tests' own build of the CLI does not split the built-ins so.

import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBuilt } from '../support/cli-build.js';
import { tempDir } from '../support/host.js';
import { BUILT_CLI, PROJECT } from '../fault/support.js';

const EXAMPLE = join(PROJECT, 'examples/three-guests');
const COSTLY = /^NativeModule (child_process|crypto|os|worker_threads)$/;

/** The costly built-ins `args` loaded, run as the built CLI on a copy of the example host. */
function loadedBy(args: string[], options: { flags?: string[]; input?: string } = {}): { code: number | null; stderr: string; loaded: string[] } {
  const root = join(tempDir(), 'host');
  cpSync(EXAMPLE, root, { recursive: true });
  const preload = "process.on('exit', () => require('node:fs').writeSync(2, `\\nloaded=${JSON.stringify(process.moduleLoadList)}\\n`));\n";
  const r = runBuilt(BUILT_CLI, root, args, { preload, ...options });
  const m = /^loaded=(.*)$/m.exec(r.stderr);
  const all = m ? (JSON.parse(m[1]!) as string[]) : ['(no list)'];
  return { code: r.code, stderr: r.stderr, loaded: all.filter((name) => COSTLY.test(name)) };
}

describe('costly built-in modules load on first use only', () => {
  it.each([
    ['mask show', ['mask', 'show']],
    ['status', ['status']],
    ['check', ['check']],
    ['the hook of a later event', ['hook', '--event', 'change-2']],
  ])('%s loads none of them', (_name, args) => {
    const r = loadedBy(args);
    expect(r.code === 0 || r.code === 1, r.stderr).toBe(true);
    expect(r.loaded).toEqual([]);
  });

  it("mdevctl's pre-start callout, as mdevctl runs it (without the JIT), loads none of them", () => {
    const r = loadedBy(['callout', '-t', 'vfio_ap-passthrough', '-e', 'pre', '-a', 'start', '-s', 'none', '-u', '11111111-1111-4111-8111-111111111111', '-p', 'matrix'], {
      flags: ['--jitless', '--no-expose-wasm'],
      input: '{"mdev_type":"vfio_ap-passthrough","start":"manual","attrs":[{"assign_adapter":"6"},{"assign_domain":"0x47"}]}',
    });
    expect(r.stderr).not.toMatch(/\(no list\)/);
    expect(r.loaded).toEqual([]);
  });
});
