// s390-tools' ap-check next to our callout, and the way back: install sets
// ap-check aside (mdevctl takes the first callout's answer), check and status
// say when an s390-tools update has put it back, and uninstall removes what
// install and generate wrote, and nothing else, then puts ap-check back.

import { chmodSync, mkdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { parseManifest, renderManifest, type ManifestEntry } from '../../src/generate/manifest.js';
import { mdevUnit } from '../../src/generate/unit-names.js';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GUEST1, GUEST2, THREE_GUESTS_STORE, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { givenHost, type TestHost } from '../support/host.js';
import { HostPaths } from '../../src/host/paths.js';

const AP_CHECK = 'usr/lib/mdevctl/scripts.d/callouts/ap-check';
const AP_CHECK_SH = 'etc/mdevctl.d/scripts.d/callouts/ap-check.sh';
const ASIDE = 'var/lib/ap-persist/set-aside';
// Another type's callout: none of ours, never touched.
const OTHER = 'usr/lib/mdevctl/scripts.d/callouts/other-type';
const BIN = '/usr/bin/ap-persist';

/** What s390-tools 2.40 installs: the program in /usr/lib and a wrapper for mdevctl 1.2 in /etc. */
function withS390Tools(host: TestHost, version = 'ap-check 2.40'): void {
  for (const [rel, text, mode] of [
    [AP_CHECK, `#!/bin/sh\n# ${version}\nexit 0\n`, 0o755],
    [AP_CHECK_SH, '#!/bin/sh\n[ -e /usr/lib/mdevctl/scripts.d/callouts/ap-check ] && /usr/lib/mdevctl/scripts.d/callouts/ap-check "$@"\n', 0o755],
    [OTHER, '#!/bin/sh\nexit 2\n', 0o750],
  ] as const) {
    const path = join(host.root, rel);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    chmodSync(path, mode);
  }
}

const mode = (host: TestHost, rel: string): number => statSync(join(host.root, rel)).mode & 0o777;
// generate's record, its pending list and the target's wants, relative to a host's root.
const AT_ROOT = new HostPaths('/');
const RECORD = AT_ROOT.generatedManifest.slice(1);
const PENDING = AT_ROOT.generatedPending.slice(1);
const WANTS = AT_ROOT.mdevsWantsDir.slice(1);
/** The record generate left on `h`. */
const recordOf = (h: TestHost): ManifestEntry[] => parseManifest(h.read(RECORD), RECORD);

describe("install sets s390-tools' ap-check aside", () => {
  it('moves both ap-check files whole under /var/lib/ap-persist/set-aside and says so; other callouts stay', async () => {
    const host = givenHost(threeGuestsHost());
    withS390Tools(host);
    const program = host.read(AP_CHECK);
    const r = await host.run('install', '--bin', BIN);
    expect(r.code, r.stderr).toBe(0);
    expect(host.has(AP_CHECK)).toBe(false);
    expect(host.has(AP_CHECK_SH)).toBe(false);
    expect(host.read(`${ASIDE}/${AP_CHECK}`)).toBe(program);
    expect(mode(host, `${ASIDE}/${AP_CHECK}`)).toBe(0o755);
    expect(host.read(`${ASIDE}/${AP_CHECK_SH}`)).toContain('ap-check "$@"');
    expect(r.stdout).toContain(`set aside s390-tools' ap-check callout ${join(host.root, AP_CHECK)} -> ${join(host.root, ASIDE, AP_CHECK)}: mdevctl takes the answer of the first callout`);
    expect(host.read(OTHER)).toBe('#!/bin/sh\nexit 2\n');
    expect(mode(host, OTHER)).toBe(0o750);

    const status = await host.run('status');
    expect(status.stdout).toContain(`mdevctl callout: ap-persist (`);
    expect(status.stdout).toContain(`s390-tools' ap-check set aside (${join(host.root, ASIDE, AP_CHECK_SH)}, ${join(host.root, ASIDE, AP_CHECK)}), 'ap-persist uninstall' puts it back`);

    const again = await host.run('install', '--bin', BIN);
    expect(again.stdout).toContain('nothing to change');
  });

  it('when an s390-tools update puts ap-check back, check and status warn, and install sets the new one aside', async () => {
    const host = givenHost(threeGuestsHost());
    withS390Tools(host, 'ap-check 2.40');
    await host.run('install', '--bin', BIN);
    withS390Tools(host, 'ap-check 2.41');

    const check = await host.json('check');
    expect(check.code).toBe(0);
    const warning = check.doc.warnings.find((w: { kind: string }) => w.kind === 'ap-check-present');
    expect(warning.message).toBe(
      `s390-tools' ap-check is installed as an mdevctl callout too (${join(host.root, AP_CHECK_SH)}, ${join(host.root, AP_CHECK)}): mdevctl takes the answer of the first callout that handles vfio_ap, so ap-persist's checks may never run; run 'ap-persist install' to set it aside again`,
    );
    const status = await host.json('status');
    expect(status.doc.callouts.ap_check).toEqual([join(host.root, AP_CHECK_SH), join(host.root, AP_CHECK)]);
    expect((await host.run('status')).stdout).toContain("mdevctl callout: warning: s390-tools' ap-check is installed");

    expect((await host.run('install', '--bin', BIN)).code).toBe(0);
    expect(host.read(`${ASIDE}/${AP_CHECK}`)).toContain('ap-check 2.41');
    expect((await host.json('check')).doc.warnings.map((w: { kind: string }) => w.kind)).not.toContain('ap-check-present');
  });

  it('ap-check alone (ap-persist not installed) is no warning: it is the only callout mdevctl asks', async () => {
    const host = givenHost(threeGuestsHost());
    withS390Tools(host);
    const check = await host.json('check');
    expect(check.doc.warnings.map((w: { kind: string }) => w.kind)).not.toContain('ap-check-present');
    expect((await host.run('status')).stdout).toContain(`mdevctl callout: s390-tools' ap-check only`);
  });
});

describe('ap-persist uninstall', () => {
  it('removes the package files and the generated files, puts ap-check back, keeps the store and other callouts', async () => {
    const host = givenHost(threeGuestsHost());
    withS390Tools(host);
    const before = host.snapshot();
    expect((await host.run('install', '--bin', BIN)).code).toBe(0);
    expect(host.exists(`etc/mdevctl.d/matrix/${GUEST1}`)).toBe(true);

    const r = await host.run('uninstall');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`put back s390-tools' ap-check callout ${join(host.root, AP_CHECK)}`);
    expect(r.stdout).toContain(`removed ${join(host.root, 'etc/udev/rules.d/41-ap.rules')}`);
    expect(r.stdout).toContain(`removed ${join(host.root, 'usr/lib/systemd/system-preset/80-ap-persist.preset')}`);
    expect(r.stdout).toContain(`kept the store ${join(host.root, 'etc/ap-persist/ap-persist.conf')} ('uninstall --purge' deletes it)`);
    // Exactly the host as it was before install: ap-check whole, the store, nothing of ours.
    const after = host.snapshot();
    expect([...after.keys()].filter((k) => !k.startsWith('run/lock/')).sort()).toEqual([...before.keys()].sort());
    for (const [k, v] of before) expect(after.get(k), k).toBe(v);
    expect(host.has(ASIDE)).toBe(false);
  });

  it("leaves chzdev's and mdevctl's files that were there before ap-persist took them over: the host keeps its masks and mdevs", async () => {
    // The same host set up with chzdev and mdevctl first: their files, byte for byte what generate writes.
    const before = givenHost(threeGuestsHost());
    await before.run('generate', '--no-reload');
    const host = givenHost(threeGuestsHost());
    const theirs = ['etc/udev/rules.d/41-ap.rules', `etc/mdevctl.d/matrix/${GUEST1}`];
    for (const rel of theirs) {
      mkdirSync(dirname(join(host.root, rel)), { recursive: true });
      writeFileSync(join(host.root, rel), before.read(rel));
    }
    expect((await host.run('install', '--bin', BIN)).code).toBe(0);
    const r = await host.run('uninstall');
    expect(r.code, r.stderr).toBe(0);
    for (const rel of theirs) {
      expect(host.read(rel)).toBe(before.read(rel));
      expect(r.stdout).toContain(`left ${join(host.root, rel)}: it was there before ap-persist took it over`);
    }
    // What ap-persist wrote itself is gone.
    expect(host.has(`etc/mdevctl.d/matrix/${GUEST2}`)).toBe(false);
    expect(host.has('etc/ap-persist/generated.json')).toBe(false);
  });

  it("a first generate killed after putting some files in place: the next takes those for its own, not mdevctl's, and uninstall removes them", async () => {
    // What an uninterrupted first generate leaves, on a copy.
    const done = givenHost(threeGuestsHost());
    expect((await done.run('generate', '--no-reload')).code).toBe(0);
    // The host: mdevctl defined guest1 before ap-persist came (byte for byte what generate writes). A first
    // generate named the files it was creating (the pending list), moved guest2's definition and link into
    // place and was killed before its record.
    const host = givenHost(threeGuestsHost());
    const mdevctls = `etc/mdevctl.d/matrix/${GUEST1}`;
    const ours = [`etc/mdevctl.d/matrix/${GUEST2}`, `${WANTS}/${mdevUnit(GUEST2)}`];
    mkdirSync(dirname(join(host.root, mdevctls)), { recursive: true });
    writeFileSync(join(host.root, mdevctls), done.read(mdevctls));
    for (const rel of ours) {
      mkdirSync(dirname(join(host.root, rel)), { recursive: true });
      if (rel.endsWith('.service')) symlinkSync(readlinkSync(join(done.root, rel)), join(host.root, rel));
      else writeFileSync(join(host.root, rel), done.read(rel));
    }
    const creating = recordOf(done).filter((e) => e.path !== mdevctls);
    writeFileSync(join(host.root, PENDING), renderManifest(creating));

    const g = await host.run('generate', '--no-reload');
    expect(g.code, g.stderr).toBe(0);
    const adopted = recordOf(host).filter((e) => e.adopted).map((e) => e.path);
    expect(adopted).toEqual([mdevctls]);
    expect(recordOf(host).map((e) => e.path)).toEqual(recordOf(done).map((e) => e.path));
    expect(host.has(PENDING)).toBe(false);

    const u = await host.run('uninstall');
    expect(u.code, u.stderr).toBe(0);
    expect(host.read(mdevctls)).toBe(done.read(mdevctls));
    for (const rel of ours) expect(host.has(rel), rel).toBe(false);
  });

  it('a first generate killed before its record, then uninstall: the files it named and made go, what changed since stays', async () => {
    const done = givenHost(threeGuestsHost());
    expect((await done.run('generate', '--no-reload')).code).toBe(0);
    const host = givenHost(threeGuestsHost());
    const made = `etc/mdevctl.d/matrix/${GUEST1}`;
    const changedSince = `etc/mdevctl.d/matrix/${GUEST2}`;
    for (const rel of [made, changedSince]) {
      mkdirSync(dirname(join(host.root, rel)), { recursive: true });
      writeFileSync(join(host.root, rel), done.read(rel));
    }
    // mdevctl modified guest2's definition after the kill: no longer what generate made.
    writeFileSync(join(host.root, changedSince), done.read(changedSince).replace('"auto"', '"manual"'));
    writeFileSync(join(host.root, PENDING), renderManifest(recordOf(done)));
    const u = await host.run('uninstall');
    expect(u.code, u.stderr).toBe(0);
    expect(host.has(made)).toBe(false);
    expect(host.read(changedSince)).toContain('"manual"');
    expect(host.has(PENDING)).toBe(false);
  });

  it('keeps a generated file chzdev changed since, and says so; removes the rest', async () => {
    const host = givenHost(threeGuestsHost());
    await host.run('install', '--bin', BIN);
    const rules = 'etc/udev/rules.d/41-ap.rules';
    const changed = host.read(rules).replace('apmask}="0xf9', 'apmask}="0xfd');
    expect(changed).not.toBe(host.read(rules));
    writeFileSync(join(host.root, rules), changed);

    const r = await host.run('uninstall');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`warning: kept ${join(host.root, rules)}: changed by another tool since ap-persist wrote it`);
    expect(host.read(rules)).toBe(changed);
    expect(host.exists(`etc/mdevctl.d/matrix/${GUEST1}`)).toBe(false);
    expect(host.exists('etc/ap-persist/generated.json')).toBe(false);
    expect(host.exists('usr/lib/mdevctl/scripts.d/callouts/ap-persist')).toBe(false);
  });

  it('--purge deletes the store too; ap-check reinstalled meanwhile stays and the old copy goes', async () => {
    const host = givenHost(threeGuestsHost());
    withS390Tools(host, 'ap-check 2.40');
    await host.run('install', '--bin', BIN);
    withS390Tools(host, 'ap-check 2.41');
    const r = await host.run('uninstall', '--purge');
    expect(r.code, r.stderr).toBe(0);
    expect(host.read(AP_CHECK)).toContain('ap-check 2.41');
    expect(r.stdout).toContain(`dropped ${join(host.root, ASIDE, AP_CHECK)}: s390-tools has installed a newer ap-check in its place`);
    expect(host.exists('etc/ap-persist')).toBe(false);
    expect(host.exists('var/lib/ap-persist')).toBe(false);
  });

  it('a damaged record of generated files stops uninstall (exit 2) before any file changes', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: THREE_GUESTS_STORE });
    withS390Tools(host);
    await host.run('install', '--bin', BIN);
    writeFileSync(join(host.root, 'etc/ap-persist/generated.json'), '{"version": 1, "files": [{}]}\n');
    const before = host.snapshot();
    const r = await host.run('uninstall');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('generated.json');
    expect(host.snapshot()).toEqual(before);
  });
});
