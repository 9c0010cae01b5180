// The real mdevctl (Debian's 1.2 here and in CI) edits the mdevs generate
// exported, with our callout installed as install writes it. Each story: the
// three-guest host after `generate`; in a private mount namespace, tmpfs
// copies of its /etc/mdevctl.d (plus the callout), /etc/ap-persist,
// /etc/udev/rules.d and /run/lock, and a /sys with a vfio_ap matrix parent
// mdevctl accepts; real mdevctl commands there; then mdevctl's definitions are
// copied back into the host root, and our CLI says what differs (status,
// check, the hook), refuses to write over it (generate), and takes it in
// (import) or puts the store's back (generate --force).

import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { run } from '../../src/cli/program.js';
import { buildFakeHost } from '../../src/fakehost/builder.js';
import { GUEST1, GUEST2, GUEST3, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { packageAssets } from '../../src/generate/assets.js';
import { CALLOUT_NODE_FLAGS } from '../../src/generate/static-files.js';
import { loadStore } from '../../src/store/store.js';
import { mdevPath, parseControlDomains, parseMatrix, PASSTHROUGH_CREATE } from '../../src/sysfs/ap-host.js';
import { SimKernel } from '../../src/sysfs/sim-kernel.js';
import { buildCli } from '../callout/support.js';
import { snapshotTree, tempDir, type RunResult } from '../support/host.js';
import { itWithTools, missingTools, mdevSysfsScript, runInNamespace } from '../support/namespace.js';

const TOOLS = ['mdevctl', 'bash'];
const BINDINGS = { ACTION: 'change', DEVPATH: '/devices/ap', BINDINGS: 'complete', COMPLETECOUNT: '1' };
const WAYS_OUT = "  keep the peers' change: 'ap-persist import'; or put the store's back: 'ap-persist generate --force'";
/** How generate's refusal names the two ways out. */
const GENERATE_WAYS_OUT = "to keep the other tool's change, run 'ap-persist import' (the store then holds it); to put the store's files back, run 'ap-persist generate --force'";
/** How the hook names them, before each drift it applied. */
const HOOK_DRIFT = "  drift (applied as on disk; 'ap-persist import' keeps it, 'ap-persist generate --force' undoes it): ";
/** A manual mdev on APQN 05.0004, which guest1 (auto) holds. */
const SPARE = '5ba4e000-0000-4000-8000-000000000005';

const MATRIX = 'etc/mdevctl.d/matrix';
const def = (uuid: string): string => `${MATRIX}/${uuid}`;
const link = (uuid: string): string => `etc/systemd/system/ap-persist-mdevs.target.wants/ap-persist-mdev@${uuid}.service`;
const unit = (uuid: string): string => `ap-persist-mdev@${uuid}.service`;

interface Host {
  root: string;
  run(...args: string[]): Promise<RunResult>;
  /** The AP bus hook on `BINDINGS=complete`, as its unit runs it. */
  hook(): Promise<RunResult>;
  read(rel: string): string;
  snapshot(): Map<string, string>;
  /** A copy of this host, to take the other way out on. */
  copy(): Host;
  /** One store mdev's matrix and start mode, as the store says them. */
  storeMdev(uuid: string): { adapters: string; domains: string; controlDomains: string; start: string } | undefined;
}

function hostAt(root: string): Host {
  const cli = async (args: string[], env: Record<string, string>): Promise<RunResult> => {
    let stdout = '';
    let stderr = '';
    const code = await run(['--root', root, ...args], { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env, journal: false });
    return { code, stdout, stderr };
  };
  return {
    root,
    run: (...args) => cli(args, {}),
    hook: () => cli(['hook'], BINDINGS),
    read: (rel) => readFileSync(join(root, rel), 'utf8'),
    snapshot: () => snapshotTree(root),
    copy() {
      const other = tempDir('ap-persist-edits-copy-');
      cpSync(root, other, { recursive: true, verbatimSymlinks: true });
      return hostAt(other);
    },
    storeMdev(uuid) {
      const m = loadStore(join(root, 'etc/ap-persist/ap-persist.conf')).store.mdevs.find((x) => x.uuid === uuid);
      return m && { adapters: m.adapters.toRanges(), domains: m.domains.toRanges(), controlDomains: m.controlDomains.toRanges(), start: m.start };
    },
  };
}

/** The three-guest host after `generate` (and `more`, our own edits, which regenerate at once). */
async function generatedHost(more: string[][] = []): Promise<Host> {
  const root = tempDir('ap-persist-edits-');
  buildFakeHost(root, threeGuestsHost());
  const host = hostAt(root);
  const g = await host.run('generate', '--no-reload');
  expect(g.code, g.stderr).toBe(0);
  for (const args of more) {
    const r = await host.run(...args);
    expect(r.code, r.stderr).toBe(0);
  }
  expect((await host.run('status')).stdout).toContain('boot files: up to date with the store');
  return host;
}

/** The store, the boot files and mdevctl agree again: generate changes nothing (on disk as `after`), status says so. */
async function expectInStep(host: Host, after = host.snapshot()): Promise<void> {
  const again = await host.run('generate', '--no-reload');
  expect(again.code, again.stderr).toBe(0);
  expect(again.stdout).toContain('nothing to change: the generated files match the store');
  expect(host.snapshot()).toEqual(after);
  expect((await host.run('status')).stdout).toContain('boot files: up to date with the store');
}

/** One drift (headline, then the difference) as `status` prints it. */
const statusBlock = (lines: string[]): string => [`  ${lines[0]}`, ...lines.slice(1).map((l) => `    ${l}`)].join('\n');
/** The same drift as a `check` warning. */
const checkBlock = (lines: string[]): string => [`warning (persistent): ${lines[0]}`, ...lines.slice(1).map((l) => `  ${l}`), WAYS_OUT].join('\n');
const changedHead = (uuid: string, name: string): string =>
  `mdevctl's definition of mdev ${uuid} (${name}) (/${def(uuid)}) was changed since ap-persist wrote it; the boot uses mdevctl's:`;

/** The files under etc/ (the store, the record, the boot files): what the hook must never write. */
function etcFiles(host: Host): [string, string][] {
  return [...host.snapshot()].filter(([path]) => path.startsWith('etc/'));
}

/**
 * The matrix vfio_ap builds when mdevctl starts the mdev: the simulated
 * kernel (6.0) on the three-guest host's cards, its queues freed as the store
 * says, `create`, then each attribute written in order as mdevctl writes it.
 */
function kernelBuilds(uuid: string, attrs: Record<string, string>[]): { adapters: string; domains: string; controlDomains: string } {
  const k = new SimKernel({ kernel: '6.0', cards: [{ adapter: 5, hwtype: 11 }, { adapter: 6, hwtype: 11 }], domains: [0x04, 0x47, 0xab, 0xff], vfioAp: true });
  k.write('bus/ap/apmask', '-5,-6');
  k.write('bus/ap/aqmask', '-4,-0x47,-0xab,-0xff');
  k.write(PASSTHROUGH_CREATE, uuid);
  for (const attr of attrs) for (const [key, value] of Object.entries(attr)) k.write(mdevPath(uuid, key), value);
  const { adapters, domains } = parseMatrix(k.read(mdevPath(uuid, 'matrix')));
  return { adapters: adapters.toRanges(), domains: domains.toRanges(), controlDomains: parseControlDomains(k.read(mdevPath(uuid, 'control_domains'))).toRanges() };
}

interface Step {
  rc: number;
  out: string;
  err: string;
}

describe('the real mdevctl edits the mdevs generate exported', () => {
  const cli = { build: undefined as Awaited<ReturnType<typeof buildCli>> | undefined };
  beforeAll(async () => {
    if (!missingTools(TOOLS)) cli.build = await buildCli();
  }, 120_000);
  afterAll(() => cli.build?.cleanup());

  /**
   * Runs `steps` (bash: `step NAME mdevctl ...`, `keep NAME` saves mdevctl's
   * definitions as they are then) in a private mount namespace on copies of
   * the host's files, then puts mdevctl's definitions back into the host root
   * in place of the ones there. Returns each step's outcome, and each kept
   * definition by name and UUID.
   */
  async function mdevctl(host: Host, steps: string): Promise<{ step(name: string): Step; kept(name: string, uuid: string): string }> {
    const work = tempDir('ap-persist-edits-ns-');
    const out = join(work, 'out');
    mkdirSync(out);
    writeFileSync(join(work, 'callout'), packageAssets().renderCallout({ node: process.execPath, nodeFlags: CALLOUT_NODE_FLAGS, bin: cli.build!.main }));
    const body = `
${mdevSysfsScript(`${host.root}`)}

fresh_dir /etc/mdevctl.d
cp -a ${host.root}/etc/mdevctl.d/. /etc/mdevctl.d/
mkdir -p /etc/mdevctl.d/scripts.d/callouts /etc/mdevctl.d/scripts.d/notifiers
cp ${work}/callout /etc/mdevctl.d/scripts.d/callouts/ap-persist
chmod 755 /etc/mdevctl.d/scripts.d/callouts/ap-persist
fresh_dir /etc/ap-persist
cp -a ${host.root}/etc/ap-persist/. /etc/ap-persist/
fresh_dir /etc/udev/rules.d
cp -a ${host.root}/etc/udev/rules.d/. /etc/udev/rules.d/
fresh_dir /run/lock

keep() { mkdir "$NS_OUT/$1.kept"; cp -a /etc/mdevctl.d/matrix/. "$NS_OUT/$1.kept/"; }
${steps}
step lock-left test -e /run/lock/s390apconfig.lock
keep final
`;
    const ns = await runInNamespace(body, work, out, 60_000);
    expect(ns, ns.stderr).toMatchObject({ code: 0 });
    const step = (name: string): Step => ({
      rc: Number(readFileSync(join(out, `${name}.rc`), 'utf8')),
      out: readFileSync(join(out, `${name}.out`), 'utf8'),
      err: readFileSync(join(out, `${name}.err`), 'utf8'),
    });
    // Every pre event took the lock for mdevctl; every post or refusal gave it back.
    expect(step('lock-left').rc).toBe(1);
    rmSync(join(host.root, MATRIX), { recursive: true });
    cpSync(join(out, 'final.kept'), join(host.root, MATRIX), { recursive: true });
    return { step, kept: (name, uuid) => readFileSync(join(out, `${name}.kept`, uuid), 'utf8') };
  }

  itWithTools(
    'modify --manual of an auto guest: accepted, shown as drift, generate refuses; import takes it, or generate --force writes auto back',
    TOOLS,
    async () => {
      const host = await generatedHost();
      const generated = new Map([GUEST1, GUEST2].map((u) => [u, host.read(def(u))]));
      const r = await mdevctl(
        host,
        `
step g2-manual mdevctl modify -u ${GUEST2} --manual
step g2-auto mdevctl modify -u ${GUEST2} --auto
step g1-manual mdevctl modify -u ${GUEST1} --manual
step list mdevctl list -d
`,
      );
      for (const name of ['g2-manual', 'g2-auto', 'g1-manual']) expect(r.step(name), name).toEqual({ rc: 0, out: '', err: '' });
      expect(r.step('list').out.trim().split('\n').sort()).toEqual(
        [`${GUEST1} matrix vfio_ap-passthrough manual`, `${GUEST2} matrix vfio_ap-passthrough auto`, `${GUEST3} matrix vfio_ap-passthrough auto`].sort(),
      );
      // mdevctl writes a definition exactly as generate does: there and back is no change at all.
      expect(host.read(def(GUEST2))).toBe(generated.get(GUEST2));
      expect(JSON.parse(host.read(def(GUEST1)))).toEqual({ ...JSON.parse(generated.get(GUEST1)!), start: 'manual' });

      const drift = [changedHead(GUEST1, 'guest1'), 'start auto -> manual'];
      const status = await host.run('status');
      expect(status.code).toBe(0);
      expect(status.stdout).toContain(
        ['boot files: 1 change(s) by other tools since ap-persist wrote them; the boot uses them:', statusBlock(drift), WAYS_OUT].join('\n'),
      );
      const check = await host.run('check');
      expect(check.code, check.stdout).toBe(0);
      expect(check.stderr).toContain(checkBlock(drift));

      // The hook never reverts mdevctl's change: guest1 is manual now, so it is not started.
      const hookHost = host.copy();
      const etc = etcFiles(hookHost);
      const hook = await hookHost.hook();
      expect(hook.code, hook.stderr).toBe(0);
      expect(hook.stdout + hook.stderr).toContain(`${HOOK_DRIFT}${drift.join('; ')}`);
      expect(etcFiles(hookHost)).toEqual(etc);
      const report = JSON.parse(hookHost.read('run/ap-persist/last-hook.json'));
      expect(report.drift).toEqual([drift.join('; ')]);
      expect(report.mdevs.map((m: { uuid: string; outcome: string }) => [m.uuid, m.outcome])).toEqual([
        [GUEST2, 'would-start'],
        [GUEST3, 'would-start'],
      ]);
      // The target wants guest1's linked unit too: the hook holds it back, with the reason.
      expect(report.commands.map((c: { command: string }) => c.command)).toEqual(['modprobe vfio_ap', `systemctl --no-block start ap-persist-mdevs.target ${unit(GUEST2)} ${unit(GUEST3)}`]);
      expect(hookHost.read(`run/ap-persist/held/${GUEST1}`)).toContain("not an auto mdev of the boot's configuration");

      const before = host.snapshot();
      const gen = await host.run('generate', '--no-reload');
      expect(gen.code).toBe(3);
      expect(gen.stderr).toContain(`mdevctl's definition of mdev ${GUEST1} (guest1) (${join(host.root, def(GUEST1))}) was changed since ap-persist wrote it; the boot uses mdevctl's:\n    start auto -> manual`);
      expect(gen.stderr).toContain(GENERATE_WAYS_OUT);
      expect(host.snapshot()).toEqual(before);

      // The other way out, on a copy: generate --force writes the store's auto back.
      const forced = host.copy();
      const force = await forced.run('generate', '--force', '--no-reload');
      expect(force.code, force.stderr).toBe(0);
      expect(force.stdout).toContain(`wrote ${join(forced.root, def(GUEST1))} (it was not ours: --force)`);
      expect(forced.read(def(GUEST1))).toBe(generated.get(GUEST1));
      expect(forced.storeMdev(GUEST1)?.start).toBe('auto');
      expect((await forced.run('status')).stdout).toContain('boot files: up to date with the store');

      const dry = await host.run('import', '--dry-run');
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stdout).toContain(`would import mdev ${GUEST1} (guest1): start manual (was auto) from mdevctl`);
      expect(host.snapshot()).toEqual(before);

      const imp = await host.run('import');
      expect(imp.code, imp.stderr).toBe(0);
      expect(imp.stdout).toContain(`imported mdev ${GUEST1} (guest1): start manual (was auto) from mdevctl`);
      expect(host.storeMdev(GUEST1)).toEqual({ adapters: '5-6', domains: '4,171', controlDomains: '171', start: 'manual' });
      expect(host.storeMdev(GUEST2)?.start).toBe('auto');
      expect(host.read(def(GUEST1))).toBe(r.kept('final', GUEST1));
      await expectInStep(host);
    },
    90_000,
  );

  itWithTools(
    'modify --auto of a manual mdev: accepted and imported where it conflicts with nothing, refused where it would share an APQN with an auto mdev',
    TOOLS,
    async () => {
      // guest3 made manual through us, and a manual spare on guest1's APQN 05.0004; both regenerated at once.
      const host = await generatedHost([
        ['mdev', 'modify', GUEST3, '--start', 'manual'],
        ['mdev', 'define', SPARE, '--adapters', '5', '--domains', '4', '--start', 'manual', '--name', 'spare'],
      ]);
      const spare = host.read(def(SPARE));
      expect(JSON.parse(spare).start).toBe('manual');
      expect(JSON.parse(host.read(def(GUEST3))).start).toBe('manual');
      const r = await mdevctl(
        host,
        `
step spare-auto mdevctl modify -u ${SPARE} --auto
keep after-refusal
step g3-auto mdevctl modify -u ${GUEST3} --auto
`,
      );
      const refused = r.step('spare-auto');
      expect(refused.rc).not.toBe(0);
      expect(refused.err).toContain(`ap-persist: refused to modify mdev ${SPARE}: APQN 05.0004 (5.4) is defined for autostart by ${GUEST1} (guest1)\n`);
      // Refused: mdevctl leaves the definition as generate wrote it, byte for byte.
      expect(r.kept('after-refusal', SPARE)).toBe(spare);
      expect(host.read(def(SPARE))).toBe(spare);
      expect(r.step('g3-auto')).toEqual({ rc: 0, out: '', err: '' });

      // Only the accepted change is drift; the refused one left nothing to report.
      const drift = [changedHead(GUEST3, 'guest3'), 'start manual -> auto'];
      const status = await host.run('status');
      expect(status.stdout).toContain(['boot files: 1 change(s) by other tools since ap-persist wrote them; the boot uses them:', statusBlock(drift), WAYS_OUT].join('\n'));
      expect(status.stdout).not.toContain(`mdev ${SPARE} (spare) (`);
      const check = await host.run('check');
      expect(check.code, check.stdout).toBe(0);
      expect(check.stderr).toContain(checkBlock(drift));
      expect(check.stderr).not.toContain(`mdev ${SPARE} (spare) (`);

      // The boot starts guest3 as mdevctl defines it now.
      const booted = host.copy();
      expect((await booted.hook()).code).toBe(0);
      const report = JSON.parse(booted.read('run/ap-persist/last-hook.json'));
      expect(report.mdevs.map((m: { uuid: string; outcome: string }) => [m.uuid, m.outcome])).toEqual([
        [GUEST1, 'would-start'],
        [GUEST2, 'would-start'],
        [GUEST3, 'would-start'],
      ]);

      const before = host.snapshot();
      expect((await host.run('generate', '--no-reload')).code).toBe(3);
      expect(host.snapshot()).toEqual(before);

      const imp = await host.run('import');
      expect(imp.code, imp.stderr).toBe(0);
      expect(imp.stdout).toContain(`imported mdev ${GUEST3} (guest3): start auto (was manual) from mdevctl`);
      expect(imp.stdout).not.toContain(SPARE);
      expect(host.storeMdev(GUEST3)).toEqual({ adapters: '6', domains: '71,255', controlDomains: '', start: 'auto' });
      expect(host.storeMdev(SPARE)).toEqual({ adapters: '5', domains: '4', controlDomains: '', start: 'manual' });
      expect(host.read(def(SPARE))).toBe(spare);
      // The import regenerated at once: guest3's unit is linked into the target again.
      expect(host.snapshot().get(link(GUEST3))).toBe(`-> /usr/lib/systemd/system/ap-persist-mdev@.service`);
      await expectInStep(host);
    },
    90_000,
  );

  itWithTools(
    'attribute edits (assign in hex, --delattr, unassign_adapter in and out of order): conflicts refused, the rest imported as the kernel builds the matrix',
    TOOLS,
    async () => {
      const host = await generatedHost();
      const generated = new Map([GUEST1, GUEST2, GUEST3].map((u) => [u, JSON.parse(host.read(def(u)))]));
      const r = await mdevctl(
        host,
        `
step g2-add-16 mdevctl modify -u ${GUEST2} --addattr assign_domain --value 0x10
keep after-16
step g2-add-ab mdevctl modify -u ${GUEST2} --addattr assign_domain --value 0xab
keep after-ab
step g2-del-255 mdevctl modify -u ${GUEST2} --delattr --index 2
step g2-add-octal mdevctl modify -u ${GUEST2} --addattr assign_domain --value 010
step g3-add-4-early mdevctl modify -u ${GUEST3} --addattr assign_domain --value 0x04
keep after-early
step g1-unassign-6 mdevctl modify -u ${GUEST1} --addattr unassign_adapter --value 6
step g3-unassign-first mdevctl modify -u ${GUEST3} --addattr unassign_adapter --value 6 --index 0
step g3-add-4-held mdevctl modify -u ${GUEST3} --addattr assign_domain --value 0x04
step g1-drop-6 mdevctl modify -u ${GUEST1} --delattr --index 1
step g3-add-4 mdevctl modify -u ${GUEST3} --addattr assign_domain --value 0x04
`,
      );
      const ok = { rc: 0, out: '', err: '' };
      expect(r.step('g2-add-16')).toEqual(ok);
      // 05.00ab is guest1's (auto).
      const ab = r.step('g2-add-ab');
      expect(ab.rc).not.toBe(0);
      expect(ab.err).toContain(`ap-persist: refused to modify mdev ${GUEST2}: APQN 05.00ab (5.171) is defined for autostart by ${GUEST1} (guest1)\n`);
      expect(r.kept('after-ab', GUEST2)).toBe(r.kept('after-16', GUEST2));
      expect(r.step('g2-del-255')).toEqual(ok);
      expect(r.step('g2-add-octal')).toEqual(ok);
      // 06.0004 is guest1's too, until guest1 gives adapter 6 up.
      const early = r.step('g3-add-4-early');
      expect(early.rc).not.toBe(0);
      expect(early.err).toContain(`ap-persist: refused to modify mdev ${GUEST3}: APQN 06.0004 (6.4) is defined for autostart by ${GUEST1} (guest1)\n`);
      expect(JSON.parse(r.kept('after-early', GUEST3))).toEqual(generated.get(GUEST3));
      expect(r.step('g1-unassign-6')).toEqual(ok);
      expect(r.step('g3-unassign-first')).toEqual(ok);
      // guest1 still writes assign_adapter 6 before its unassign_adapter 6 at every start, and
      // vfio_ap checks each write: whichever of the two starts second could fail. ap-check refuses too.
      const held = r.step('g3-add-4-held');
      expect(held.rc).not.toBe(0);
      expect(held.err).toContain(`ap-persist: refused to modify mdev ${GUEST3}: APQN 06.0004 (6.4) is defined for autostart by ${GUEST1} (guest1)\n`);
      // Deleting guest1's assign_adapter 6 really gives it up; the callout checks mdevctl's guest1 now.
      expect(r.step('g1-drop-6')).toEqual(ok);
      expect(r.step('g3-add-4')).toEqual(ok);

      // mdevctl keeps the values as given and the attributes in order.
      const attrs = (uuid: string): Record<string, string>[] => JSON.parse(host.read(def(uuid))).attrs;
      expect(attrs(GUEST1)).toEqual([...generated.get(GUEST1).attrs.filter((a: Record<string, string>) => a['assign_adapter'] !== '6'), { unassign_adapter: '6' }]);
      expect(attrs(GUEST2)).toEqual([{ assign_adapter: '5' }, { assign_domain: '71' }, { assign_domain: '0x10' }, { assign_domain: '010' }]);
      expect(attrs(GUEST3)).toEqual([{ unassign_adapter: '6' }, { assign_adapter: '6' }, { assign_domain: '71' }, { assign_domain: '255' }, { assign_domain: '0x04' }]);

      // The matrices vfio_ap builds from them: "0x10" is 16 and "010" 8 (kstrtoul), the unassign before guest3's assign removes nothing.
      const built = new Map([GUEST1, GUEST2, GUEST3].map((u) => [u, kernelBuilds(u, attrs(u))]));
      expect(built.get(GUEST1)).toEqual({ adapters: '5', domains: '4,171', controlDomains: '171' });
      expect(built.get(GUEST2)).toEqual({ adapters: '5', domains: '8,16,71', controlDomains: '' });
      expect(built.get(GUEST3)).toEqual({ adapters: '6', domains: '4,71,255', controlDomains: '' });
      const drifts = [
        [changedHead(GUEST1, 'guest1'), 'adapters 5-6 -> 5'],
        [changedHead(GUEST2, 'guest2'), 'domains 71,255 -> 8,16,71'],
        [changedHead(GUEST3, 'guest3'), 'domains 71,255 -> 4,71,255'],
      ];
      const status = await host.run('status');
      expect(status.stdout).toContain(
        ['boot files: 3 change(s) by other tools since ap-persist wrote them; the boot uses them:', ...drifts.map(statusBlock), WAYS_OUT].join('\n'),
      );
      const check = await host.run('check');
      expect(check.code, check.stdout).toBe(0);
      for (const d of drifts) expect(check.stderr).toContain(checkBlock(d));

      const before = host.snapshot();
      const gen = await host.run('generate', '--no-reload');
      expect(gen.code).toBe(3);
      expect(gen.stderr).toContain('refused: 3 file(s) in the way that another tool wrote, changed or removed; nothing was changed');
      expect(gen.stderr).toContain(GENERATE_WAYS_OUT);
      expect(host.snapshot()).toEqual(before);

      const dry = await host.run('import', '--dry-run');
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stdout).toContain(`would import mdev ${GUEST2} (guest2): adapters 5, domains 8,16,71, start auto from mdevctl (replaces the store's)`);
      expect(host.snapshot()).toEqual(before);

      const imp = await host.run('import');
      expect(imp.code, imp.stderr).toBe(0);
      expect(imp.stdout).toContain(`imported mdev ${GUEST1} (guest1): adapters 5, domains 4,171, control domains 171, start auto from mdevctl (replaces the store's)`);
      expect(imp.stdout).toContain(`imported mdev ${GUEST2} (guest2): adapters 5, domains 8,16,71, start auto from mdevctl (replaces the store's)`);
      expect(imp.stdout).toContain(`imported mdev ${GUEST3} (guest3): adapters 6, domains 4,71,255, start auto from mdevctl (replaces the store's)`);
      for (const u of [GUEST1, GUEST2, GUEST3]) expect(host.storeMdev(u), u).toEqual({ ...built.get(u), start: 'auto' });
      await expectInStep(host);
      expect((await host.run('check')).code).toBe(0);
    },
    90_000,
  );

  itWithTools(
    'undefine of an auto guest: reported, not started by the hook; import removes it from the store, or generate --force defines it again',
    TOOLS,
    async () => {
      const host = await generatedHost();
      const generated = host.read(def(GUEST3));
      const r = await mdevctl(
        host,
        `
step undefine mdevctl undefine -u ${GUEST3}
step list mdevctl list -d
`,
      );
      expect(r.step('undefine')).toEqual({ rc: 0, out: '', err: '' });
      expect(r.step('list').out.trim().split('\n').sort()).toEqual([`${GUEST1} matrix vfio_ap-passthrough auto`, `${GUEST2} matrix vfio_ap-passthrough auto`].sort());
      expect(host.snapshot().has(def(GUEST3))).toBe(false);

      const line = `mdev ${GUEST3} (guest3) was undefined in mdevctl (/${def(GUEST3)} is gone); the boot does not start it`;
      const status = await host.run('status');
      expect(status.stdout).toContain(['boot files: 1 change(s) by other tools since ap-persist wrote them; the boot uses them:', statusBlock([line]), WAYS_OUT].join('\n'));
      const check = await host.run('check');
      expect(check.code, check.stdout).toBe(0);
      expect(check.stderr).toContain(checkBlock([line]));

      // The hook starts guest1 and guest2 alone: not the target, which would pull guest3's linked unit in.
      const booted = host.copy();
      const etc = etcFiles(booted);
      const hook = await booted.hook();
      expect(hook.code, hook.stderr).toBe(0);
      expect(hook.stdout + hook.stderr).toContain(`${HOOK_DRIFT}${line}`);
      expect(etcFiles(booted)).toEqual(etc);
      expect(booted.snapshot().has(def(GUEST3))).toBe(false);
      const report = JSON.parse(booted.read('run/ap-persist/last-hook.json'));
      expect(report.drift).toEqual([line]);
      expect(report.mdevs.map((m: { uuid: string; outcome: string }) => [m.uuid, m.outcome])).toEqual([
        [GUEST1, 'would-start'],
        [GUEST2, 'would-start'],
      ]);
      expect(report.commands.map((c: { command: string }) => c.command)).toEqual(['modprobe vfio_ap', `systemctl --no-block start ap-persist-mdevs.target ${unit(GUEST1)} ${unit(GUEST2)}`]);
      expect(booted.read(`run/ap-persist/held/${GUEST3}`)).toContain("not an auto mdev of the boot's configuration");

      const before = host.snapshot();
      const gen = await host.run('generate', '--no-reload');
      expect(gen.code).toBe(3);
      expect(gen.stderr).toContain(`mdev ${GUEST3} (guest3) was undefined in mdevctl (${join(host.root, def(GUEST3))} is gone); the boot does not start it`);
      expect(gen.stderr).toContain(GENERATE_WAYS_OUT);
      expect(host.snapshot()).toEqual(before);

      // One way out, on a copy: generate --force defines guest3 again, as it was.
      const forced = host.copy();
      const force = await forced.run('generate', '--force', '--no-reload');
      expect(force.code, force.stderr).toBe(0);
      expect(force.stdout).toContain(`wrote ${join(forced.root, def(GUEST3))} (it was not ours: --force)`);
      expect(forced.read(def(GUEST3))).toBe(generated);
      expect(forced.storeMdev(GUEST3)?.start).toBe('auto');
      expect((await forced.run('status')).stdout).toContain('boot files: up to date with the store');

      const dry = await host.run('import', '--dry-run');
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stdout).toContain(`would import undefine of mdev ${GUEST3} (guest3) from mdevctl`);
      expect(host.snapshot()).toEqual(before);

      // The other: import takes the undefine.
      const imp = await host.run('import');
      expect(imp.code, imp.stderr).toBe(0);
      expect(imp.stdout).toContain(`imported undefine of mdev ${GUEST3} (guest3) from mdevctl`);
      expect(host.storeMdev(GUEST3)).toBeUndefined();
      expect(host.read('etc/ap-persist/ap-persist.conf')).not.toContain(GUEST3);
      const after = host.snapshot();
      expect(after.has(def(GUEST3))).toBe(false);
      expect(after.has(link(GUEST3))).toBe(false);
      await expectInStep(host, after);
      // Now the target holds exactly guest1 and guest2: the hook starts it.
      expect((await host.hook()).code).toBe(0);
      expect(JSON.parse(host.read('run/ap-persist/last-hook.json')).commands.map((c: { command: string }) => c.command)).toEqual([
        'modprobe vfio_ap',
        `systemctl --no-block start ap-persist-mdevs.target ${unit(GUEST1)} ${unit(GUEST2)}`,
      ]);
    },
    90_000,
  );

  itWithTools(
    'an attribute vfio_ap does not have (--addattr foo): the callout refuses it; written by hand, it is reported and import refuses it (2) naming it, with no file changed',
    TOOLS,
    async () => {
      const host = await generatedHost();
      const generated = host.read(def(GUEST2));
      const r = await mdevctl(host, `step foo mdevctl modify -u ${GUEST2} --addattr foo --value bar\n`);
      // mdevctl 1.2 takes any attribute name; vfio_ap has no such file, so every start would fail.
      const foo = r.step('foo');
      expect(foo.rc).not.toBe(0);
      expect(foo.err).toContain(`ap-persist: refused to modify mdev ${GUEST2}: attribute 'foo' is not one of vfio_ap's (assign_*, unassign_* and ap_config are): the mdev would fail to start\n`);
      expect(host.read(def(GUEST2))).toBe(generated);

      // An admin's editor (or mdevctl with no callout) writes it all the same.
      writeFileSync(join(host.root, def(GUEST2)), JSON.stringify({ ...JSON.parse(generated), attrs: [...JSON.parse(generated).attrs, { foo: 'bar' }] }, null, 2));

      const drift = [changedHead(GUEST2, 'guest2'), 'attribute {"foo":"bar"} the store cannot hold'];
      const status = await host.run('status');
      expect(status.stdout).toContain(['boot files: 1 change(s) by other tools since ap-persist wrote them; the boot uses them:', statusBlock(drift), WAYS_OUT].join('\n'));
      const check = await host.run('check');
      expect(check.code, check.stdout).toBe(0);
      expect(check.stderr).toContain(checkBlock(drift));

      const before = host.snapshot();
      expect((await host.run('generate', '--no-reload')).code).toBe(3);
      for (const args of [['import', '--dry-run'], ['import'], ['import', '--from', 'mdevctl', '--prefer', 'imported']]) {
        const imp = await host.run(...args);
        expect(imp.code, args.join(' ')).toBe(2);
        expect(imp.stderr).toContain(`mdevctl's definition of mdev ${GUEST2} (guest2) sets {"foo":"bar"}, which the store cannot hold`);
        expect(imp.stdout).toBe('');
        expect(host.snapshot()).toEqual(before);
      }

      // generate --force writes the store's definition back, without the attribute.
      const force = await host.run('generate', '--force', '--no-reload');
      expect(force.code, force.stderr).toBe(0);
      expect(host.read(def(GUEST2))).toBe(generated);
      expect((await host.run('status')).stdout).toContain('boot files: up to date with the store');
    },
    90_000,
  );
});
