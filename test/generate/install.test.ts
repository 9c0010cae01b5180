// The package's post-install step: rules, units and the mdevctl callout in
// place with the tool's path filled in, then generate, then one reload.

import { lutimesSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { THREE_GUESTS_STORE, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { givenHost } from '../support/host.js';

const CALLOUTS = ['etc/mdevctl.d/scripts.d/callouts/ap-persist', 'usr/lib/mdevctl/scripts.d/callouts/ap-persist'];
const UNITS = ['ap-persist-mdev@.service', 'ap-persist-mdevs.target', 'ap-persist-wait.service'].map((u) => `usr/lib/systemd/system/${u}`);
const RULE = 'usr/lib/udev/rules.d/42-ap-persist.rules';

describe('ap-persist install', () => {
  it('fills in --bin everywhere the rules, units and callouts run the tool', async () => {
    const host = givenHost(threeGuestsHost());
    expect((await host.run('install', '--bin', '/opt/ap/bin/ap-persist')).code).toBe(0);
    for (const rel of [RULE, ...UNITS, ...CALLOUTS]) expect(host.read(rel), rel).not.toContain('@BIN@');
    expect(host.read(RULE)).toContain('RUN+="/opt/ap/bin/ap-persist hook"');
    expect(host.read(UNITS[0]!)).toContain('ExecStart=/opt/ap/bin/ap-persist mdev start %i\nExecStop=/opt/ap/bin/ap-persist mdev stop %i\n');
    for (const rel of CALLOUTS) {
      expect(host.read(rel)).toMatch(/^#!\/bin\/sh\n[^]*\nexec \/opt\/ap\/bin\/ap-persist callout "\$@"\n$/);
      expect(statSync(join(host.root, rel)).mode & 0o777, rel).toBe(0o755);
    }
  });

  it('without --bin, runs this very package: its bin, dist/bin/ap-persist.cjs', async () => {
    const host = givenHost(threeGuestsHost());
    await host.run('install');
    expect(host.read(RULE)).toMatch(/RUN\+="\/\S+\/dist\/bin\/ap-persist\.cjs hook"/);
  });

  it('warns when the tool is not executable on the target system', async () => {
    const host = givenHost(threeGuestsHost());
    const r = await host.run('install', '--bin', '/usr/bin/ap-persist');
    expect(r.stderr).toContain(`warning: ${join(host.root, 'usr/bin/ap-persist')} is not an executable file`);
  });

  it('a second install changes nothing and keeps the mtimes', async () => {
    const host = givenHost(threeGuestsHost());
    await host.run('install', '--bin', '/usr/bin/ap-persist');
    const past = new Date('2020-01-01T00:00:00Z');
    for (const rel of [RULE, ...UNITS, ...CALLOUTS]) lutimesSync(join(host.root, rel), past, past);
    const r = await host.json('install', '--bin', '/usr/bin/ap-persist');
    expect(r.code).toBe(0);
    expect(r.doc.installed).toEqual([]);
    expect(r.doc.generate.written).toEqual([]);
    expect(r.doc.reload).toEqual([]);
    for (const rel of [RULE, ...UNITS, ...CALLOUTS]) expect(statSync(join(host.root, rel)).mtime, rel).toEqual(past);
  });

  it('a new --bin rewrites every file that runs the tool, and reloads udev and systemd once', async () => {
    const host = givenHost(threeGuestsHost());
    await host.run('install', '--bin', '/usr/bin/ap-persist');
    const r = await host.json('install', '--bin', '/usr/local/bin/ap-persist');
    const target = join(host.root, 'usr/lib/systemd/system/ap-persist-mdevs.target');
    expect(r.doc.installed).toHaveLength(5);
    expect(r.doc.installed).not.toContain(target);
    expect(r.doc.reload.map((x: { command: string }) => x.command)).toEqual(['udevadm control --reload', 'systemctl daemon-reload']);
  });

  it('refuses a --bin that rules and units could not run as written (exit 2, nothing written)', async () => {
    for (const bad of ['ap-persist', '/opt/my tools/ap-persist', '/opt/%i/ap-persist', '/opt/$HOME/x']) {
      const host = givenHost(threeGuestsHost());
      const before = host.snapshot();
      const r = await host.run('install', '--bin', bad);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toContain('--bin: cannot use');
      expect(host.snapshot()).toEqual(before);
    }
  });

  it('a broken store stops install (exit 2) before any file is written', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: '[masks]\napmask = 0-4,7-255\nbogus = 1\n' });
    const before = host.snapshot();
    const r = await host.run('install', '--bin', '/usr/bin/ap-persist');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('ap-persist.conf:3');
    expect(host.snapshot()).toEqual(before);
  });

  it('installs the static files even when the store has conflicts, then refuses to generate (exit 3)', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: THREE_GUESTS_STORE.replace(/(name = guest3\nadapters = )6/, '$15') });
    const r = await host.run('install', '--bin', '/usr/bin/ap-persist');
    expect(r.code).toBe(3);
    expect(r.stdout).toContain(`installed ${join(host.root, RULE)}`);
    expect(r.stderr).toContain('at boot these mdevs would fail to start');
    expect(host.exists('etc/udev/rules.d/41-ap.rules')).toBe(false);
  });
});
