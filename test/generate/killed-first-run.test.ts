// A first generate (no record yet) adopts what it finds in place as chzdev's
// or mdevctl's; what a first run killed before its record made must not be
// taken so (paths.generatedPending). The CLI runs as a process, killed with
// SIGKILL right after its k-th rename, or that rename failing (a preload wraps
// fs.renameSync): the list of files it is creating is the first, its files next.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GUEST1, GUEST2, threeGuestsHost, TWO_GUESTS_STORE } from '../../src/fakehost/three-guests.js';
import { buildFakeHost } from '../../src/fakehost/builder.js';
import { buildCli, runBuilt, type BuiltRun } from '../support/cli-build.js';
import { HostPaths } from '../../src/host/paths.js';
import { parseManifest, type ManifestEntry } from '../../src/generate/manifest.js';
import { tempDir } from '../support/host.js';

let cli: Awaited<ReturnType<typeof buildCli>>;
beforeAll(async () => {
  cli = await buildCli();
});
afterAll(() => cli.cleanup());

/**
 * The CLI on `root`. `at`: at the k-th rename, SIGKILLed right after it (`kill`) or
 * the rename failing with EIO instead (`fail`). In path order: the list, the
 * definitions (guest2's, then guest1's), 41-ap.rules, the record.
 */
function run(root: string, args: string[], at?: { rename: number; then: 'kill' | 'fail' }): BuiltRun {
  const act = at?.then === 'kill' ? "rename(...a); process.kill(process.pid, 'SIGKILL');" : "throw Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' });";
  const preload = at && `const fs = require('node:fs'); const rename = fs.renameSync; let n = 0;
fs.renameSync = (...a) => { if (++n === ${at.rename}) { ${act} } return rename(...a); };\n`;
  return runBuilt(cli.main, root, args, preload ? { preload } : {});
}

const recordOf = (root: string): ManifestEntry[] => parseManifest(readFileSync(new HostPaths(root).generatedManifest, 'utf8'), root);
const pendingThere = (root: string): boolean => existsSync(new HostPaths(root).generatedPending);
const recordThere = (root: string): boolean => existsSync(new HostPaths(root).generatedManifest);

describe('a first generate killed before its record', () => {
  it('killed twice, the store edited between: the third run takes every file for its own, as an uninterrupted run does, and uninstall removes them', () => {
    const host = join(tempDir(), 'host');
    buildFakeHost(host, { ...threeGuestsHost(), store: TWO_GUESTS_STORE });
    // Run A: the list, then guest2's definition, then killed.
    expect(run(host, ['generate', '--no-reload'], { rename: 2, then: 'kill' }).signal).toBe('SIGKILL');
    expect(pendingThere(host)).toBe(true);
    expect(existsSync(join(host, `etc/mdevctl.d/matrix/${GUEST2}`))).toBe(true);
    expect(recordThere(host)).toBe(false);
    // guest2's definition changes in the store alone.
    const edit = run(host, ['mdev', 'modify', GUEST2, '--adapters', '6', '--domains', '0x47,0xff', '--no-generate']);
    expect(edit.code, edit.stderr).toBe(0);
    // Run B: the list, guest2's definition over run A's, guest1's, then killed.
    expect(run(host, ['generate', '--no-reload'], { rename: 3, then: 'kill' }).signal).toBe('SIGKILL');
    expect(existsSync(join(host, `etc/mdevctl.d/matrix/${GUEST1}`))).toBe(true);
    expect(recordThere(host)).toBe(false);
    // Run C completes.
    const c = run(host, ['generate', '--no-reload']);
    expect(c.code, c.stderr).toBe(0);
    expect(pendingThere(host)).toBe(false);

    // The same store generated without interruption, on another host.
    const calm = join(tempDir(), 'calm');
    buildFakeHost(calm, { ...threeGuestsHost(), store: readFileSync(join(host, 'etc/ap-persist/ap-persist.conf'), 'utf8') });
    expect(run(calm, ['generate', '--no-reload']).code).toBe(0);
    expect(recordOf(host)).toEqual(recordOf(calm));
    expect(recordOf(host).filter((e) => e.adopted)).toEqual([]);

    const u = run(host, ['uninstall']);
    expect(u.code, u.stderr).toBe(0);
    expect(readdirSync(join(host, 'etc/mdevctl.d/matrix'), { withFileTypes: false }).filter((n) => n === GUEST1 || n === GUEST2)).toEqual([]);
  });

  it("then import from mdevctl: the killed run's definitions are recorded as generate's, not adopted, and uninstall removes them", () => {
    const host = join(tempDir(), 'host');
    buildFakeHost(host, { ...threeGuestsHost(), store: TWO_GUESTS_STORE });
    expect(run(host, ['generate', '--no-reload'], { rename: 3, then: 'kill' }).signal).toBe('SIGKILL');
    const i = run(host, ['import', '--from', 'mdevctl', '--no-generate']);
    expect(i.code, i.stderr).toBe(0);
    const definitions = recordOf(host).filter((e) => e.path.startsWith('etc/mdevctl.d/matrix/'));
    expect(definitions.map((e) => e.path).sort()).toEqual([GUEST1, GUEST2].map((g) => `etc/mdevctl.d/matrix/${g}`).sort());
    expect(definitions.filter((e) => e.adopted)).toEqual([]);
    const u = run(host, ['uninstall']);
    expect(u.code, u.stderr).toBe(0);
    for (const g of [GUEST1, GUEST2]) expect(existsSync(join(host, `etc/mdevctl.d/matrix/${g}`)), g).toBe(false);
  });

  it('a first run undone after a failure leaves the list as it found it: absent', () => {
    const host = join(tempDir(), 'host');
    buildFakeHost(host, { ...threeGuestsHost(), store: TWO_GUESTS_STORE });
    // 41-ap.rules cannot be put in place: the run fails after moving the definitions, and puts them back.
    const r = run(host, ['generate', '--no-reload'], { rename: 4, then: 'fail' });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/41-ap\.rules.*EIO/);
    for (const g of [GUEST1, GUEST2]) expect(existsSync(join(host, `etc/mdevctl.d/matrix/${g}`)), g).toBe(false);
    expect(pendingThere(host)).toBe(false);
  });
});
