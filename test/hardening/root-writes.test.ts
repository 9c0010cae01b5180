// What root writes, and where: each story is the attack or the fault itself.
// The tool runs as root under --root; nothing may be written or removed
// outside the root, through a link a user could plant or change, or left
// half-done.

import { chmodSync, chownSync, lchownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GUEST1, GUEST2, GUEST3, THREE_GUESTS_STORE, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { ACTIVE, exampleHost } from '../callout/support.js';
import { givenHost, tempDir } from '../support/host.js';
import { givenSimulatedHost } from '../support/sim-host.js';
import { writeMark } from '../../src/fsio/mark.js';
import { itWith } from '../support/real-tools.js';
import { IdSet } from '../../src/model/idset.js';
import { parseIdList } from '../../src/model/idlist.js';

const STORE = 'etc/ap-persist/ap-persist.conf';
const NOBODY = 65534;
const asRoot = { missing: process.geteuid?.() === 0 ? undefined : 'needs root to make files owned by another user' };

/** A file outside every root the tool is given: what an attacker wants root to overwrite or delete. */
function victim(): string {
  const path = join(tempDir('ap-persist-victim-'), 'shadow');
  writeFileSync(path, 'root:secret\n');
  return path;
}

describe('a symlinked store (configuration management links it to its own file)', () => {
  it('is written through: the link stays, its target gets the change', async () => {
    const host = givenHost(threeGuestsHost());
    const managed = join(tempDir('ap-persist-cm-'), 'ap-persist.conf');
    renameSync(join(host.root, STORE), managed);
    symlinkSync(managed, join(host.root, STORE));
    const r = await host.run('mask', 'set', '--persistent', '--no-generate', 'apmask=-8');
    expect(r.code, r.stderr).toBe(0);
    expect(lstatSync(join(host.root, STORE)).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(host.root, STORE))).toBe(managed);
    expect(readFileSync(managed, 'utf8')).toMatch(/apmask = 0-4,7,9-255/);
  });

  for (const [how, prepare] of [
    ['in a directory any user can write', (dir: string) => chmodSync(dir, 0o777)],
    ['owned by another user', (dir: string) => chownSync(join(dir, 'ap-persist.conf'), NOBODY, NOBODY)],
  ] as const) {
    itWith(asRoot, `whose target is ${how} is refused (exit 1), and nothing changes`, async () => {
      const host = givenHost(threeGuestsHost());
      const dir = tempDir('ap-persist-cm-');
      const managed = join(dir, 'ap-persist.conf');
      renameSync(join(host.root, STORE), managed);
      symlinkSync(managed, join(host.root, STORE));
      prepare(dir);
      const before = readFileSync(managed, 'utf8');
      const r = await host.run('mask', 'set', '--persistent', '--no-generate', 'apmask=-8');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`is a symbolic link to ${managed}, and`);
      expect(r.stderr).toContain('can be changed by a user other than root; root will not write through it');
      expect(readFileSync(managed, 'utf8')).toBe(before);
    });
  }
});

describe('a symlinked store in a symlinked directory (relative links, as a configuration tool lays them out)', () => {
  it("is written where the kernel takes the link's target: from the directory the link really sits in", async () => {
    const host = givenHost(threeGuestsHost());
    // etc/ap-persist -> ../srv/cm, and there ap-persist.conf -> ../shared/ap.conf: the store is srv/shared/ap.conf.
    mkdirSync(join(host.root, 'srv/cm'), { recursive: true });
    mkdirSync(join(host.root, 'srv/shared'));
    renameSync(join(host.root, STORE), join(host.root, 'srv/shared/ap.conf'));
    rmSync(join(host.root, 'etc/ap-persist'), { recursive: true });
    symlinkSync('../srv/cm', join(host.root, 'etc/ap-persist'));
    symlinkSync('../shared/ap.conf', join(host.root, 'srv/cm/ap-persist.conf'));
    // Where the target would be, taken from the link's path as written (etc/ap-persist/..): a file that must not change.
    mkdirSync(join(host.root, 'etc/shared'));
    writeFileSync(join(host.root, 'etc/shared/ap.conf'), 'not the store\n');
    const r = await host.run('mask', 'set', '--persistent', '--no-generate', 'apmask=-8');
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(host.root, 'srv/shared/ap.conf'), 'utf8')).toMatch(/apmask = 0-4,7,9-255/);
    expect(readFileSync(join(host.root, 'etc/shared/ap.conf'), 'utf8')).toBe('not the store\n');
    expect(readlinkSync(join(host.root, 'srv/cm/ap-persist.conf'))).toBe('../shared/ap.conf');
  });
});

describe('a symlinked store whose chain passes through a user', () => {
  itWith(asRoot, "a hop in a user's directory, though it ends at a root-only file: refused, the file untouched", async () => {
    const host = givenHost(threeGuestsHost());
    const target = join(tempDir('ap-persist-cm-'), 'ap-persist.conf');
    renameSync(join(host.root, STORE), target);
    // The user owns the directory of a hop, and could re-point it between our check and our write.
    const alice = tempDir('ap-persist-alice-');
    chownSync(alice, NOBODY, NOBODY);
    const hop = join(alice, 'ap.conf');
    symlinkSync(target, hop);
    lchownSync(hop, NOBODY, NOBODY);
    symlinkSync(hop, join(host.root, STORE));
    const before = readFileSync(target, 'utf8');
    const r = await host.run('mask', 'set', '--persistent', '--no-generate', 'apmask=-8');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`is a symbolic link to ${target}, and ${alice} can be changed by a user other than root`);
    expect(readFileSync(target, 'utf8')).toBe(before);
  });
});

describe('a store that is no regular file never blocks', () => {
  it('a FIFO: check and the hook stop at once (exit 1) naming it, and the hook gives the lock back', async () => {
    const host = givenHost(threeGuestsHost());
    const store = join(host.root, STORE);
    rmSync(store);
    expect(spawnSync('mkfifo', [store]).status).toBe(0);
    const check = await host.run('check');
    expect(check.code).toBe(1);
    expect(check.stderr).toContain(`${store}: the store is a FIFO, not a regular file`);
    const hook = await host.run('hook', '--event', 'change-1');
    expect(hook.code).not.toBe(0);
    expect(existsSync(join(host.root, 'run/lock/s390apconfig.lock'))).toBe(false);
  });
});

describe('nothing outside --root is written or removed', () => {
  it("a record of generated files naming '../../../x': damaged (exit 2), the file outside untouched", async () => {
    const host = givenHost(threeGuestsHost());
    expect((await host.run('generate', '--no-reload')).code).toBe(0);
    const target = victim();
    const manifest = join(host.root, 'etc/ap-persist/generated.json');
    const doc = JSON.parse(readFileSync(manifest, 'utf8'));
    doc.files.push({ path: `../../../../../../../../${target.slice(1)}`, sha256: 'x' });
    writeFileSync(manifest, JSON.stringify(doc));
    const r = await host.run('generate', '--no-reload');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('is not a plain path under the root');
    expect(readFileSync(target, 'utf8')).toBe('root:secret\n');
  });

  it('a directory under the root linked out of it: generate refuses to write through it (exit 1)', async () => {
    const host = givenHost(threeGuestsHost());
    const outside = tempDir('ap-persist-outside-');
    mkdirSync(join(host.root, 'etc/mdevctl.d'), { recursive: true });
    symlinkSync(outside, join(host.root, 'etc/mdevctl.d/matrix'));
    const r = await host.run('generate', '--no-reload');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`leads outside ${host.root}; nothing there was touched`);
    expect(readdirSync(outside)).toEqual([]);
  });

  it('a sysfs attribute linked out of the root: the mask write is refused, the file outside untouched', async () => {
    const host = givenHost(exampleHost());
    const apmask = join(host.root, 'sys/bus/ap/apmask');
    // The file outside holds what the mask holds, so that reading it through the link succeeds.
    const target = victim();
    const mask = readFileSync(apmask, 'utf8');
    writeFileSync(target, mask);
    rmSync(apmask);
    symlinkSync(target, apmask);
    const r = await host.run('mask', 'set', '--active', 'apmask=-3');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot write sysfs bus/ap/apmask: EXDEV (leads outside sysfs, to ${target})`);
    expect(readFileSync(target, 'utf8')).toBe(mask);
  });

  it('a newline in --config never reaches 41-ap.rules: exit 2, no file written', async () => {
    const host = givenHost(threeGuestsHost());
    const before = host.snapshot();
    const r = await host.run('--config', `${host.root}/x\nATTR{../../bus/ap/apmask}="0x0"/s.conf`, 'generate', '--no-reload');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--config: ');
    expect(r.stderr).toContain('holds a control character');
    expect(host.snapshot()).toEqual(before);
  });
});

describe("the hook's marks in /run", () => {
  it('a link planted where a mark goes is not written through: the mark fails, the target is untouched', () => {
    const root = tempDir();
    const target = victim();
    mkdirSync(join(root, 'run/ap-persist/held'), { recursive: true });
    symlinkSync(target, join(root, 'run/ap-persist/held/all'));
    expect(() => writeMark(join(root, 'run/ap-persist/held/all'), 'held\n')).toThrow(/cannot write the file: ELOOP/);
    expect(readFileSync(target, 'utf8')).toBe('root:secret\n');
  });

  it('is made with its directory, and says what it was given', () => {
    const root = tempDir();
    writeMark(join(root, 'run/ap-persist/held/x'), 'a reason\n');
    writeMark(join(root, 'run/ap-persist/held/x'), 'another\n');
    expect(readFileSync(join(root, 'run/ap-persist/held/x'), 'utf8')).toBe('another\n');
  });
});

describe('install --bin and --node: what root will run', () => {
  itWith(asRoot, 'a world-writable program, or one in a directory any user can write, is refused (exit 2), nothing written', async () => {
    for (const [what, mode, dirMode] of [
      ['the program', 0o666, 0o755],
      ['its directory', 0o644, 0o777],
    ] as const) {
      const host = givenHost(threeGuestsHost());
      const dir = join(host.root, 'opt/ap');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'ap-persist.cjs'), '');
      chmodSync(join(dir, 'ap-persist.cjs'), mode);
      chmodSync(dir, dirMode);
      const before = host.snapshot();
      const r = await host.run('install', '--bin', '/opt/ap/ap-persist.cjs');
      expect(r.code, what).toBe(2);
      expect(r.stderr).toContain(`--bin: ${join(dir, 'ap-persist.cjs')} would run as root, but ${what === 'the program' ? join(dir, 'ap-persist.cjs') : dir} can be changed by a user other than root`);
      expect(host.snapshot()).toEqual(before);
    }
  });
});

describe('a boot file masked with a link to /dev/null (udev\'s way to switch a rule off)', () => {
  it("generate --force replaces the link with a file of its own mode, not /dev/null's 0666", async () => {
    const host = givenHost(threeGuestsHost());
    const rules = join(host.root, 'etc/udev/rules.d/41-ap.rules');
    mkdirSync(join(host.root, 'etc/udev/rules.d'), { recursive: true });
    rmSync(rules, { force: true });
    symlinkSync('/dev/null', rules);
    // Under umask 0 (a unit's UMask=0000, say) a mode taken from /dev/null reaches the file unchanged.
    const umask = process.umask(0);
    try {
      const r = await host.run('generate', '--force');
      expect(r.code, r.stderr).toBe(0);
    } finally {
      process.umask(umask);
    }
    expect(lstatSync(rules).isFile()).toBe(true);
    expect(lstatSync(rules).mode & 0o7777).toBe(0o644);
    expect(lstatSync('/dev/null').isCharacterDevice()).toBe(true);
  });
});

describe('leftovers of a killed run', () => {
  it("a temporary file whose writer is gone is removed by the next write; a live writer's stays", async () => {
    const host = givenHost(threeGuestsHost());
    const dir = join(host.root, 'etc/ap-persist');
    writeFileSync(join(dir, '.ap-persist.conf.tmp-4194304-1'), 'half');
    writeFileSync(join(dir, `.ap-persist.conf.tmp-${process.pid}-1`), 'in progress');
    expect((await host.run('mask', 'set', '--persistent', '--no-generate', 'apmask=-8')).code).toBe(0);
    expect(existsSync(join(dir, '.ap-persist.conf.tmp-4194304-1'))).toBe(false);
    expect(existsSync(join(dir, `.ap-persist.conf.tmp-${process.pid}-1`))).toBe(true);
  });

  // generate writes through a batch (one listing per directory): the same rule, file and link.
  const MATRIX = 'etc/mdevctl.d/matrix';
  const WANTS = 'etc/systemd/system/ap-persist-mdevs.target.wants';

  it("generate removes a dead writer's temporary files beside the files and links it writes; a live writer's stays, and so does one beside a name it does not write", async () => {
    const host = givenHost(threeGuestsHost());
    mkdirSync(join(host.root, MATRIX), { recursive: true });
    mkdirSync(join(host.root, WANTS), { recursive: true });
    const dead = [`${MATRIX}/.${GUEST1}.tmp-4194304-1`, `${WANTS}/.ap-persist-mdev@${GUEST3}.service.tmp-4194304`];
    const kept = [`${MATRIX}/.${GUEST2}.tmp-${process.pid}-1`, `${MATRIX}/.not-generated.tmp-4194304-1`];
    writeFileSync(join(host.root, dead[0]!), 'half');
    symlinkSync('/usr/lib/systemd/system/ap-persist-mdev@.service', join(host.root, dead[1]!));
    for (const p of kept) writeFileSync(join(host.root, p), 'in progress');
    const r = await host.run('generate');
    expect(r.code, r.stderr).toBe(0);
    expect(host.read(`${MATRIX}/${GUEST1}`)).toContain('"start": "auto"');
    expect(host.has(`${WANTS}/ap-persist-mdev@${GUEST3}.service`)).toBe(true);
    for (const p of dead) expect(host.has(p), p).toBe(false);
    for (const p of kept) expect(host.has(p), p).toBe(true);
  });

  it('each run looks again: a leftover a killed run left after the last run (same process, same root) is removed by the next', async () => {
    const host = givenHost(threeGuestsHost());
    expect((await host.run('generate')).code).toBe(0);
    const leftover = `${MATRIX}/.${GUEST1}.tmp-4194304-2`;
    writeFileSync(join(host.root, leftover), 'half');
    writeFileSync(join(host.root, STORE), THREE_GUESTS_STORE.replace('start = auto              ; started at boot', 'start = manual'));
    const r = await host.run('generate');
    expect(r.code, r.stderr).toBe(0);
    expect(host.read(`${MATRIX}/${GUEST1}`)).toContain('"start": "manual"');
    expect(host.has(leftover)).toBe(false);
  });
});

describe('a mask change the store cannot take', () => {
  itWith(asRoot, 'the kernel is not changed either: the store is checked before any sysfs write', async () => {
    const host = givenSimulatedHost(exampleHost(), '6.0');
    const dir = tempDir('ap-persist-cm-');
    const managed = join(dir, 'ap-persist.conf');
    renameSync(join(host.root, STORE), managed);
    symlinkSync(managed, join(host.root, STORE));
    chmodSync(dir, 0o777);
    const before = { apmask: host.kernel().read('bus/ap/apmask'), store: readFileSync(managed, 'utf8') };
    const r = await host.run(['mask', 'set', 'apmask=-3']);
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain('set active');
    expect({ apmask: host.kernel().read('bus/ap/apmask'), store: readFileSync(managed, 'utf8') }).toEqual(before);
  });
});

describe('a mask change the store cannot take after the kernel took it', () => {
  it("the active masks go back, but not over a queue an mdev took meanwhile (5.4: nothing in the kernel checks)", async () => {
    const host = givenSimulatedHost(exampleHost(), '5.4');
    const kernel = host.kernel();
    const before = kernel.read('bus/ap/apmask');
    const write = kernel.write.bind(kernel);
    let raced = false;
    kernel.write = (path: string, data: string): void => {
      write(path, data);
      if (path !== 'bus/ap/apmask' || raced) return;
      raced = true;
      // Meanwhile: an assign that did not wait for the AP lock takes 03.0004, which the change gave vfio_ap;
      // and the store cannot take the change (a directory now stands where the file was).
      kernel.adoptMdev(ACTIVE, IdSet.of([3]), IdSet.of([4]), IdSet.empty());
      rmSync(join(host.root, STORE));
      mkdirSync(join(host.root, STORE));
    };
    const r = await host.run(['mask', 'set', 'apmask=-3']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`warning: the store could not take the change, so the active masks were to go back: 03.0004 of ${ACTIVE}: adapter 3 kept out of apmask`);
    expect(kernel.read('bus/ap/apmask')).not.toBe(before);
    expect(kernel.state().apmask).toBe(parseIdList('0,4-255').toKernelHex());
  });
});

describe('a mask change the kernel refuses half-way', () => {
  it('the write the kernel took is undone: the active masks are as they were, the store untouched', async () => {
    const host = givenSimulatedHost(exampleHost({ activeMdevs: [{ uuid: ACTIVE, adapters: [1], domains: [7] }] }), '6.0');
    const before = { apmask: host.kernel().read('bus/ap/apmask'), aqmask: host.kernel().read('bus/ap/aqmask') };
    const store = host.read(STORE);
    host.kernel().failWrite('bus/ap/aqmask', 'EBUSY');
    const r = await host.run(['mask', 'set', '--active', 'apmask=-3', 'aqmask=-9']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the active masks are as they were; nothing was written to the store');
    expect({ apmask: host.kernel().read('bus/ap/apmask'), aqmask: host.kernel().read('bus/ap/aqmask') }).toEqual(before);
    expect(host.read(STORE)).toBe(store);
  });
});
