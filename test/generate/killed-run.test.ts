// A generate killed after it moved some files into place but before its
// record: every command must still take those files for generate's, through
// the list it named them in first (paths.generatedPending). A first generate
// (no record yet) adopts what it finds in place as chzdev's or mdevctl's, so
// there its own files must not be taken so; a later one's must not look
// changed by another tool. The CLI runs as a process, killed with SIGKILL
// right after its k-th rename, or that rename failing (a preload wraps
// fs.renameSync): the list of files it is putting in place is the first, its
// files next, in path order.

import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GUEST1, GUEST2, GUEST3, threeGuestsHost, TWO_GUESTS_STORE } from '../../src/fakehost/three-guests.js';
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
 * right before it (`kill-before`), or the rename failing with EIO instead (`fail`).
 * In path order: the list, the definitions (guest2's, then guest1's), 41-ap.rules,
 * the record (a new link is made in place, without a rename).
 */
function run(root: string, args: string[], at?: { rename: number; then: 'kill' | 'kill-before' | 'fail' }): BuiltRun {
  const act = {
    kill: "rename(...a); process.kill(process.pid, 'SIGKILL');",
    'kill-before': "process.kill(process.pid, 'SIGKILL');",
    fail: "throw Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' });",
  }[at?.then ?? 'fail'];
  const preload = at && `const fs = require('node:fs'); const rename = fs.renameSync; let n = 0;
fs.renameSync = (...a) => { if (++n === ${at.rename}) { ${act} } return rename(...a); };\n`;
  return runBuilt(cli.main, root, args, preload ? { preload } : {});
}

const recordOf = (root: string): ManifestEntry[] => parseManifest(readFileSync(new HostPaths(root).generatedManifest, 'utf8'), root);

/** The record the same store leaves when generated without interruption, on another host. */
function uninterruptedRecord(root: string): ManifestEntry[] {
  const calm = join(tempDir(), 'calm');
  buildFakeHost(calm, { ...threeGuestsHost(), store: readFileSync(join(root, 'etc/ap-persist/ap-persist.conf'), 'utf8') });
  expect(run(calm, ['generate', '--no-reload']).code).toBe(0);
  return recordOf(calm);
}
const pendingThere = (root: string): boolean => existsSync(new HostPaths(root).generatedPending);
const recordThere = (root: string): boolean => existsSync(new HostPaths(root).generatedManifest);
/** The link itself, wherever it points (a fake root has no unit for it to reach). */
const linkThere = (path: string): boolean => lstatSync(path, { throwIfNoEntry: false }) !== undefined;

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

    expect(recordOf(host)).toEqual(uninterruptedRecord(host));
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

describe('a later generate killed before its record (the record names the files as they were)', () => {
  const WANTS = 'etc/systemd/system/ap-persist-mdevs.target.wants';
  /** Generated for two guests, then guest2 moved to card 6 and guest3 defined in the store alone. */
  function edited(): string {
    const host = join(tempDir(), 'host');
    buildFakeHost(host, { ...threeGuestsHost(), store: TWO_GUESTS_STORE });
    expect(run(host, ['generate', '--no-reload']).code).toBe(0);
    expect(run(host, ['mdev', 'modify', GUEST2, '--adapters', '6', '--no-generate']).code).toBe(0);
    const d = run(host, ['mdev', 'define', GUEST3, '--name', 'guest3', '--adapters', '5', '--domains', '0x47', '--start', 'auto', '--no-generate']);
    expect(d.code, d.stderr).toBe(0);
    return host;
  }

  it("its files are generate's to every command: status and check see no other tool's change, mdev modify goes ahead, and uninstall removes the new guest's files", () => {
    const host = edited();
    // The list, guest2's definition, guest3's, guest3's wants link: all in place, then killed as the record is renamed.
    expect(run(host, ['generate', '--no-reload'], { rename: 4, then: 'kill-before' }).signal).toBe('SIGKILL');
    expect(pendingThere(host)).toBe(true);
    expect(linkThere(join(host, `${WANTS}/ap-persist-mdev@${GUEST3}.service`))).toBe(true);
    expect(recordOf(host).map((e) => e.path)).not.toContain(`etc/mdevctl.d/matrix/${GUEST3}`);
    for (const args of [['status'], ['check']]) {
      const r = runBuilt(cli.main, host, args);
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(0);
    }
    const status = spawnJson(host, ['--json', 'status']);
    expect(JSON.stringify(status.drift ?? [])).toBe('[]');
    const m = run(host, ['mdev', 'modify', GUEST1, '--start', 'manual', '--no-generate']);
    expect(m.code, m.stderr).toBe(0);
    const u = run(host, ['uninstall']);
    expect(u.code, u.stderr).toBe(0);
    for (const g of [GUEST1, GUEST2, GUEST3]) expect(existsSync(join(host, `etc/mdevctl.d/matrix/${g}`)), g).toBe(false);
    expect(linkThere(join(host, `${WANTS}/ap-persist-mdev@${GUEST3}.service`))).toBe(false);
  });

  it('the next generate completes it without --force, and leaves the record an uninterrupted run leaves', () => {
    const host = edited();
    expect(run(host, ['generate', '--no-reload'], { rename: 2, then: 'kill' }).signal).toBe('SIGKILL');
    // The store changes again meanwhile: guest2's definition is to change once more, over the killed run's.
    expect(run(host, ['mdev', 'modify', GUEST2, '--domains', '0x47', '--no-generate']).code).toBe(0);
    const g = run(host, ['generate', '--no-reload']);
    expect(g.code, g.stderr).toBe(0);
    expect(pendingThere(host)).toBe(false);
    expect(recordOf(host)).toEqual(uninterruptedRecord(host));
  });
});

describe('uninstall after two first runs killed in turn, the store edited between', () => {
  it('a file the list names twice, holding the first run\'s content, is removed', () => {
    const host = join(tempDir(), 'host');
    buildFakeHost(host, { ...threeGuestsHost(), store: TWO_GUESTS_STORE });
    // Run A: the list, guest2's definition, killed.
    expect(run(host, ['generate', '--no-reload'], { rename: 2, then: 'kill' }).signal).toBe('SIGKILL');
    expect(run(host, ['mdev', 'modify', GUEST2, '--adapters', '6', '--no-generate']).code).toBe(0);
    // Run B: its list (naming guest2's definition as both runs write it), killed before it moves any file.
    expect(run(host, ['generate', '--no-reload'], { rename: 1, then: 'kill' }).signal).toBe('SIGKILL');
    const named = parseManifest(readFileSync(new HostPaths(host).generatedPending, 'utf8'), host).filter((e) => e.path === `etc/mdevctl.d/matrix/${GUEST2}`);
    expect(named).toHaveLength(2);
    const u = run(host, ['uninstall']);
    expect(u.code, u.stderr).toBe(0);
    expect(existsSync(join(host, `etc/mdevctl.d/matrix/${GUEST2}`))).toBe(false);
    expect(pendingThere(host)).toBe(false);
  });
});

describe('a first run killed, then import from chzdev alone (a record naming 41-ap.rules only)', () => {
  it("uninstall still removes the killed run's definitions", () => {
    const host = join(tempDir(), 'host');
    buildFakeHost(host, { ...threeGuestsHost(), store: TWO_GUESTS_STORE });
    // The list, guest2's and guest1's definitions, 41-ap.rules: killed before the record.
    expect(run(host, ['generate', '--no-reload'], { rename: 4, then: 'kill' }).signal).toBe('SIGKILL');
    expect(existsSync(join(host, 'etc/udev/rules.d/41-ap.rules'))).toBe(true);
    const i = run(host, ['import', '--from', 'chzdev', '--no-generate']);
    expect(i.code, i.stderr).toBe(0);
    expect(recordThere(host)).toBe(true);
    const u = run(host, ['uninstall']);
    expect(u.code, u.stderr).toBe(0);
    for (const g of [GUEST1, GUEST2]) expect(existsSync(join(host, `etc/mdevctl.d/matrix/${g}`)), g).toBe(false);
    expect(existsSync(join(host, 'etc/udev/rules.d/41-ap.rules'))).toBe(false);
  });
});

describe('the record and the list stay inside --root', () => {
  it('etc/ap-persist linked to a directory outside the root: generate refuses before it changes anything (exit 1)', () => {
    const host = join(tempDir(), 'host');
    buildFakeHost(host, { ...threeGuestsHost(), store: TWO_GUESTS_STORE });
    const outside = join(tempDir(), 'outside');
    mkdirSync(outside);
    renameSync(join(host, 'etc/ap-persist/ap-persist.conf'), join(outside, 'ap-persist.conf'));
    renameSync(join(host, 'etc/ap-persist'), join(tempDir(), 'gone'));
    symlinkSync(outside, join(host, 'etc/ap-persist'));
    const g = run(host, ['generate', '--no-reload']);
    expect(g.code).toBe(1);
    expect(g.stderr).toContain('leads outside');
    expect(readdirSync(outside)).toEqual(['ap-persist.conf']);
    expect(existsSync(join(host, 'etc/mdevctl.d/matrix'))).toBe(false);
  });

  it('the same for a store edit that regenerates (mdev modify) and for import: refused before the store changes', () => {
    const host = join(tempDir(), 'host');
    buildFakeHost(host, { ...threeGuestsHost(), store: TWO_GUESTS_STORE });
    expect(run(host, ['generate', '--no-reload']).code).toBe(0);
    const outside = join(tempDir(), 'outside');
    renameSync(join(host, 'etc/ap-persist'), outside);
    symlinkSync(outside, join(host, 'etc/ap-persist'));
    const store = readFileSync(join(outside, 'ap-persist.conf'), 'utf8');
    const m = run(host, ['mdev', 'modify', GUEST2, '--adapters', '6']);
    expect(m.code).toBe(1);
    expect(m.stderr).toContain('leads outside');
    const i = run(host, ['import', '--from', 'mdevctl']);
    expect(i.code).toBe(1);
    expect(i.stderr).toContain('leads outside');
    expect(readFileSync(join(outside, 'ap-persist.conf'), 'utf8')).toBe(store);
  });
});

/** A command's JSON output, as the built CLI prints it. */
function spawnJson(root: string, args: string[]): any {
  const r = spawnSync(process.execPath, [cli.main, '--root', root, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  return JSON.parse(r.stdout);
}
