// The shipped units and the generated links, checked by systemd itself:
// `systemd-analyze verify` on every unit and instance (with man(1): their
// Documentation=man:ap-persist(8) found in the generated man page), and
// `systemctl --root` agreeing that the links are the ones `systemctl enable`
// makes, and that install enables through the preset once and uninstall disables.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect } from 'vitest';
import { GUEST1, GUEST2, GUEST3, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { mdevUnit } from '../../src/generate/unit-names.js';
import { givenHost, snapshotTree, type TestHost } from '../support/host.js';
import { itWith, requireTools } from '../support/real-tools.js';

const GUESTS = [GUEST1, GUEST2, GUEST3];
const UNITS = ['ap-persist-wait.service', 'ap-persist-mdevs.target', 'ap-persist-hook@change-1.service', 'ap-persist-hook@add.service', ...GUESTS.map(mdevUnit)];

/** The three-guest host installed with a real executable as the tool: verify checks ExecStart= exists. */
async function installedHost(bin?: string, node?: string): Promise<TestHost> {
  const host = givenHost(threeGuestsHost());
  const tool = bin ?? join(host.root, 'usr/bin/ap-persist');
  if (!bin) {
    mkdirSync(dirname(tool), { recursive: true });
    writeFileSync(tool, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  }
  const r = await host.run('install', '--bin', tool, ...(node ? ['--node', node] : []));
  expect(r.code, r.stderr).toBe(0);
  return host;
}

/** The man pages `npm run build` generates (dist/share/man/man8/ap-persist.8). */
const MAN_DIR = fileURLToPath(new URL('../../dist/share/man', import.meta.url));

/**
 * systemd-analyze verify with the root's unit directories searched first (the
 * trailing colon keeps the system's). It runs man(1) for each
 * Documentation=man: page; MANPATH finds ours where the package puts it.
 */
function verify(host: TestHost, units: string[]): { status: number | null; ours: string[]; stderr: string } {
  const r = spawnSync('systemd-analyze', ['verify', ...units], {
    encoding: 'utf8',
    env: { ...process.env, SYSTEMD_UNIT_PATH: `${host.root}/etc/systemd/system:${host.root}/usr/lib/systemd/system:`, MANPATH: `${MAN_DIR}:` },
    timeout: 15_000,
  });
  return { status: r.status, stderr: r.stderr, ours: r.stderr.split('\n').filter((l) => l.includes('ap-persist')) };
}

function systemctl(root: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('systemctl', [`--root=${root}`, ...args], { encoding: 'utf8', timeout: 15_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const links = (root: string): [string, string][] => [...snapshotTree(join(root, 'etc/systemd/system'))].filter(([, v]) => v.startsWith('-> '));

describe('the units, as systemd sees them', () => {
  // man(1) (man-db): verify looks up each unit's Documentation=man:ap-persist(8).
  const analyze = requireTools('systemd-analyze', 'man');
  const ctl = requireTools('systemctl');

  itWith(analyze, 'every shipped unit and every mdev instance passes systemd-analyze verify without a word, its man page included', async () => {
    expect(existsSync(join(MAN_DIR, 'man8/ap-persist.8')), 'npm run build makes the man page').toBe(true);
    const host = await installedHost();
    const r = verify(host, UNITS);
    expect(r.ours, r.stderr).toEqual([]);
    expect(r.status, r.stderr).toBe(0);
  });

  itWith(analyze, 'the check has teeth: a node that does not exist fails verify', async () => {
    const host = await installedHost(undefined, '/nonexistent/node');
    const r = verify(host, ['ap-persist-wait.service', 'ap-persist-hook@add.service']);
    expect(r.status).not.toBe(0);
    expect(r.ours.join('\n')).toContain('/nonexistent/node');
  });

  itWith(ctl, 'systemctl sees the boot wait and each auto mdev as enabled, and the target as not part of boot', async () => {
    const host = await installedHost();
    const enabled = systemctl(host.root, 'is-enabled', 'ap-persist-wait.service', ...GUESTS.map(mdevUnit));
    expect(enabled.stdout, enabled.stderr).toBe('enabled\n'.repeat(4));
    // No [Install]: nothing pulls the mdevs into the boot transaction before the hook.
    expect(systemctl(host.root, 'is-enabled', 'ap-persist-mdevs.target').stdout).toBe('static\n');
  });

  itWith(analyze, 'the check has teeth: a Documentation= page that does not exist fails verify', async () => {
    const host = await installedHost();
    const unit = join(host.root, 'usr/lib/systemd/system/ap-persist-wait.service');
    writeFileSync(unit, host.read('usr/lib/systemd/system/ap-persist-wait.service').replace('man:ap-persist(8)', 'man:ap-persist-nonexistent(8)'));
    const r = verify(host, ['ap-persist-wait.service']);
    expect(r.status).not.toBe(0);
    expect(r.ours.join('\n')).toContain('ap-persist-nonexistent(8)');
  });

  itWith(ctl, 'install enables the boot wait through the preset once; a systemctl disable then sticks; uninstall disables it', async () => {
    const host = await installedHost();
    const enabled = (): string => systemctl(host.root, 'is-enabled', 'ap-persist-wait.service').stdout.trim();
    expect(enabled()).toBe('enabled');
    expect(systemctl(host.root, 'disable', 'ap-persist-wait.service').status).toBe(0);
    const again = await host.json('install', '--bin', join(host.root, 'usr/bin/ap-persist'));
    expect(again.code, again.stderr).toBe(0);
    expect(again.doc.enable.state).toBe('done-before');
    expect(enabled()).toBe('disabled');
    // The admin's enable stands too, and uninstall takes it away with the unit.
    expect(systemctl(host.root, 'enable', 'ap-persist-wait.service').status).toBe(0);
    const removed = await host.json('uninstall');
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.doc.disable).toMatchObject({ units: ['ap-persist-wait.service'], ran: true });
    expect(links(host.root)).toEqual([]);
    expect(host.has('var/lib/ap-persist/preset-applied')).toBe(false);
    // Installed again: enabled again, as on a first install.
    expect((await host.run('install', '--bin', join(host.root, 'usr/bin/ap-persist'))).code).toBe(0);
    expect(enabled()).toBe('enabled');
  });

  itWith(ctl, 'generate makes exactly the links systemctl enable makes', async () => {
    const generated = await installedHost();
    const enabledByHand = givenHost({ ...threeGuestsHost(), store: '' });
    expect((await enabledByHand.run('install', '--bin', '/usr/bin/ap-persist')).code).toBe(0);
    const r = systemctl(enabledByHand.root, 'enable', 'ap-persist-wait.service', ...GUESTS.map(mdevUnit));
    expect(r.status, r.stderr).toBe(0);
    expect(links(generated.root)).toEqual(links(enabledByHand.root));
  });
});
