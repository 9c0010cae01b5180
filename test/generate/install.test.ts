// The package's post-install step: rules, units and the mdevctl callout in
// place with the tool's path filled in, then generate, then one reload.

import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lutimesSync, mkdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/cli/program.js';
import { THREE_GUESTS_STORE, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { HostPaths } from '../../src/host/paths.js';
import { givenHost, snapshotTree, tempDir, type TestHost } from '../support/host.js';
import { MDEVS_TARGET, TARGET_EVENTS } from '../../src/generate/unit-names.js';

const CALLOUTS = ['etc/mdevctl.d/scripts.d/callouts/ap-persist', 'usr/lib/mdevctl/scripts.d/callouts/ap-persist'];
/** libvirt's qemu hook: runs the tool with the callout's node and flags. */
const LIBVIRT_HOOK = 'etc/libvirt/hooks/qemu.d/ap-persist';
const UNITS = ['ap-persist-mdev@.service', 'ap-persist-hook@.service', 'ap-persist-mdevs.target', 'ap-persist-wait.service'].map((u) => `usr/lib/systemd/system/${u}`);
const unit = (name: string): string => `usr/lib/systemd/system/${name}`;
const RULE = 'usr/lib/udev/rules.d/42-ap-persist.rules';
const PRESET = 'usr/lib/systemd/system-preset/80-ap-persist.preset';

/** `ap-persist --root ROOT ARGS...` in-process, on any directory. */
async function runOn(root: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await run(['--root', root, ...args], { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env: {} });
  return { code, stdout, stderr };
}

describe('ap-persist install', () => {
  it('fills in --bin and --node everywhere units and callouts run the tool; the rule only hands the event to systemctl', async () => {
    const host = givenHost(threeGuestsHost());
    expect((await host.run('install', '--bin', '/opt/ap/bin/ap-persist', '--node', '/opt/node/bin/node')).code).toBe(0);
    for (const rel of [RULE, ...UNITS, ...CALLOUTS]) expect(host.read(rel), rel).not.toMatch(/@(BIN|NODE|SYSTEMCTL)@/);
    // No node inside udevd's sandbox: the rule queues the hook's unit, by absolute path.
    expect(host.read(RULE)).toContain('RUN+="/usr/bin/systemctl --no-block start ap-persist-hook@change-$env{COMPLETECOUNT}.service"');
    expect(host.read(RULE)).toContain('RUN+="/usr/bin/systemctl --no-block start ap-persist-hook@add.service ap-persist-mdevs.target"');
    // Every RUN of the rule is systemctl; node never runs inside udevd.
    const runs = [...host.read(RULE).matchAll(/RUN\+="([^"]*)"/g)].map((m) => m[1]!.split(' '));
    expect(runs.map((r) => r[0])).toEqual(['/usr/bin/systemctl', '/usr/bin/systemctl', '/usr/bin/systemctl', '/usr/bin/systemctl']);
    // The hook knows which of its instances come with the target queued behind them (it then starts
    // none of the target's units itself): exactly those the rule names with it.
    const withTarget = runs.filter((r) => r.includes(MDEVS_TARGET)).map((r) => /^ap-persist-hook@(.+)\.service$/.exec(r.find((a) => a.startsWith('ap-persist-hook@'))!)![1]);
    expect(withTarget.sort()).toEqual([...TARGET_EVENTS].sort());
    expect(host.read(unit('ap-persist-hook@.service'))).toContain('ExecStart=/opt/node/bin/node /opt/ap/bin/ap-persist hook --event %i\n');
    expect(host.read(unit('ap-persist-mdev@.service'))).toContain(
      'ExecStart=/opt/node/bin/node /opt/ap/bin/ap-persist mdev start %i\nExecStop=/opt/node/bin/node /opt/ap/bin/ap-persist mdev stop %i\n',
    );
    expect(host.read(unit('ap-persist-wait.service'))).toContain('ExecStart=/opt/node/bin/node /opt/ap/bin/ap-persist wait --timeout 90\n');
    for (const rel of CALLOUTS) {
      const script = host.read(rel);
      // Without the JIT (udevd's MemoryDenyWriteExecute), and "not my type" (2) once the tool is gone.
      expect(script).toMatch(/^#!\/bin\/sh\n/);
      expect(script).toContain('[ -r /opt/ap/bin/ap-persist ] || exit 2\n');
      expect(script).toContain('if [ ! -x /opt/node/bin/node ]; then\n');
      expect(script).toMatch(/\nexec \/opt\/node\/bin\/node --jitless --no-expose-wasm \/opt\/ap\/bin\/ap-persist callout "\$@"\n$/);
      expect(statSync(join(host.root, rel)).mode & 0o777, rel).toBe(0o755);
    }
    // libvirt's qemu hook: the callout's node and flags, by absolute path (libvirt gives only LC_ALL and PATH).
    const hook = host.read(LIBVIRT_HOOK);
    expect(hook).toMatch(/^#!\/bin\/sh\n/);
    expect(hook).toContain("printf '%s\\n' \"$xml\" | /opt/node/bin/node --jitless --no-expose-wasm /opt/ap/bin/ap-persist libvirt-hook -- \"$@\"\n");
    expect(statSync(join(host.root, LIBVIRT_HOOK)).mode & 0o777).toBe(0o755);
  });

  /** Installed with a stand-in tool (`script`) and this node, both under the root, so that a test can take either away. */
  async function installedWithStandIn(script: string): Promise<{ host: TestHost; bin: string; node: string }> {
    const host = givenHost(threeGuestsHost());
    const bin = join(host.root, 'opt/ap/ap-persist.cjs');
    const node = join(host.root, 'opt/node/bin/node');
    mkdirSync(dirname(bin), { recursive: true });
    mkdirSync(dirname(node), { recursive: true });
    writeFileSync(bin, script);
    symlinkSync(realpathSync(process.execPath), node);
    expect((await host.run('install', '--bin', bin, '--node', node)).code).toBe(0);
    return { host, bin, node };
  }

  it('the installed callout: 2 ("not my type") for other types and once the tool is gone; 1 with a reason when only node is gone', async () => {
    const { host, bin, node } = await installedWithStandIn("process.stdout.write('ran:' + process.execArgv.join(' ')); process.exit(0);\n");
    const callout = join(host.root, CALLOUTS[1]!);
    const call = (type: string): { status: number | null; stdout: string; stderr: string } => {
      const args = ['-t', type, '-e', 'pre', '-a', 'define', '-s', 'none', '-u', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '-p', 'matrix'];
      // No PATH at all, as under udev.
      const r = spawnSync(callout, args, { env: {}, encoding: 'utf8' });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    // vfio_ap: node runs the tool without its JIT.
    expect(call('vfio_ap-passthrough')).toEqual({ status: 0, stdout: 'ran:--jitless --no-expose-wasm', stderr: '' });
    // Another type: not ours, node never starts.
    expect(call('mtty-2')).toEqual({ status: 2, stdout: '', stderr: '' });
    // node moved away by an upgrade: refuse, and say how to mend it.
    rmSync(node);
    const noNode = call('vfio_ap-passthrough');
    expect(noNode.status).toBe(1);
    expect(noNode.stderr).toContain(`ap-persist: cannot check the vfio_ap mdev: ${node} is missing; run 'ap-persist install --node PATH' again`);
    expect(call('mtty-2').status).toBe(2);
    // The package removed: never block anything.
    rmSync(bin);
    expect(call('vfio_ap-passthrough')).toEqual({ status: 2, stdout: '', stderr: '' });
  });

  it("libvirt's qemu hook: node only for the calls that concern a vfio-ap guest, the XML passed on; reconnect never fails", async () => {
    // Echoes what it was given: flags, arguments, and the XML it read.
    const { host, bin, node } = await installedWithStandIn(
      "const i = require('fs').readFileSync(0, 'utf8'); process.stderr.write(JSON.stringify([process.execArgv.join(' '), process.argv.slice(2).join(' '), i])); process.exit(1);\n",
    );
    const script = join(host.root, LIBVIRT_HOOK);
    const vfioAp = readFileSync(new URL('../fixtures/libvirt/guest1.xml', import.meta.url), 'utf8');
    const plain = readFileSync(new URL('../fixtures/libvirt/no-vfio-ap.xml', import.meta.url), 'utf8');
    // As libvirt runs it: LC_ALL and PATH only, from /.
    const call = (xml: string, ...args: string[]) => spawnSync(script, args, { input: xml, env: { LC_ALL: 'C', PATH: '/usr/bin:/bin' }, cwd: '/', encoding: 'utf8' });
    const ran = call(vfioAp, 'Guest1', 'prepare', 'begin', '-');
    expect(ran.status).toBe(1);
    expect(JSON.parse(ran.stderr)).toEqual(['--jitless --no-expose-wasm', 'libvirt-hook -- Guest1 prepare begin -', vfioAp]);
    expect(ran.stdout).toBe('');
    // Not for us: 0 at once, node never starts (it would have exited 1).
    for (const args of [['Guest1', 'start', 'begin', '-'], ['Guest1', 'migrate', 'begin', '-'], ['Guest1', 'stopped', 'end', '-']]) expect(call(vfioAp, ...args).status, args.join(' ')).toBe(0);
    expect(call(plain, 'Plain', 'prepare', 'begin', '-')).toMatchObject({ status: 0, stdout: '', stderr: '' });
    // A failed reconnect would make libvirt kill the running guest.
    expect(call(vfioAp, 'Guest1', 'reconnect', 'begin', '-').status).toBe(0);
    rmSync(node);
    const noNode = call(vfioAp, 'Guest1', 'prepare', 'begin', '-');
    expect(noNode.status).toBe(1);
    expect(noNode.stderr).toContain(`ap-persist: cannot make the guest's vfio_ap mdevs: ${node} is missing`);
    expect(call(vfioAp, 'Guest1', 'reconnect', 'begin', '-').status).toBe(0);
    // The package removed: never stops a guest.
    rmSync(bin);
    expect(call(vfioAp, 'Guest1', 'prepare', 'begin', '-')).toMatchObject({ status: 0, stderr: '' });
  });

  it("warns when libvirt's AppArmor profile would deny the qemu hook its node (outside the standard bin directories)", async () => {
    const host = givenHost({ ...threeGuestsHost(), files: { 'etc/apparmor.d/usr.sbin.libvirtd': '# profile\n' } });
    const elsewhere = await host.run('install', '--node', '/opt/node/bin/node', '--bin', '/usr/lib/ap-persist/ap-persist.cjs');
    expect(elsewhere.stderr).toContain("warning: libvirt's AppArmor profile (/etc/apparmor.d/usr.sbin.libvirtd) lets its hooks run programs from /usr/bin, /usr/sbin, /bin, /sbin only, and node is /opt/node/bin/node");
    const standard = await host.run('install', '--node', '/usr/bin/node', '--bin', '/usr/lib/ap-persist/ap-persist.cjs');
    expect(standard.stderr).not.toContain('AppArmor');
    // Without the profile (AppArmor off, or another distribution): nothing to say.
    const plain = givenHost(threeGuestsHost());
    expect((await plain.run('install', '--node', '/opt/node/bin/node', '--bin', '/usr/lib/ap-persist/ap-persist.cjs')).stderr).not.toContain('AppArmor');
  });

  it('without --node, names node by the stable path that leads to the running one', async () => {
    const { defaultNode } = await import('../../src/generate/assets.js');
    const node = defaultNode();
    expect(realpathSync(node)).toBe(realpathSync(process.execPath));
    // /usr/bin/node when that is how this node is reached (no versioned file behind an alternatives link).
    if (realpathSync('/usr/bin/node') === realpathSync(process.execPath)) expect(node).toBe('/usr/bin/node');
  });

  it('without --bin and --node, runs this very package with the node running it', async () => {
    const host = givenHost(threeGuestsHost());
    await host.run('install');
    const node = (await import('../../src/generate/assets.js')).defaultNode();
    expect(host.read(unit('ap-persist-hook@.service'))).toMatch(new RegExp(`ExecStart=${node} /\\S+/dist/bin/ap-persist\\.cjs hook --event %i`));
  });

  it('takes systemctl from where the target system has it', async () => {
    const host = givenHost({ ...threeGuestsHost(), files: { 'bin/systemctl': '#!/bin/sh\n' } });
    chmodSync(join(host.root, 'bin/systemctl'), 0o755);
    await host.run('install', '--bin', '/usr/bin/ap-persist');
    expect(host.read(RULE)).toContain('RUN+="/bin/systemctl --no-block start ap-persist-hook@add.service ap-persist-mdevs.target"');
  });

  it('warns when the tool is not executable on the target system', async () => {
    const host = givenHost(threeGuestsHost());
    const r = await host.run('install', '--bin', '/usr/bin/ap-persist');
    expect(r.stderr).toContain(`warning: ${join(host.root, 'usr/bin/ap-persist')} is not a readable file`);
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

  it('a new --bin rewrites every file that runs the tool (three units, two callouts, the libvirt hook), and reloads systemd once', async () => {
    const host = givenHost(threeGuestsHost());
    await host.run('install', '--bin', '/usr/bin/ap-persist');
    const r = await host.json('install', '--bin', '/usr/local/bin/ap-persist');
    expect([...r.doc.installed].sort()).toEqual(
      [...CALLOUTS, LIBVIRT_HOOK, unit('ap-persist-hook@.service'), unit('ap-persist-mdev@.service'), unit('ap-persist-wait.service')].map((p) => join(host.root, p)).sort(),
    );
    expect(r.doc.reload.map((x: { command: string }) => x.command)).toEqual(['systemctl daemon-reload', 'systemctl try-reload-or-restart libvirtd.service', 'systemctl try-reload-or-restart virtqemud.service']);
    // libvirt finds a changed qemu hook on reload; neither daemon runs on this host.
    expect(r.doc.reload.slice(1).map((x: { ran: boolean }) => x.ran)).toEqual([false, false]);
  });

  it('refuses a --bin or --node that units and callouts could not run as written (exit 2, nothing written)', async () => {
    for (const option of ['--bin', '--node']) {
      for (const bad of ['ap-persist', '/opt/my tools/ap-persist', '/opt/%i/ap-persist', '/opt/$HOME/x', '/opt/x\ny']) {
        const host = givenHost(threeGuestsHost());
        const before = host.snapshot();
        const r = await host.run('install', option, bad);
        expect(r.code, `${option} ${bad}`).toBe(2);
        expect(r.stderr).toContain(`${option}: cannot use`);
        expect(host.snapshot()).toEqual(before);
      }
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
    // Install says what it did all the same, never "nothing was changed".
    expect(r.stderr).toMatch(/conflict\(s\); no boot file was generated \(the \d+ package file\(s\) above were installed\)/);
    expect(r.stderr).not.toContain('nothing was changed');
    expect(host.exists('etc/udev/rules.d/41-ap.rules')).toBe(false);
  });

  it('installs the preset that enables the boot wait, and the wait runs only when the boot has something of ours to apply', async () => {
    const host = givenHost(threeGuestsHost());
    expect((await host.run('install', '--bin', '/usr/bin/ap-persist')).code).toBe(0);
    expect(host.read(PRESET).split('\n').filter((l) => l && !l.startsWith('#'))).toEqual(['enable ap-persist-wait.service']);
    // Its conditions name exactly what generate (or chzdev) writes on the target system.
    const paths = new HostPaths('/');
    const wait = host.read(unit('ap-persist-wait.service'));
    expect(wait).toContain(`ConditionPathExists=|${paths.chzdevRules}\n`);
    expect(wait).toContain(`ConditionDirectoryNotEmpty=|${paths.generatedUnitsDir}/ap-persist-mdevs.target.wants\n`);
    for (const rel of UNITS) expect(host.read(rel), rel).toContain('\nDocumentation=man:ap-persist(8)\n');
  });
});

describe('ap-persist install --staged (a package build)', () => {
  const STATIC = [RULE, ...UNITS, PRESET, ...CALLOUTS, LIBVIRT_HOOK].sort();

  it("puts the package's files alone into the staging tree: no store, record, lock, state or enable links", async () => {
    const stage = tempDir('ap-persist-stage-');
    const r = await runOn(stage, 'install', '--staged', '--bin', '/usr/lib/ap-persist/ap-persist.cjs', '--node', '/usr/bin/node');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const tree = snapshotTree(stage);
    expect([...tree.keys()].sort()).toEqual(STATIC);
    for (const dir of ['etc/ap-persist', 'run', 'var', 'etc/systemd', 'etc/udev']) expect(existsSync(join(stage, dir)), dir).toBe(false);
    expect(tree.get(unit('ap-persist-hook@.service'))).toContain('ExecStart=/usr/bin/node /usr/lib/ap-persist/ap-persist.cjs hook --event %i\n');
    expect(r.stdout).toContain(`installed ${join(stage, PRESET)}`);
  });

  it('neither reads nor touches a store in the tree, nor sets ap-check aside, nor runs anything', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: '[masks]\nbogus = 1\n', files: { 'usr/lib/mdevctl/scripts.d/callouts/ap-check': '#!/bin/sh\nexit 0\n' } });
    const before = host.snapshot();
    const r = await host.json('install', '--staged', '--bin', '/usr/bin/ap-persist');
    expect(r.code, r.stderr).toBe(0);
    expect(r.doc).toMatchObject({ staged: true });
    expect(Object.keys(r.doc)).not.toContain('reload');
    const after = host.snapshot();
    expect([...after.keys()].filter((k) => !before.has(k)).sort()).toEqual(STATIC);
    for (const [k, v] of before) expect(after.get(k), k).toBe(v);
  });

  it('stages the same files a full install writes', async () => {
    const stage = tempDir('ap-persist-stage-');
    expect((await runOn(stage, 'install', '--staged', '--bin', '/usr/bin/ap-persist', '--node', '/usr/bin/node')).code).toBe(0);
    const host = givenHost(threeGuestsHost());
    expect((await host.run('install', '--bin', '/usr/bin/ap-persist', '--node', '/usr/bin/node')).code).toBe(0);
    const full = host.snapshot();
    for (const [k, v] of snapshotTree(stage)) expect(full.get(k), k).toBe(v);
    // The package then runs the post-install step on the target system; on the staged files it changes none of them.
    const post = await runOn(stage, '--json', 'install', '--bin', '/usr/bin/ap-persist', '--node', '/usr/bin/node', '--no-reload');
    expect(post.code, post.stderr).toBe(0);
    expect(JSON.parse(post.stdout).installed).toEqual([]);
  });
});

describe("the wait unit's stop", () => {
  it("removes this boot's verdict from /run (report and marks, as the hook names them), and nothing systemd or libvirt's hook keeps there", () => {
    const unit = readFileSync(new URL('../../units/ap-persist-wait.service', import.meta.url), 'utf8');
    const stop = /^ExecStop=\/bin\/rm -rf (.+)$/m.exec(unit);
    expect(stop, 'ExecStop=/bin/rm -rf ...').not.toBeNull();
    const paths = new HostPaths('/');
    expect(stop![1]!.split(' ').sort()).toEqual([paths.lastHook, paths.unitsStarted, paths.targetStarted, paths.heldDir].sort());
    for (const kept of [paths.unitMarksDir, paths.guestRecordsDir, '/run/ap-persist']) expect(stop![1]!.split(' ')).not.toContain(kept);
  });
});
