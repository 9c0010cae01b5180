// The admin's story with generate and install on the kernel documentation's
// three-guest host: the boot files match the reviewed golden files, a rerun
// changes nothing, edits of the store show up as exactly the files they
// concern, and files ap-persist did not write (chzdev's) are never clobbered.

import { createHash } from 'node:crypto';
import { existsSync, lstatSync, lutimesSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GUEST1, GUEST2, GUEST3, THREE_GUESTS_STORE, threeGuestsHost, TWO_GUESTS_STORE } from '../../src/fakehost/three-guests.js';
import { parseIdList } from '../../src/model/idlist.js';
import { IdSet } from '../../src/model/idset.js';
import { run } from '../../src/cli/program.js';
import type { Observed } from '../../src/fsio/observe.js';
import { holdsRecorded, sha256 } from '../../src/generate/manifest.js';
import type { CommandRunner } from '../../src/runtime/commands.js';
import { givenHost, type TestHost } from '../support/host.js';
import { expectGolden, splitSnapshotValue } from './golden.js';
import { chzdevRulesText } from '../support/chzdev.js';

const RULES = 'etc/udev/rules.d/41-ap.rules';
const MANIFEST = 'etc/ap-persist/generated.json';
const WANTS = 'etc/systemd/system/ap-persist-mdevs.target.wants';
const WAIT_LINK = 'etc/systemd/system/multi-user.target.wants/ap-persist-wait.service';
const mdevLink = (uuid: string): string => `${WANTS}/ap-persist-mdev@${uuid}.service`;

/** Like host.exists, but true for a link whose target (on the real system) is not under the root. */
function present(host: TestHost, rel: string): boolean {
  return lstatSync(join(host.root, rel), { throwIfNoEntry: false }) !== undefined;
}

/**
 * What generate and install own: everything but sysfs, the store and the lock
 * directory, and what `systemctl --root preset` makes (test/generate/install.test.ts
 * checks that, where systemctl is installed).
 */
function bootFiles(host: TestHost): [string, string][] {
  const bySystemctl = (p: string): boolean => p === WAIT_LINK || p === 'var/lib/ap-persist/preset-applied';
  return [...host.snapshot()].filter(([p]) => !p.startsWith('sys/') && !p.startsWith('run/') && p !== 'etc/ap-persist/ap-persist.conf' && !bySystemctl(p));
}


// A 41-ap.rules as chzdev -t ap writes it after `chzdev -t ap apmask=-2 aqmask=-43`.
const CHZDEV_RULES = chzdevRulesText(parseIdList('0-1,3-255', 'ID', true), parseIdList('0-42,44-255', 'ID', true));

describe("the kernel documentation's three-guest host", () => {
  it('install writes the reviewed rules, units, callouts, wants links and record', async () => {
    const host = givenHost(threeGuestsHost());
    const r = await host.run('install', '--bin', '/usr/bin/ap-persist', '--node', '/usr/bin/node');
    expect(r.code, r.stderr).toBe(0);

    const files = bootFiles(host);
    const tree = files.map(([p, v]) => {
      const s = splitSnapshotValue(v);
      return 'link' in s ? `${p} -> ${s.link}` : `${p} (mode ${s.mode})`;
    });
    expectGolden('three-guests/tree.txt', `${tree.join('\n')}\n`);
    for (const [p, v] of files) {
      const s = splitSnapshotValue(v);
      if ('content' in s) expectGolden(`three-guests/${p}`, s.content);
    }
  });

  it('a second generate writes nothing and leaves every mtime alone', async () => {
    const host = givenHost(threeGuestsHost());
    expect((await host.run('generate')).code).toBe(0);
    const exported = [GUEST1, GUEST2, GUEST3].map((u) => `etc/mdevctl.d/matrix/${u}`);
    const generated = [RULES, MANIFEST, mdevLink(GUEST1), mdevLink(GUEST2), mdevLink(GUEST3), ...exported];
    const past = new Date('2020-01-01T00:00:00Z');
    for (const rel of generated) lutimesSync(join(host.root, rel), past, past);

    const again = await host.json('generate');
    expect(again.code).toBe(0);
    expect(again.doc.written).toEqual([]);
    expect(again.doc.removed).toEqual([]);
    expect(again.doc.reload).toEqual([]);
    expect(again.doc.unchanged).toHaveLength(7);
    for (const rel of generated) expect(lstatSync(join(host.root, rel)).mtime, rel).toEqual(past);
  });

  it('says so when there is nothing to do', async () => {
    const host = givenHost(threeGuestsHost());
    await host.run('generate');
    const r = await host.run('generate');
    expect(r.stdout).toBe('nothing to change: the generated files match the store\n');
  });

  it('removing guest3 from the store removes its wants link and its mdevctl definition, nothing else', async () => {
    const host = givenHost(threeGuestsHost());
    await host.run('generate');
    const rules = host.read(RULES);
    writeFileSync(join(host.root, 'etc/ap-persist/ap-persist.conf'), TWO_GUESTS_STORE);

    const r = await host.json('generate');
    expect(r.code).toBe(0);
    expect(r.doc.removed).toEqual([join(host.root, `etc/mdevctl.d/matrix/${GUEST3}`), join(host.root, mdevLink(GUEST3))]);
    expect(r.doc.written).toEqual([]);
    expect(present(host, mdevLink(GUEST3))).toBe(false);
    expect(present(host, mdevLink(GUEST1)) && present(host, mdevLink(GUEST2))).toBe(true);
    expect(host.read(RULES)).toBe(rules);
    expect(host.read(MANIFEST)).not.toContain(GUEST3);
  });

  it('an mdev switched to start = manual loses its link; the last one takes the wants directory along', async () => {
    const host = givenHost(threeGuestsHost());
    await host.run('generate');
    writeFileSync(join(host.root, 'etc/ap-persist/ap-persist.conf'), THREE_GUESTS_STORE.replace(/start = auto/g, 'start = manual'));

    const r = await host.run('generate');
    expect(r.code).toBe(0);
    for (const uuid of [GUEST1, GUEST2, GUEST3]) expect(r.stdout).toContain(`removed ${join(host.root, mdevLink(uuid))}`);
    expect(existsSync(join(host.root, WANTS))).toBe(false);
    // Enabling the boot wait is install's (the preset), never generate's: the unit's conditions decide each boot.
    expect(present(host, WAIT_LINK)).toBe(false);
  });

  it('emptying the store removes the 41-ap.rules generated before', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: '[masks]\napmask = 0-4,7-255\naqmask = 0-3,5-70,72-170,172-254\n' });
    await host.run('generate');
    expect(present(host, RULES)).toBe(true);
    writeFileSync(join(host.root, 'etc/ap-persist/ap-persist.conf'), '');

    const r = await host.run('generate');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`removed ${join(host.root, RULES)}\n`);
    expect(present(host, RULES)).toBe(false);
  });

  it('a wait link an earlier version generated and recorded is left to systemctl: kept, and dropped from the record', async () => {
    const target = '/usr/lib/systemd/system/ap-persist-wait.service';
    const host = givenHost(threeGuestsHost());
    expect((await host.run('generate')).code).toBe(0);
    // As generate wrote it before the preset: the link and its entry in the record.
    mkdirSync(join(host.root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
    symlinkSync(target, join(host.root, WAIT_LINK));
    const record = JSON.parse(host.read(MANIFEST));
    record.files.push({ path: WAIT_LINK, symlink: target });
    writeFileSync(join(host.root, MANIFEST), JSON.stringify(record, null, 2));

    const r = await host.json('generate');
    expect(r.code, r.stderr).toBe(0);
    expect(r.doc.removed).toEqual([]);
    expect(readlinkSync(join(host.root, WAIT_LINK))).toBe(target);
    expect(host.read(MANIFEST)).not.toContain('multi-user.target.wants');
    // An admin who disables it later (systemctl disable) is not overruled by generate.
    unlinkSync(join(host.root, WAIT_LINK));
    const again = await host.json('generate');
    expect(again.code, again.stderr).toBe(0);
    expect(again.doc.written).toEqual([]);
    expect(present(host, WAIT_LINK)).toBe(false);
  });

  it('a store that sets only apmask gets only the apmask line, as chzdev writes it', async () => {
    const host = givenHost(threeGuestsHost());
    writeFileSync(join(host.root, 'etc/ap-persist/ap-persist.conf'), THREE_GUESTS_STORE.replace(/^aqmask.*\n/m, ''));
    expect((await host.run('generate')).code).toBe(0);
    const rules = host.read(RULES);
    expect(rules).toContain('ATTR{../../bus/ap/apmask}="0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"\nRUN{builtin}');
    expect(rules).not.toContain('aqmask');
  });

  it('an empty store generates nothing at all', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: '' });
    const r = await host.json('generate');
    expect(r.code).toBe(0);
    expect(r.doc.written).toEqual([]);
    expect(present(host, RULES) || present(host, WAIT_LINK)).toBe(false);
  });

  it('warns when the units the links point to are not installed', async () => {
    const host = givenHost(threeGuestsHost());
    const r = await host.run('generate');
    expect(r.stderr).toContain(`not installed: ${join(host.root, 'usr/lib/systemd/system/ap-persist-mdev@.service')}`);
    expect(r.stderr).toContain("run 'ap-persist install'");
  });
});

describe('a running mdev the persistent masks give away', () => {
  it('generate warns, naming the APQN, and still writes the guarded 41-ap.rules (no replay can apply it while vfio_ap is loaded)', async () => {
    const free = { apmask: IdSet.full().minus(IdSet.of([5, 6])), aqmask: IdSet.full().minus(IdSet.of([4, 0x47, 0xab, 0xff])) };
    // libvirt's guest runs on 05.0004 through an mdev that is not in the store; the store gives card 5 back to the host.
    const store = '[masks]\napmask = 0-5,7-255\naqmask = 0-70,72-170,172-254\n';
    const host = givenHost({ ...threeGuestsHost(), store, masks: free, vfioAp: true, activeMdevs: [{ uuid: GUEST1, adapters: [5], domains: [4] }] });
    const r = await host.run('generate');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`warning: APQN 05.0004 (5.4) is in use by active mdev ${GUEST1}; the persistent masks give it to the host at the next boot`);
    expect(host.read(RULES)).toContain('TEST=="/sys/devices/vfio_ap/matrix", GOTO="end_ap"');
  });
});

describe('41-ap.rules written by chzdev', () => {
  async function generatedThenChangedByChzdev(): Promise<TestHost> {
    const host = givenHost(threeGuestsHost());
    expect((await host.run('generate')).code).toBe(0);
    writeFileSync(join(host.root, RULES), CHZDEV_RULES);
    return host;
  }

  it('generate refuses with exit 3, says who changed what and how to go on, and changes nothing', async () => {
    const host = await generatedThenChangedByChzdev();
    const before = host.snapshot();
    const r = await host.run('generate');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${join(host.root, RULES)} was changed since ap-persist wrote it (chzdev -t ap writes it); the boot applies it:`);
    // The exact difference, ID by ID.
    expect(r.stderr).toContain('apmask: store adapters 0-4,7-255; on disk adapters 0-1,3-255 (gives the host adapter(s) 5-6, frees adapter(s) 2 for vfio_ap)');
    expect(r.stderr).toContain('aqmask: store domains 0-3,5-70,72-170,172-254; on disk domains 0-42,44-255 (gives the host domain(s) 4,71,171,255, frees domain(s) 43 for vfio_ap)');
    expect(r.stderr).toContain("'ap-persist import'");
    expect(r.stderr).toContain("'ap-persist generate --force'");
    expect(host.snapshot()).toEqual(before);
  });

  it('--force replaces it with the store masks and takes it back', async () => {
    const host = await generatedThenChangedByChzdev();
    const r = await host.run('generate', '--force');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`wrote ${join(host.root, RULES)} (it was not ours: --force)`);
    expect(host.read(RULES)).toContain('ATTR{../../bus/ap/apmask}="0xf9ff');
    expect((await host.run('generate')).code).toBe(0);
  });

  it('a 41-ap.rules that was there before ap-persist is refused too', async () => {
    const host = givenHost({ ...threeGuestsHost(), files: { [RULES]: CHZDEV_RULES } });
    const r = await host.run('generate');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${join(host.root, RULES)} was not written by ap-persist (chzdev -t ap writes it); the boot applies it:`);
    expect(host.read(RULES)).toBe(CHZDEV_RULES);
    expect(present(host, WAIT_LINK)).toBe(false);
  });

  it('but one identical to what generate would write is taken over silently', async () => {
    const first = givenHost(threeGuestsHost());
    await first.run('generate');
    const host = givenHost({ ...threeGuestsHost(), files: { [RULES]: first.read(RULES) } });
    const r = await host.run('generate');
    expect(r.code).toBe(0);
    expect(host.read(MANIFEST)).toContain(RULES);
  });

  it('removing the masks from the store does not remove a 41-ap.rules chzdev changed', async () => {
    const host = await generatedThenChangedByChzdev();
    writeFileSync(join(host.root, 'etc/ap-persist/ap-persist.conf'), THREE_GUESTS_STORE.replace(/^apmask.*\n^aqmask.*\n/m, ''));
    const r = await host.run('generate');
    expect(r.code).toBe(3);
    expect(host.read(RULES)).toBe(CHZDEV_RULES);
  });

  it('--diff shows what chzdev changed against the store, changes nothing and exits 3', async () => {
    const host = await generatedThenChangedByChzdev();
    const before = host.snapshot();
    const r = await host.run('generate', '--diff');
    expect(r.code).toBe(3);
    expect(r.stdout).toContain(`--- a/${RULES}\n+++ b/${RULES}\n`);
    expect(r.stdout).toContain('-ATTR{../../bus/ap/apmask}="0xdfff');
    expect(r.stdout).toContain('+ATTR{../../bus/ap/apmask}="0xf9ff');
    expect(r.stderr).toContain('generate would refuse');
    expect(host.snapshot()).toEqual(before);
  });
});

describe('files ap-persist did not write', () => {
  it('a wants link someone else made that points elsewhere is left alone (exit 3)', async () => {
    const host = givenHost(threeGuestsHost());
    const path = join(host.root, mdevLink(GUEST1));
    mkdirSync(join(host.root, WANTS), { recursive: true });
    symlinkSync('/etc/systemd/system/my-own@.service', path);
    const r = await host.run('generate');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${path} (a link to /etc/systemd/system/my-own@.service) was not written by ap-persist`);
    expect(readlinkSync(path)).toBe('/etc/systemd/system/my-own@.service');
  });

  it('the same link systemctl enable made is taken over', async () => {
    const host = givenHost(threeGuestsHost());
    mkdirSync(join(host.root, WANTS), { recursive: true });
    symlinkSync('/usr/lib/systemd/system/ap-persist-mdev@.service', join(host.root, mdevLink(GUEST1)));
    const r = await host.json('generate');
    expect(r.code).toBe(0);
    expect(r.doc.unchanged).toContain(join(host.root, mdevLink(GUEST1)));
    expect(host.read(MANIFEST)).toContain(mdevLink(GUEST1));
  });
});

describe('a store with conflicts', () => {
  // guest3 moved onto card 5, where guest2 already has domains 0x47 and 0xff.
  const conflicting = THREE_GUESTS_STORE.replace(/(name = guest3\nadapters = )6/, '$15');

  it('generate refuses with exit 3, naming the mdevs that would fail at boot, and writes nothing', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: conflicting });
    const before = host.snapshot();
    const r = await host.run('generate');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('refused: booting with this store would create');
    expect(r.stderr).toMatch(new RegExp(`at boot these mdevs would fail to start: .*${GUEST2} \\(guest2\\).*${GUEST3} \\(guest3\\)|at boot these mdevs would fail to start: .*${GUEST3} \\(guest3\\).*${GUEST2} \\(guest2\\)`));
    expect(host.snapshot()).toEqual(before);
  });

  it('with --json the refusal is the check document', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: conflicting });
    const r = await host.json('generate');
    expect(r.code).toBe(3);
    expect(r.doc.ok).toBe(false);
    expect(r.doc.conflicts[0].kind).toBe('mdev-mdev');
  });

  it('--force generates anyway and says it did', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: conflicting });
    const r = await host.run('generate', '--force');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('--force: generated from a store with');
    expect(present(host, mdevLink(GUEST3))).toBe(true);
  });
});

describe('looking before leaping', () => {
  it('--dry-run lists what it would do and changes no file', async () => {
    const host = givenHost(threeGuestsHost());
    const before = host.snapshot();
    const r = await host.run('generate', '--dry-run');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`would write ${join(host.root, RULES)}`);
    expect(r.stdout).toContain(`would link ${join(host.root, mdevLink(GUEST1))} -> /usr/lib/systemd/system/ap-persist-mdev@.service`);
    expect(r.stdout).toContain('would run: udevadm control --reload\nwould run: systemctl daemon-reload\n');
    expect(host.snapshot()).toEqual(before);
  });

  it('--dry-run after a store edit names the link it would remove', async () => {
    const host = givenHost(threeGuestsHost());
    await host.run('generate');
    writeFileSync(join(host.root, 'etc/ap-persist/ap-persist.conf'), THREE_GUESTS_STORE.replace(/(name = guest2\n(?:.*\n){2})start = auto/, '$1start = manual'));
    const before = host.snapshot();
    const r = await host.run('generate', '--dry-run');
    // guest2's mdevctl definition follows its start mode too.
    expect(r.stdout).toBe(`would write ${join(host.root, `etc/mdevctl.d/matrix/${GUEST2}`)}\nwould remove ${join(host.root, mdevLink(GUEST2))}\nwould run: systemctl daemon-reload\n`);
    expect(host.snapshot()).toEqual(before);
  });

  it('--diff prints a unified diff of every file and changes none', async () => {
    const host = givenHost(threeGuestsHost());
    const before = host.snapshot();
    const r = await host.run('generate', '--diff');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`--- /dev/null\n+++ b/${RULES}\n@@ -0,0 +1,15 @@\n+# Generated by ap-persist from /etc/ap-persist/ap-persist.conf; do not edit.\n`);
    expect(r.stdout).toContain(`--- /dev/null\n+++ b/${mdevLink(GUEST1)}\n@@ -0,0 +1 @@\n+-> /usr/lib/systemd/system/ap-persist-mdev@.service\n`);
    expect(host.snapshot()).toEqual(before);
  });

  it('--diff after a mask change shows just the changed line', async () => {
    const host = givenHost(threeGuestsHost());
    await host.run('generate');
    writeFileSync(join(host.root, 'etc/ap-persist/ap-persist.conf'), THREE_GUESTS_STORE.replace('apmask = 0-4,7-255', 'apmask = 0-4,8-255'));
    const r = await host.run('generate', '--diff');
    expect(r.stdout).toBe(
      [
        `--- a/${RULES}`,
        `+++ b/${RULES}`,
        '@@ -8,7 +8,7 @@',
        ' ',
        " # ap-persist: once vfio_ap is loaded (it holds the mdevs), a replay of this rule (udevadm trigger, a rescan) must not give an mdev's queues back to the host; ap-persist's hook applies the masks then and keeps active mdevs' APQNs out.",
        ' TEST=="/sys/devices/vfio_ap/matrix", GOTO="end_ap"',
        '-ATTR{../../bus/ap/apmask}="0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"',
        '+ATTR{../../bus/ap/apmask}="0xf8ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"',
        ' ATTR{../../bus/ap/aqmask}="0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe"',
        ' RUN{builtin}+="kmod load vfio_ap"',
        ' ',
        '',
      ].join('\n'),
    );
  });
});

describe('reloading udev and systemd', () => {
  it('under another root it says what it would run and runs nothing', async () => {
    const host = givenHost(threeGuestsHost());
    const r = await host.json('generate');
    expect(r.doc.reload).toEqual([
      { command: 'udevadm control --reload', ran: false, skipped: `not run under --root ${host.root} (--exec runs it)` },
      { command: 'systemctl daemon-reload', ran: false, skipped: `not run under --root ${host.root} (--exec runs it)` },
    ]);
  });

  it('only what changed is reloaded', async () => {
    const host = givenHost(threeGuestsHost());
    await host.run('generate');
    writeFileSync(join(host.root, 'etc/ap-persist/ap-persist.conf'), THREE_GUESTS_STORE.replace('apmask = 0-4,7-255', 'apmask = 0-4,8-255'));
    const r = await host.json('generate');
    expect(r.doc.reload.map((x: { command: string }) => x.command)).toEqual(['udevadm control --reload']);
  });

  it('with --exec it runs nothing for a daemon that is not running, and says so', async () => {
    const host = givenHost(threeGuestsHost());
    const r = await host.json('--exec', 'generate');
    expect(r.doc.reload).toEqual([
      { command: 'udevadm control --reload', ran: false, skipped: 'udev is not running' },
      { command: 'systemctl daemon-reload', ran: false, skipped: 'systemd is not running' },
    ]);
  });

  it('runs the reloads through the context\'s runner, and a failing one is exit 1', async () => {
    const host = givenHost({ ...threeGuestsHost(), files: { 'run/udev/control': '', 'run/systemd/system/.running': '' } });
    // Stands in for the host runner: says it ran each command, with the given exit code.
    const fake = (exitCode: number): CommandRunner => {
      const log: string[] = [];
      const ran = async (file: string, args: readonly string[]) => {
        log.push([file, ...args].join(' '));
        return { exitCode, stdout: '', stderr: exitCode ? 'boom' : '', timedOut: false, ran: true };
      };
      return { log, run: ran };
    };
    let stdout = '';
    let stderr = '';
    const io = { stdout: (t: string) => void (stdout += t), stderr: (t: string) => void (stderr += t), env: {} };
    const ok = fake(0);
    expect(await run(['--root', host.root, '--exec', '--json', 'generate'], io, { runner: ok })).toBe(0);
    expect(ok.log).toEqual(['udevadm control --reload', 'systemctl daemon-reload']);
    expect(JSON.parse(stdout).reload).toEqual([
      { command: 'udevadm control --reload', ran: true },
      { command: 'systemctl daemon-reload', ran: true },
    ]);

    writeFileSync(join(host.root, 'etc/ap-persist/ap-persist.conf'), THREE_GUESTS_STORE.replace('apmask = 0-4,7-255', 'apmask = 0-4,8-255'));
    const failing = fake(1);
    expect(await run(['--root', host.root, '--exec', 'generate'], io, { runner: failing })).toBe(1);
    expect(failing.log).toEqual(['udevadm control --reload']);
    expect(stderr).toContain('udevadm control --reload failed: boom');
  });

  it('--no-reload leaves them out', async () => {
    const host = givenHost(threeGuestsHost());
    const r = await host.run('generate', '--no-reload');
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/udevadm|systemctl/);
  });
});

describe('the record of generated files', () => {
  it('lists each generated file with its text and sha256 and each link with its target', async () => {
    const host = givenHost(threeGuestsHost());
    await host.run('generate');
    const manifest = JSON.parse(host.read(MANIFEST));
    const text = readFileSync(join(host.root, RULES));
    const hash = createHash('sha256').update(text).digest('hex');
    expect(manifest.files).toContainEqual({ path: RULES, sha256: hash, content: text.toString('utf8') });
    expect(manifest.files.map((f: { path: string }) => f.path)).not.toContain(WAIT_LINK);
  });

  it('a record an earlier version wrote (hashes, no text) still tells generate\'s own files from changed ones', async () => {
    const host = givenHost(threeGuestsHost());
    await host.run('generate');
    const manifest = JSON.parse(host.read(MANIFEST));
    const hashesOnly = manifest.files.map(({ content: _text, ...rest }: { content?: string }) => rest);
    writeFileSync(join(host.root, MANIFEST), `${JSON.stringify({ ...manifest, files: hashesOnly }, null, 2)}\n`);
    // Unchanged files are generate's: nothing to do, and the record gains the texts.
    const again = await host.run('generate');
    expect(again.code).toBe(0);
    expect(JSON.parse(host.read(MANIFEST)).files.filter((f: { sha256?: string; content?: string }) => f.sha256 && f.content === undefined)).toEqual([]);
    writeFileSync(join(host.root, MANIFEST), `${JSON.stringify({ ...manifest, files: hashesOnly }, null, 2)}\n`);
    // One changed by someone else (same length, other text) is not.
    const rules = host.read(RULES);
    writeFileSync(join(host.root, RULES), rules.replace('apmask', 'APMASK'));
    const r = await host.run('generate');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${join(host.root, RULES)} was changed since ap-persist wrote it`);
  });

  it('a file is generate\'s when it holds the recorded text, whatever the hash beside it says', () => {
    const file = (content: string): Observed => ({ kind: 'file', content });
    const recorded = { path: RULES, sha256: sha256('old'), content: 'new' };
    expect(holdsRecorded(file('new'), recorded)).toBe(true);
    expect(holdsRecorded(file('old'), recorded)).toBe(false);
    // Without the text (an earlier version's record): by hash.
    expect(holdsRecorded(file('old'), { path: RULES, sha256: sha256('old') })).toBe(true);
    expect(holdsRecorded(file('new'), { path: RULES, sha256: sha256('old') })).toBe(false);
    expect(holdsRecorded({ kind: 'symlink', target: 'new' }, recorded)).toBe(false);
  });

  it('a damaged record stops generate with exit 2 and says how to recover', async () => {
    const host = givenHost({ ...threeGuestsHost(), files: { [MANIFEST]: '{ not json' } });
    const r = await host.run('generate');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${join(host.root, MANIFEST)}: the record of generated files is damaged`);
  });
});

describe('--json', () => {
  it('a refusal lists the files in the way and nothing as written', async () => {
    const host = givenHost({ ...threeGuestsHost(), files: { [RULES]: CHZDEV_RULES } });
    const r = await host.json('generate');
    expect(r.code).toBe(3);
    expect(r.doc).toEqual({
      dry_run: false,
      refused: true,
      written: [],
      unchanged: [],
      removed: [],
      file_conflicts: [{ path: join(host.root, RULES), reason: 'not-generated' }],
      reload: [],
    });
  });
});
