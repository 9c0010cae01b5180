// The bundle on the oldest node a distribution ships it with: Debian 12's
// nodejs (node 18), chrooted into its own Debian tree (test/support/debian-node.ts).
// package.json says "engines": ">=18.19" and the bundle targets node18; these
// smoke runs are what backs that: --version, check/status/generate on the
// example host, the boot hook on a fake root, the mdevctl callout as the
// installed one runs it (--jitless), install, a staged install and uninstall.
// Each answer is compared with the one the node running the tests gives.

import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeEach, describe, expect } from 'vitest';
import { buildFakeHost } from '../../src/fakehost/builder.js';
import { GUEST1, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { CALLOUT_NODE_FLAGS } from '../../src/generate/static-files.js';
import { packageVersion } from '../../src/package-info.js';
import { calloutArgs, deviceJson } from '../callout/support.js';
import { CHECKOUT_IN, debianNode, debianNodeRequirement, runDebianNode, SUITE, WORK_IN, type DebianNode, type NodeRun } from '../support/debian-node.js';
import { tempDir } from '../support/host.js';
import { itWith } from '../support/real-tools.js';

const CHECKOUT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = 'dist/bin/ap-persist.cjs';
const EXAMPLE = join(CHECKOUT, 'examples/three-guests');
const NEW_MDEV = '0d0d0d0d-0000-4000-8000-000000000001';
const HOOK_EVENT = { ACTION: 'change', DEVPATH: '/devices/ap', BINDINGS: 'complete', COMPLETECOUNT: '1' };

// Fetched on first use (about 20 MB from the Debian archive), then cached under
// /var/cache/ap-persist-test. Skipped only when a host tool is missing; a failed
// download or check fails the file.
const need = debianNodeRequirement();
const found: DebianNode | undefined = need.missing ? undefined : await debianNode();

describe(`the bundle on Debian 12's node (${SUITE}${found ? `, nodejs ${found.version}` : ''})`, () => {
  const node = found!;
  let work = '';

  beforeEach(() => {
    if (need.missing) return;
    work = tempDir('ap-persist-node18-');
    cpSync(EXAMPLE, join(work, 'example'), { recursive: true });
    buildFakeHost(join(work, 'host'), threeGuestsHost());
  });

  /** The bundle under Debian's node, with paths as the chroot sees them. */
  const debian = (args: string[], options: { env?: Record<string, string>; stdin?: string; nodeFlags?: string[] } = {}): Promise<NodeRun> =>
    runDebianNode(node, CHECKOUT, work, [...(options.nodeFlags ?? []), `${CHECKOUT_IN}/${BIN}`, ...args], options);

  /** The same with the node running the tests, its output with the paths as the chroot has them. */
  const here = (args: string[], options: { env?: Record<string, string>; stdin?: string; nodeFlags?: string[] } = {}): NodeRun => {
    const r = spawnSync(process.execPath, [...(options.nodeFlags ?? []), join(CHECKOUT, BIN), ...args.map((a) => a.replace(WORK_IN, work))], {
      encoding: 'utf8',
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...options.env },
      input: options.stdin ?? '',
    });
    const back = (t: string): string => t.split(work).join(WORK_IN).split(CHECKOUT.replace(/\/$/, '')).join(CHECKOUT_IN);
    return { code: r.status, stdout: back(r.stdout), stderr: back(r.stderr) };
  };

  itWith(need, 'is node 18 from Debian 12, and --version prints the package version', async () => {
    const v = await runDebianNode(node, CHECKOUT, work, ['--version']);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/^v18\.\d+\.\d+\n$/);
    expect(node.version).toMatch(/^18\./);
    const r = await debian(['--version']);
    expect(r).toEqual({ code: 0, stdout: `${packageVersion()}\n`, stderr: '' });
  });

  itWith(need, 'check, status, mask show and generate --dry-run on the example host answer as on this node', async () => {
    for (const args of [['check'], ['status'], ['--json', 'mask', 'show'], ['generate', '--dry-run'], ['mdev', 'list']]) {
      const full = ['--root', `${WORK_IN}/example`, ...args];
      const r = await debian(full);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      expect(r, args.join(' ')).toEqual(here(full));
    }
  });

  itWith(need, 'the boot hook on a fake root applies the store and writes its report', async () => {
    const r = await debian(['--root', `${WORK_IN}/host`, 'hook'], { env: HOOK_EVENT });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(readFileSync(join(work, 'host/run/ap-persist/last-hook.json'), 'utf8'));
    expect(report).toMatchObject({ exit_code: 0, vfio_ap: 'would-load' });
  });

  itWith(need, 'the mdevctl callout, run without the JIT as the installed one runs it, accepts, refuses and passes as on this node', async () => {
    const flags = CALLOUT_NODE_FLAGS.split(' ');
    const cases = [
      // A new auto mdev on guest1's queues: refused, with the reason.
      { call: { event: 'pre', action: 'define', uuid: NEW_MDEV }, stdin: deviceJson('auto', [5], [4]), code: 1 },
      // guest1 itself, as the store has it: accepted.
      { call: { event: 'pre', action: 'define', uuid: GUEST1 }, stdin: deviceJson('auto', [5, 6], [4, 0xab], [0xab]), code: 0 },
      // Another mdev type: not ours.
      { call: { event: 'pre', action: 'define', uuid: NEW_MDEV, type: 'mtty-2' }, stdin: '{"mdev_type":"mtty-2","start":"manual"}', code: 2 },
    ];
    for (const c of cases) {
      const args = ['--root', `${WORK_IN}/example`, 'callout', ...calloutArgs(c.call)];
      const r = await debian(args, { stdin: c.stdin, nodeFlags: flags });
      expect(r.code, `${c.call.action} ${c.call.uuid}: ${r.stderr}`).toBe(c.code);
      expect(r).toEqual(here(args, { stdin: c.stdin, nodeFlags: flags }));
    }
  });

  itWith(need, 'install (no systemctl in that tree: said, not fatal), a staged install and uninstall run', async () => {
    buildFakeHost(join(work, 'inst'), threeGuestsHost());
    const programs = ['--bin', `${CHECKOUT_IN}/${BIN}`, '--node', '/usr/bin/node'];
    const inst = await debian(['--root', `${WORK_IN}/inst`, '--json', 'install', ...programs]);
    expect(inst.code, inst.stderr).toBe(0);
    const doc = JSON.parse(inst.stdout);
    expect(doc.installed).toContain(`${WORK_IN}/inst/usr/lib/systemd/system/ap-persist-wait.service`);
    expect(doc.generate.written).toContain(`${WORK_IN}/inst/etc/udev/rules.d/41-ap.rules`);
    expect(doc.enable).toMatchObject({ state: 'not-applied', reason: 'systemctl is not installed here' });
    expect(inst.stderr).toContain("warning: ap-persist-wait.service not enabled (systemctl is not installed here); run 'systemctl --root=");

    const staged = await debian(['--root', `${WORK_IN}/stage`, '--json', 'install', '--staged', ...programs]);
    expect(staged.code, staged.stderr).toBe(0);
    // The rule, four units, the preset, two mdevctl callouts and libvirt's qemu hook.
    expect(JSON.parse(staged.stdout).installed).toHaveLength(9);

    const un = await debian(['--root', `${WORK_IN}/inst`, 'uninstall']);
    expect(un.code, un.stderr).toBe(0);
    expect(un.stdout).toContain(`removed ${WORK_IN}/inst/usr/lib/systemd/system-preset/80-ap-persist.preset`);
  });
});
