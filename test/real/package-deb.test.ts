// The .deb that `npm run package` builds: its contents and maintainer scripts,
// lintian's verdict, and its life on a booted Debian 12 (systemd as PID 1 in
// systemd-nspawn, the simulated kernel at /sys): `apt install` pulls Debian's
// nodejs from a local archive and the postinst installs and generates; after
// a reboot the guests' mdevs come up before libvirt; an upgrade keeps the
// store and regenerates the boot files; `apt remove` takes the boot files and
// the callouts away and keeps the store, and mdevctl goes on working for other
// mdev types; `apt purge` deletes the store. A package that brings back
// s390-tools' ap-check triggers the postinst, which sets it aside again.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect } from 'vitest';
import { GUEST1, GUEST2, GUEST3, THREE_GUESTS_STORE, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { mdevUnit } from '../../src/generate/unit-names.js';
import type { SimMdevState } from '../../src/sysfs/sim-kernel.js';
import { bootPackageHost, DEBS, makeDisk, type AppliedEvent, type Disk, type PackageHost } from '../support/package-host.js';
import { buildApCheckDeb, buildDebs, enginesNodeMin, UPGRADE_MARK, UPGRADED_DESCRIPTION, type BuiltDebs } from '../support/packages.js';
import { itWith, requireTools, type Requirement } from '../support/real-tools.js';
import { requireSimSysfs } from '../support/sim-sysfs/mount.js';

const build = requireTools('dpkg-deb', 'tar');
const lint = requireTools('dpkg-deb', 'tar', 'lintian');
const tools = requireSimSysfs('systemd-nspawn', 'debootstrap', 'nsenter', 'unshare', 'setpriv', 'flock', 'dpkg-deb', 'tar', 'python3');
const booted: Requirement = process.getuid?.() === 0 ? tools : { missing: [tools.missing, 'not root (nspawn needs it)'].filter(Boolean).join('; ') };

const GUESTS = [GUEST1, GUEST2, GUEST3];
/** An mdev added to the store before the upgrade, with --no-generate: the upgrade's generate writes it out. */
const SPARE = 'dddddddd-0000-4000-8000-00000000d00d';
/** An mdev of another type, defined and started through mdevctl once ap-persist is removed. */
const MTTY = 'eeeeeeee-0000-4000-8000-00000000e770';

const TOOL = '/usr/lib/ap-persist/dist/bin/ap-persist.cjs';
const UNITS = ['ap-persist-hook@.service', 'ap-persist-mdev@.service', 'ap-persist-mdevs.target', 'ap-persist-wait.service'];
const CALLOUTS = ['/usr/lib/mdevctl/scripts.d/callouts/ap-persist', '/etc/mdevctl.d/scripts.d/callouts/ap-persist'];
/** What the package's files and `install` put under /usr and /etc. */
const INSTALLED = [
  '/usr/sbin/ap-persist',
  TOOL,
  '/usr/lib/udev/rules.d/42-ap-persist.rules',
  ...UNITS.map((u) => `/usr/lib/systemd/system/${u}`),
  '/usr/lib/systemd/system-preset/80-ap-persist.preset',
  ...CALLOUTS,
];
/** What generate writes for the three-guest store. */
const GENERATED = [
  '/etc/udev/rules.d/41-ap.rules',
  '/etc/ap-persist/generated.json',
  ...GUESTS.map((u) => `/etc/systemd/system/ap-persist-mdevs.target.wants/${mdevUnit(u)}`),
  ...GUESTS.map((u) => `/etc/mdevctl.d/matrix/${u}`),
];
const STORE = '/etc/ap-persist/ap-persist.conf';
const AP_CHECK = '/usr/lib/mdevctl/scripts.d/callouts/ap-check';
const AP_CHECK_ASIDE = `/var/lib/ap-persist/set-aside${AP_CHECK}`;

let debs: Promise<BuiltDebs> | undefined;
const built = (): Promise<BuiltDebs> => (debs ??= buildDebs());

const scratch: string[] = [];
afterAll(() => {
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The .deb unpacked (dpkg-deb -R: the files and DEBIAN/). */
function unpack(deb: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'ap-persist-deb-x-'));
  scratch.push(dir);
  execFileSync('dpkg-deb', ['-R', deb, dir]);
  return dir;
}

describe('the .deb', () => {
  itWith(
    build,
    'holds the bundled tool with its node modules, the launcher, the rule, units and callout rendered for /usr/bin/node, docs and the maintainer scripts; no tests, bench or simulator',
    async () => {
      const { deb, version } = await built();
      expect(deb).toMatch(new RegExp(`/ap-persist_${version.replace('-', '~')}_all\\.deb$`));
      const list = execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8' });
      const files = list
        .split('\n')
        .filter((l) => l && !l.startsWith('d'))
        .map((l) => l.slice(l.indexOf('./') + 1).replace(/ -> .*$/, ''));
      const dir = unpack(deb);
      const info = (field: string): string => execFileSync('dpkg-deb', ['-f', deb, field], { encoding: 'utf8' }).trim();

      expect(info('Package')).toBe('ap-persist');
      expect(info('Architecture')).toBe('all');
      // Debian's nodejs, at the version package.json's engines asks for.
      expect(info('Depends')).toMatch(new RegExp(`^nodejs \\(>= ${escape(enginesNodeMin())}\\), `));
      // Every file root's, under /usr only (the store and what install writes under /etc are not the package's files).
      for (const line of list.split('\n').filter(Boolean)) expect(line, line).toContain(' root/root ');
      expect(files.filter((f) => !f.startsWith('/usr/'))).toEqual([]);
      for (const f of [TOOL, '/usr/lib/ap-persist/dist/bin/start.cjs', '/usr/lib/ap-persist/dist/bin/hook.cjs', '/usr/lib/ap-persist/dist/bin/callout.cjs', '/usr/lib/ap-persist/dist/bin/unit.cjs', '/usr/lib/ap-persist/dist/bin/program.cjs', '/usr/lib/ap-persist/dist/bin/handlebars.cjs', '/usr/lib/ap-persist/package.json', '/usr/lib/ap-persist/templates/41-ap.rules.hbs', '/usr/lib/ap-persist/templates/mdevctl-callout.sh.hbs']) {
        expect(files, f).toContain(f);
      }
      for (const f of INSTALLED.filter((p) => p.startsWith('/usr/'))) expect(files, f).toContain(f);
      // What the bundles were made of (scripts/bundle.ts), and nothing of the development tree.
      for (const m of ['commander', 'handlebars', 'ini']) expect(files, m).toContain(`/usr/lib/ap-persist/node_modules/${m}/package.json`);
      for (const f of files) expect(f, f).not.toMatch(/\/(dist\/src|dist\/bench|dist\/examples|bench|examples|test|sim-sysfs|esbuild|vitest|typescript|uglify-js)\//);
      // The man page and the bash completion, when the build made them (it does: npm run build).
      expect(files).toContain('/usr/share/man/man8/ap-persist.8.gz');
      expect(files).toContain('/usr/share/bash-completion/completions/ap-persist');
      for (const f of ['copyright', 'changelog.gz', 'README.md.gz']) expect(files).toContain(`/usr/share/doc/ap-persist/${f}`);

      // The copyright file in Debian's format, with the project's license text and each bundled module's.
      const copyright = readFileSync(join(dir, 'usr/share/doc/ap-persist/copyright'), 'utf8');
      expect(copyright).toMatch(/^Format: https:\/\/www\.debian\.org\/doc\/packaging-manuals\/copyright-format\/1\.0\/\n/);
      expect(copyright).toMatch(/\nFiles: \*\nCopyright: .+\nLicense: MIT\n/);
      let license: string | undefined;
      try {
        license = readFileSync(new URL('../../LICENSE', import.meta.url), 'utf8');
      } catch {
        license = undefined;
      }
      const firstWords = license?.split('\n').find((l) => l.trim() && !/^\s*copyright\b/i.test(l))?.trim();
      if (firstWords) expect(copyright).toContain(` ${firstWords}`);
      for (const m of ['commander', 'handlebars', 'ini']) expect(copyright).toContain(`Files: usr/lib/ap-persist/node_modules/${m}/*`);

      // Rendered for the distribution's node and the packaged tool, as the postinst's install renders them.
      const unit = readFileSync(join(dir, 'usr/lib/systemd/system/ap-persist-hook@.service'), 'utf8');
      expect(unit).toContain(`ExecStart=/usr/bin/node ${TOOL} hook --event %i`);
      expect(readFileSync(join(dir, 'usr/lib/mdevctl/scripts.d/callouts/ap-persist'), 'utf8')).toContain(`exec /usr/bin/node --jitless --no-expose-wasm ${TOOL} callout "$@"`);
      expect(readFileSync(join(dir, 'usr/sbin/ap-persist'), 'utf8')).toContain(`exec /usr/bin/node ${TOOL} "$@"`);

      // Maintainer scripts: plain sh, executable, every action handled.
      for (const s of ['postinst', 'prerm', 'postrm']) {
        const path = join(dir, 'DEBIAN', s);
        execFileSync('sh', ['-n', path]);
        const text = readFileSync(path, 'utf8');
        expect(text, s).toMatch(/^#!\/bin\/sh\n/);
        expect(text, s).toMatch(/\nset -e\n/);
      }
      const postinst = readFileSync(join(dir, 'DEBIAN/postinst'), 'utf8');
      expect(postinst).toContain('configure|abort-upgrade|abort-remove|abort-deconfigure|triggered)');
      expect(postinst).toContain('"$NODE" "$TOOL" install --node "$NODE" --bin "$TOOL"');
      expect(readFileSync(join(dir, 'DEBIAN/prerm'), 'utf8')).toMatch(/remove\)\n[\s\S]*"\$NODE" "\$TOOL" uninstall\n/);
      expect(readFileSync(join(dir, 'DEBIAN/postrm'), 'utf8')).toMatch(/purge\)\n[\s\S]*rm -f "\/etc\/ap-persist\/\$f"/);
      expect(readFileSync(join(dir, 'DEBIAN/triggers'), 'utf8')).toContain('interest-noawait /usr/lib/mdevctl/scripts.d/callouts\n');
      // install's exit 3 (a store conflict, a peer's change) leaves the package installed, with a message;
      // any other failure fails the configure. Either way systemd hears of the units dpkg replaced.
      // (node and systemctl replaced by stubs, systemd's run directory by one of the test's.)
      const stub = join(dir, 'stub-node');
      writeFileSync(stub, '#!/bin/sh\necho "stub $*"\nexit $STUB_RC\n', { mode: 0o755 });
      const bin = join(dir, 'stub-bin');
      mkdirSync(bin);
      const reloads = join(dir, 'systemctl-calls');
      writeFileSync(join(bin, 'systemctl'), `#!/bin/sh\necho "$*" >> ${reloads}\n`, { mode: 0o755 });
      mkdirSync(join(dir, 'systemd-runs'));
      const testable = join(dir, 'postinst-testable');
      writeFileSync(testable, postinst.replace(/^NODE=.*$/m, `NODE=${stub}`).replace('/run/systemd/system', join(dir, 'systemd-runs')), { mode: 0o755 });
      for (const [rc, expected] of [[0, 0], [3, 0], [1, 1], [2, 2]] as const) {
        rmSync(reloads, { force: true });
        const r = spawnSync('sh', [testable, 'configure', '0.0.1'], { encoding: 'utf8', env: { PATH: `${bin}:/usr/bin:/bin`, STUB_RC: String(rc) } });
        expect(r.status, `install exit ${rc}: ${r.stdout}${r.stderr}`).toBe(expected);
        expect(r.stdout).toContain(`stub ${TOOL} install --node ${stub} --bin ${TOOL}`);
        expect(readFileSync(reloads, 'utf8'), `install exit ${rc}`).toBe('--system daemon-reload\n');
        if (rc === 3) expect(r.stderr).toContain("ap-persist: installed, but the boot files were not regenerated");
      }
      // An unknown action is an error, as policy asks.
      for (const s of ['postinst', 'prerm', 'postrm']) {
        let code = 0;
        try {
          execFileSync('sh', [join(dir, 'DEBIAN', s), 'no-such-action'], { stdio: 'pipe' });
        } catch (e) {
          code = (e as { status: number }).status;
        }
        expect(code, s).toBe(1);
      }
    },
    180_000,
  );

  itWith(
    lint,
    'lintian finds no error and no warning',
    async () => {
      const { deb } = await built();
      let out: string;
      try {
        out = execFileSync('lintian', ['--tag-display-limit', '0', deb], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (e) {
        // lintian exits 1 when it reports an error (or fails).
        out = `${(e as { stdout?: string }).stdout ?? ''}${(e as { stderr?: string }).stderr ?? ''}`;
      }
      expect(out.split('\n').filter((l) => /^[EW]: /.test(l))).toEqual([]);
    },
    180_000,
  );

  itWith(
    booted,
    'apt install, reboot, upgrade, remove and purge on a booted Debian 12',
    async () => {
      const { dir, deb, version, newerDeb, newerVersion } = await built();
      const apCheckDeb = await buildApCheckDeb(dir);
      const disk: Disk = await makeDisk();
      const hosts: PackageHost[] = [];
      try {
        // ---- First boot: a host with the store already in place (configuration management put it there).
        const h1 = await bootPackageHost({ disk, host: threeGuestsHost(), kernel: '6.0', debs: dir, files: [{ path: STORE, content: THREE_GUESTS_STORE }] });
        hosts.push(h1);
        expect(await h1.sh('command -v node || echo none')).toBe('none\n');
        const installLog = await h1.sh(`apt-get install -y --no-install-recommends ${DEBS}/${basename(deb)} 2>&1`);
        // nodejs came from Debian, as a dependency.
        expect(installLog).toMatch(/Setting up nodejs \(/);
        expect(installLog).toContain(`Setting up ap-persist (${version}) ...`);
        expect(await h1.sh("dpkg-query -W -f='${Status} ${Version}' ap-persist")).toBe(`install ok installed ${version}`);
        expect(await h1.sh('dpkg-query -W -f=\'${Version}\' nodejs')).toMatch(/^\d+\.\d+/);
        await expectFiles(h1, [...INSTALLED, ...GENERATED], true);
        expect(await h1.sh('cat /usr/lib/udev/rules.d/42-ap-persist.rules')).toContain('RUN+="/usr/bin/systemctl --no-block start ap-persist-hook@');
        for (const c of CALLOUTS) expect(await h1.sh(`test -x ${c} && cat ${c}`), c).toContain(`exec /usr/bin/node --jitless --no-expose-wasm ${TOOL} callout`);
        // The preset enabled the wait; the package owns its files and install left them as shipped.
        expect(await h1.sh('systemctl is-enabled ap-persist-wait.service')).toBe('enabled\n');
        expect(await h1.sh('dpkg -S /usr/lib/systemd/system/ap-persist-hook@.service')).toBe('ap-persist: /usr/lib/systemd/system/ap-persist-hook@.service\n');
        expect(await h1.sh('dpkg -V ap-persist')).toBe('');
        // The launcher, on Debian's node.
        expect(await h1.sh('ap-persist --version')).toBe(`${version}\n`);
        await h1.sh('ap-persist check');
        expect((await h1.sh('mdevctl list -d')).split('\n').filter(Boolean).map((l) => l.split(' ')[0]).sort()).toEqual([...GUESTS].sort());

        // man and bash completion.
        expect(await h1.sh('man -w ap-persist')).toBe('/usr/share/man/man8/ap-persist.8.gz\n');
        const page = await h1.sh('MANWIDTH=80 man -P cat ap-persist 2>/dev/null');
        expect(page).toMatch(/^NAME\n\s+ap-persist/m);
        expect(await completions(h1, 'ap-persist', 'ins')).toContain('install');
        expect(await completions(h1, 'ap-persist', 'mdev', 'def')).toContain('define');

        // s390-tools brings ap-check (which mdevctl would ask first): the trigger sets it aside.
        const trig = await h1.sh(`apt-get install -y ${DEBS}/${basename(apCheckDeb)} 2>&1`);
        expect(trig).toContain('Processing triggers for ap-persist');
        await expectFiles(h1, [AP_CHECK], false);
        await expectFiles(h1, [AP_CHECK_ASIDE], true);

        await h1.powerOff();
        hosts.splice(0);

        // ---- Reboot: the AP bus event, the hook (on Debian's node), the mdevs up before libvirt.
        const h2 = await bootPackageHost({ disk, host: threeGuestsHost(), kernel: '6.0', debs: dir, until: 'manager' });
        hosts.push(h2);
        await h2.container.waitFor(async () => (await h2.activeState('ap-persist-wait.service'))[0] === 'activating' || undefined, {
          timeoutMs: 30_000,
          intervalMs: 20,
          what: 'ap-persist-wait.service holding the boot',
        });
        expect(h2.libvirtd().startedAt).toBeUndefined();
        const event = await h2.bindingsComplete(1);
        expect(event.runs).toEqual(['kmod load vfio_ap', '/usr/bin/systemctl --no-block start ap-persist-hook@change-1.service ap-persist-mdevs.target']);
        expectCleanRuns(event);
        await h2.container.waitFor(() => h2.libvirtd().startedAt, { timeoutMs: 120_000, intervalMs: 20, what: 'libvirtd to start' });
        expect(h2.libvirtd().mdevsAtStart).toEqual([...GUESTS].sort());
        expect(vfioMdevs(h2).map((m) => m.uuid).sort()).toEqual([...GUESTS].sort());
        expect((await h2.container.systemctl('--failed', '--no-legend', '--plain')).stdout.trim(), await h2.container.journal()).toBe('');
        expect(await h2.activeState(...GUESTS.map(mdevUnit))).toEqual(['active', 'active', 'active']);

        // ---- Upgrade, while the guests run, with a store edit not generated yet.
        for (const uuid of GUESTS) h2.sim.control(`guest-running ${uuid} 1`);
        await h2.sh(`ap-persist mdev define ${SPARE} --adapters 5 --domains 0x10 --start manual --name spare --no-generate`);
        const store = await h2.sh(`cat ${STORE}`);
        expect(store).toContain(`[mdev.${SPARE}]`);
        await expectFiles(h2, [`/etc/mdevctl.d/matrix/${SPARE}`], false);
        const writes = h2.sim.state().writes.length;
        const upgradeLog = await h2.sh(`apt-get install -y --no-install-recommends ${DEBS}/${basename(newerDeb)} 2>&1`);
        expect(upgradeLog).toContain(`Setting up ap-persist (${newerVersion}) ...`);
        expect(await h2.sh("dpkg-query -W -f='${Version}' ap-persist")).toBe(newerVersion);
        expect(await h2.sh('ap-persist --version')).toBe(`${newerVersion}\n`);
        // The store as it was; the boot files regenerated: the new templates' output, the pending edit written out.
        expect(await h2.sh(`cat ${STORE}`)).toBe(store);
        for (const f of ['/usr/lib/systemd/system/ap-persist-wait.service', ...CALLOUTS, '/etc/udev/rules.d/41-ap.rules']) {
          expect(await h2.sh(`cat ${f}`), f).toContain(UPGRADE_MARK);
        }
        await expectFiles(h2, [...INSTALLED, ...GENERATED, `/etc/mdevctl.d/matrix/${SPARE}`], true);
        // systemd has the new units' text (the postinst reloaded it; their old mtimes would not tell it to).
        expect(await h2.sh('systemctl show -p Description --value ap-persist-wait.service')).toMatch(new RegExp(`${escape(UPGRADED_DESCRIPTION)}\n$`));
        await h2.sh('ap-persist check');
        expect(await h2.sh('dpkg -V ap-persist')).toBe('');
        // Running guests untouched: no sysfs write, their mdevs and units up.
        expect(h2.sim.state().writes.slice(writes)).toEqual([]);
        expect(vfioMdevs(h2).map((m) => m.uuid).sort()).toEqual([...GUESTS].sort());
        expect(await h2.activeState(...GUESTS.map(mdevUnit))).toEqual(['active', 'active', 'active']);

        // ---- Remove: boot files and callouts gone, ap-check back, the store kept, running mdevs left alone.
        const removeLog = await h2.sh('apt-get remove -y ap-persist 2>&1');
        expect(removeLog).toContain(`Removing ap-persist (${newerVersion}) ...`);
        expect(await h2.sh("dpkg-query -W -f='${Status}' ap-persist")).toBe('deinstall ok config-files');
        await expectFiles(h2, [...INSTALLED, ...GENERATED, `/etc/mdevctl.d/matrix/${SPARE}`, '/usr/lib/ap-persist', AP_CHECK_ASIDE], false);
        await expectFiles(h2, [AP_CHECK], true);
        expect(await h2.sh('dpkg -V fake-s390-tools')).toBe('');
        expect(await h2.sh(`cat ${STORE}`)).toBe(store);
        expect(vfioMdevs(h2).map((m) => m.uuid).sort()).toEqual([...GUESTS].sort());
        expect(await h2.sh('systemctl is-enabled ap-persist-wait.service 2>&1 || true')).not.toMatch(/^enabled/);
        // mdevctl, with ap-check as its only callout, still works for other mdev types.
        await h2.sh(`mdevctl define -u ${MTTY} -p mtty -t mtty-2`);
        await h2.sh(`mdevctl start -u ${MTTY}`);
        expect(await h2.sh('mdevctl list -d')).toContain(MTTY);
        expect(await h2.sh('mdevctl list')).toContain(MTTY);
        expect(h2.sim.state().mdevs.filter((m) => m.parent === 'mtty').map((m) => m.uuid)).toEqual([MTTY]);

        // ---- Purge: the store goes too.
        const purgeLog = await h2.sh('apt-get purge -y ap-persist 2>&1');
        expect(purgeLog).toContain('Purging configuration files for ap-persist');
        expect(await h2.sh("dpkg-query -W -f='${Status}' ap-persist 2>&1 || true")).toMatch(/no packages found|not-installed/);
        await expectFiles(h2, [STORE, '/etc/ap-persist', '/var/lib/ap-persist', '/run/ap-persist'], false);
        await expectFiles(h2, [AP_CHECK, `/etc/mdevctl.d/mtty/${MTTY}`], true);
      } finally {
        for (const h of hosts) await h.shutdown().catch(() => undefined);
        disk.remove();
      }
    },
    600_000,
  );
});

const basename = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

const vfioMdevs = (h: PackageHost): Extract<SimMdevState, { parent: 'matrix' }>[] =>
  h.sim.state().mdevs.filter((m): m is Extract<SimMdevState, { parent: 'matrix' }> => m.parent === 'matrix');

/** Every RUN program of the event ended as udevd wants: exit 0, no signal. */
function expectCleanRuns(event: AppliedEvent): void {
  for (const p of event.programs) {
    expect({ argv: p.argv, result: p.result, how: p.exitCode, status: p.exitStatus }, p.stderr).toEqual({ argv: p.argv, result: 'success', how: 'exited', status: '0' });
  }
}

/** Each path exists (file, link or directory), or each does not. */
async function expectFiles(h: PackageHost, paths: string[], present: boolean): Promise<void> {
  const out = await h.sh(paths.map((p) => `if [ -e '${p}' ] || [ -L '${p}' ]; then echo "+${p}"; else echo "-${p}"; fi`).join('\n'));
  expect(out.split('\n').filter(Boolean)).toEqual(paths.map((p) => `${present ? '+' : '-'}${p}`));
}

/** What bash completion offers for the last word, as an interactive bash would. */
async function completions(h: PackageHost, ...words: string[]): Promise<string[]> {
  const script = `
. /usr/share/bash-completion/bash_completion
_completion_loader ap-persist
spec=$(complete -p ap-persist) || exit 3
fn=$(printf '%s\\n' "$spec" | sed -n 's/.* -F \\([^ ]*\\) .*/\\1/p')
[ -n "$fn" ] || { echo "no completion function in: $spec" >&2; exit 4; }
COMP_WORDS=(${words.join(' ')})
COMP_CWORD=${words.length - 1}
COMP_LINE='${words.join(' ')}'
COMP_POINT=\${#COMP_LINE}
"$fn" ap-persist '${words.at(-1)}' '${words.at(-2)}'
printf '%s\\n' "\${COMPREPLY[@]}"
`;
  return (await h.sh(`bash -c ${shq(script)}`)).split('\n').filter(Boolean);
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
