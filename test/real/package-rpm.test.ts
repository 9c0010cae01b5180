// The RPM: `npm run package -- --rpm` makes a tarball of the built tree with
// packaging/rpm/ap-persist.spec at its top and runs `rpmbuild -ta` on it
// (Debian's rpm package provides rpmbuild). The RPM's files, dependencies and
// scriptlets as rpm itself reads them back.

import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { checkoutVersion, enginesNodeMin, packageScript, tempDirFor } from '../support/packages.js';
import { itWith, requireTools } from '../support/real-tools.js';

const req = requireTools('rpmbuild', 'rpm', 'tar');
const TOOL = '/usr/lib/ap-persist/dist/bin/ap-persist.cjs';
const INSTALL = `/usr/bin/node ${TOOL} install --node /usr/bin/node --bin ${TOOL}`;

const rpmq = (rpm: string, ...args: string[]): string => execFileSync('rpm', ['-qp', ...args, rpm], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe('the RPM', () => {
  itWith(
    req,
    'rpmbuild -ta of the tarball: the tool, its node modules, the launcher, man page and completion; the rule, units and callout as %ghost files; install and uninstall in the scriptlets',
    async () => {
      const out = tempDirFor('ap-persist-rpm-');
      const { paths } = await packageScript(['--tar', '--rpm', '--out', out]);
      const version = checkoutVersion().replace('-', '~');
      const [tarball, rpm] = paths;
      expect(tarball).toMatch(new RegExp(`/ap-persist-${version}\\.tar\\.gz$`));
      expect(rpm).toMatch(new RegExp(`/ap-persist-${version}-1\\.noarch\\.rpm$`));

      // The tarball: the spec at its top and the tree as installed, nothing of the development tree.
      const top = `ap-persist-${version}`;
      const tarred = execFileSync('tar', ['-tzf', tarball!], { encoding: 'utf8' }).split('\n').filter(Boolean);
      for (const f of ['ap-persist.spec', 'ap-persist.sh', 'README.md', 'LICENSE', 'lib/package.json', 'lib/dist/bin/ap-persist.cjs', 'lib/dist/bin/start.cjs', 'lib/dist/bin/hook.cjs', 'lib/dist/bin/callout.cjs', 'lib/dist/bin/unit.cjs', 'lib/dist/bin/program.cjs', 'lib/dist/bin/handlebars.cjs', 'static/usr/lib/systemd/system/ap-persist-hook@.service']) {
        expect(tarred, f).toContain(`${top}/${f}`);
      }
      for (const f of tarred) expect(f, f).not.toMatch(/\/(dist\/src|dist\/bench|dist\/examples|test|esbuild|vitest|typescript)\//);
      const spec = execFileSync('tar', ['-xOzf', tarball!, `${top}/ap-persist.spec`], { encoding: 'utf8' });
      expect(spec).toMatch(new RegExp(`^Version:\\s+${version.replace(/[.~]/g, '\\$&')}$`, 'm'));
      expect(spec).toMatch(/^Provides:\s+bundled\(nodejs-handlebars\) = \d/m);

      expect(rpmq(rpm!, '--qf', '%{NAME} %{VERSION} %{RELEASE} %{ARCH}\n')).toBe(`ap-persist ${version} 1 noarch\n`);
      // Every license of a bundled module is named in License:.
      const license = rpmq(rpm!, '--qf', '%{LICENSE}');
      const modules = [...spec.matchAll(/^Provides:\s+bundled\(nodejs-([^)]+)\)/gm)].map((m) => m[1]!);
      for (const m of modules) {
        const pkg = JSON.parse(execFileSync('tar', ['-xOzf', tarball!, `${top}/lib/node_modules/${m}/package.json`], { encoding: 'utf8' })) as { license: string };
        expect(license.split(' AND '), m).toContain(pkg.license);
      }

      // Files, with %ghost (g) and %config/%doc/%license flags.
      const files = new Map(
        rpmq(rpm!, '--qf', '[%{FILEFLAGS:fflags} %{FILENAMES}\\n]')
          .split('\n')
          .filter(Boolean)
          .map((l) => [l.slice(l.indexOf(' ') + 1), l.slice(0, l.indexOf(' '))] as const),
      );
      expect(rpmq(rpm!, '-l').split('\n').filter(Boolean).sort()).toEqual([...files.keys()].sort());
      const sbin = execFileSync('rpm', ['--eval', '%{_sbindir}'], { encoding: 'utf8' }).trim();
      for (const f of [`${sbin}/ap-persist`, TOOL, '/usr/lib/ap-persist/dist/bin/hook.cjs', '/usr/lib/ap-persist/dist/bin/callout.cjs', '/usr/lib/ap-persist/dist/bin/program.cjs', '/usr/lib/ap-persist/dist/bin/handlebars.cjs', '/usr/lib/ap-persist/package.json', '/usr/lib/ap-persist/templates/mdevctl-callout.sh.hbs', '/usr/lib/ap-persist/node_modules/handlebars/package.json', '/usr/share/bash-completion/completions/ap-persist', '/etc/ap-persist']) {
        expect(files.get(f), f).toBe('');
      }
      expect([...files.keys()].some((f) => /^\/usr\/share\/man\/man8\/ap-persist\.8(\.gz)?$/.test(f))).toBe(true);
      for (const f of ['/usr/lib/udev/rules.d/42-ap-persist.rules', '/usr/lib/systemd/system/ap-persist-hook@.service', '/usr/lib/systemd/system/ap-persist-mdev@.service', '/usr/lib/systemd/system/ap-persist-mdevs.target', '/usr/lib/systemd/system/ap-persist-wait.service', '/usr/lib/systemd/system-preset/80-ap-persist.preset', '/usr/lib/mdevctl/scripts.d/callouts/ap-persist']) {
        expect(files.get(f), f).toBe('g');
      }
      // %doc: the README and (rpm's own rule) the man page.
      expect([...files.entries()].filter(([, flags]) => flags.includes('d')).map(([f]) => f)).toEqual([expect.stringMatching(/\/README\.md$/), expect.stringMatching(/\/man8\/ap-persist\.8/)]);
      expect([...files.entries()].some(([f, flags]) => flags.includes('l') && f.endsWith('/LICENSE'))).toBe(true);
      for (const f of files.keys()) expect(f, f).not.toMatch(/\/(dist\/src|dist\/bench|dist\/examples|test|uglify-js)\/|^\/etc\/mdevctl\.d/);

      // What it needs.
      const requires = rpmq(rpm!, '--requires').split('\n').map((l) => l.trim());
      expect(requires).toEqual(expect.arrayContaining(['nodejs', `nodejs(engine) >= ${enginesNodeMin()}`, 'systemd', 'systemd-udev']));

      // The scriptlets: install on install and upgrade, uninstall on erase only, plain sh.
      const scripts = rpmq(rpm!, '--scripts');
      expect(scripts).toMatch(new RegExp(`postinstall scriptlet \\(using /bin/sh\\):\\n[\\s\\S]*${escape(INSTALL)} \\|\\| rc=\\$\\?`));
      expect(scripts).toMatch(new RegExp(`preuninstall scriptlet \\(using /bin/sh\\):\\n[\\s\\S]*if \\[ "\\$1" -eq 0 \\]; then\\n[\\s\\S]*/usr/bin/node ${escape(TOOL)} uninstall \\|\\| exit \\$\\?\\n`));
      // rpm runs it without -e: an uninstall that fails ends the erase (its exit code), on erase only.
      const preun = rpmq(rpm!, '--qf', '%{PREUN}');
      const stub = join(tempDirFor('ap-persist-preun-'), 'node');
      writeFileSync(stub, '#!/bin/sh\nexit 2\n', { mode: 0o755 });
      expect(spawnSync('sh', ['-c', preun.replaceAll('/usr/bin/node', stub), 'sh', '0']).status).toBe(2);
      expect(spawnSync('sh', ['-c', preun.replaceAll('/usr/bin/node', stub), 'sh', '1']).status).toBe(0);
      expect(scripts).toContain('postuninstall scriptlet (using /bin/sh):');
      expect(scripts).not.toMatch(/systemctl (stop|restart|try-restart)/);
      for (const tag of ['POSTIN', 'PREUN', 'POSTUN']) {
        const body = rpmq(rpm!, '--qf', `%{${tag}}`);
        expect(body, tag).not.toBe('(none)');
        execFileSync('sh', ['-n'], { input: body });
      }
      // s390utils bringing ap-check back into mdevctl's callout directories re-runs install.
      const triggers = rpmq(rpm!, '--filetriggers');
      expect(triggers).toMatch(/filetriggerin scriptlet \(using \/bin\/sh\) -- .*\/usr\/lib\/mdevctl\/scripts\.d\/callouts/);
      expect(triggers).toContain(INSTALL);
    },
    180_000,
  );
});

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
