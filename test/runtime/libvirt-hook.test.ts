// The talk's three guests (src/fakehost/talk-guests.ts), all `start = guest`,
// on the simulated kernel, driven through libvirt's qemu hook exactly as
// libvirt calls it: `<name> <operation> <sub-operation> -`, the domain XML
// on stdin, and libvirt's status file /run/libvirt/qemu/<name>.xml present
// while a guest runs (written after `started`, removed before `release`).

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TALK_GUEST1, TALK_GUEST2, TALK_GUEST3, TALK_STORE, talkGuestsHost } from '../../src/fakehost/talk-guests.js';
import { domainDevices } from '../../src/model/libvirt-domain.js';
import { listActiveMdevs } from '../../src/sysfs/ap-host.js';
import { givenSimulatedHost, type SimHost } from '../support/sim-host.js';

const FIXTURES = new URL('../fixtures/libvirt/', import.meta.url);
const xml = (file: string): string => readFileSync(new URL(file, FIXTURES), 'utf8');
const DOMAINS = { Guest1: xml('guest1.xml'), Guest2: xml('guest2.xml'), Guest3: xml('guest3.xml'), Plain: xml('no-vfio-ap.xml') };
type Name = keyof typeof DOMAINS;

/** libvirt's side: the hook calls of a start and a stop, and the status file in between. */
function libvirt(host: SimHost) {
  const statusDir = join(host.root, 'run/libvirt/qemu');
  const hook = (name: Name, op: string, sub: string) => host.run(['libvirt-hook', name, op, sub, '-'], {}, DOMAINS[name]);
  return {
    hook,
    /** virsh start: prepare begin; on success the guest runs (status file). */
    async start(name: Name) {
      const r = await hook(name, 'prepare', 'begin');
      if (r.code === 0) {
        mkdirSync(statusDir, { recursive: true });
        writeFileSync(join(statusDir, `${name}.xml`), `<domstatus state='running' reason='booted' pid='4242'>\n${DOMAINS[name]}</domstatus>\n`);
      } else {
        // A failed prepare: libvirt stops the half-started guest, which runs stopped and release.
        await hook(name, 'stopped', 'end');
        await hook(name, 'release', 'end');
      }
      return r;
    },
    /** virsh shutdown: the status file goes, then stopped end and release end. */
    async stop(name: Name) {
      rmSync(join(statusDir, `${name}.xml`), { force: true });
      await hook(name, 'stopped', 'end');
      return hook(name, 'release', 'end');
    },
  };
}

/** The mdevs vfio_ap has now, as sysfs shows them. */
const active = (host: SimHost): string[] => listActiveMdevs(host.kernel()).map((m) => m.uuid).sort();

describe("libvirt's qemu hook and the talk's three guests", () => {
  it('the domain XML names the mdev each guest uses', () => {
    expect(domainDevices(DOMAINS.Guest1)).toEqual({ name: 'Guest1', mdevs: [TALK_GUEST1], anyMdevs: [TALK_GUEST1] });
    // A vfio-ccw mdev is held by its guest, but is none of the hook's.
    expect(domainDevices(xml('vfio-ccw-only.xml'))).toMatchObject({ mdevs: [], anyMdevs: ['a6f1c0de-3b2e-4f5a-9c8d-7e6f5a4b3c2d'] });
    expect(domainDevices(DOMAINS.Guest2).mdevs).toEqual([TALK_GUEST2]);
    expect(domainDevices(DOMAINS.Plain).mdevs).toEqual([]);
  });

  it('all three are defined with start = guest and pass check, though Guest1 and Guest2 overlap; mdevctl knows them as manual, which is no drift', async () => {
    const host = givenSimulatedHost(talkGuestsHost(), '6.0');
    expect((await host.run(['generate'])).code).toBe(0);
    expect(JSON.parse(host.read(`etc/mdevctl.d/matrix/${TALK_GUEST2}`)).start).toBe('manual');
    // No wants link: nothing makes a guest mdev at boot.
    expect(existsSync(join(host.root, 'etc/systemd/system/ap-persist-mdevs.target.wants'))).toBe(false);
    const r = await host.run(['check']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toMatch(/02\.0001|drift|changed/);
  });

  it('check refuses a guest mdev on an APQN the persistent masks give the host, and warns of one that shares APQNs with an auto mdev', async () => {
    const onHostQueue = TALK_STORE.replace('adapters = 1,2\ndomains = 1\nstart = guest', 'adapters = 1,4\ndomains = 1,3\nstart = guest');
    const masked = givenSimulatedHost({ ...talkGuestsHost(), store: onHostQueue }, '6.0');
    const r = await masked.run(['check']);
    expect(r.code).toBe(3);
    expect(r.stdout + r.stderr).toContain(`APQN 04.0003 (4.3) of guest mdev ${TALK_GUEST1} (guest1) belongs to the host by the persistent masks; it could never be made for its guest`);

    // Guest3 made at boot, and Guest1 on domain 2 too: they share 01.0002.
    const overlapping = TALK_STORE.replace(/(name = guest3\n(?:.*\n){2})start = guest/, '$1start = auto').replace('adapters = 1,2\ndomains = 1\n', 'adapters = 1,2\ndomains = 1,2\n');
    const host = givenSimulatedHost({ ...talkGuestsHost(), store: overlapping }, '6.0');
    const checked = await host.run(['--json', 'check']);
    expect(checked.code).toBe(0);
    const doc = JSON.parse(checked.stdout);
    expect(doc.conflicts).toEqual([]);
    expect(doc.warnings.filter((w: { kind: string }) => w.kind === 'guest-overlaps-auto').map((w: { message: string }) => w.message)).toEqual([
      `guest mdev ${TALK_GUEST1} (guest1) shares 1 APQN(s) (01.0002) with auto mdev ${TALK_GUEST3} (guest3), which holds them from boot: its guest can start only while that mdev is stopped`,
    ]);
  });

  it('Guest1 and Guest3 run together; Guest2 is refused while Guest1 runs, naming 02.0001 and Guest1; it starts once Guest1 stopped', async () => {
    const host = givenSimulatedHost(talkGuestsHost(), '6.0');
    const lv = libvirt(host);
    expect(active(host)).toEqual([]);

    expect((await lv.start('Guest1')).code).toBe(0);
    expect((await lv.start('Guest3')).code).toBe(0);
    expect(active(host)).toEqual([TALK_GUEST1, TALK_GUEST3].sort());

    const refused = await lv.start('Guest2');
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    const lines = refused.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ap-persist: guest Guest2 not started: its mdev ed03cf54-52b4-4c22-b6e4-0b19636db369 \(guest2\) cannot be made: APQN 02\.0001 is in use by mdev 2615c132-440f-45d3-b18d-7caffc4378df \(guest1\) of running guest Guest1$/);
    // Guest2's failed start ran its release: Guest1's mdev and Guest3's stay.
    expect(active(host)).toEqual([TALK_GUEST1, TALK_GUEST3].sort());

    expect((await lv.stop('Guest1')).code).toBe(0);
    expect(active(host)).toEqual([TALK_GUEST3]);
    expect((await lv.start('Guest2')).code).toBe(0);
    expect(active(host)).toEqual([TALK_GUEST2, TALK_GUEST3].sort());
    expect(host.read(`run/ap-persist/guests/${TALK_GUEST2}`)).toBe('Guest2\n');
  });

  it('a guest without vfio-ap devices, and every other operation, changes nothing and prints nothing', async () => {
    const host = givenSimulatedHost(talkGuestsHost(), '6.0');
    const lv = libvirt(host);
    const before = host.snapshot();
    for (const [op, sub] of [['prepare', 'begin'], ['start', 'begin'], ['started', 'begin'], ['stopped', 'end'], ['release', 'end'], ['reconnect', 'begin']]) {
      const r = await lv.hook('Plain', op!, sub!);
      expect([r.code, r.stdout, r.stderr]).toEqual([0, '', '']);
    }
    for (const [op, sub] of [['start', 'begin'], ['started', 'begin'], ['migrate', 'begin'], ['restore', 'begin'], ['stopped', 'end']]) {
      const r = await lv.hook('Guest1', op!, sub!);
      expect([r.code, r.stdout, r.stderr]).toEqual([0, '', '']);
    }
    expect(host.snapshot()).toEqual(before);
    expect(active(host)).toEqual([]);
  });

  it('release removes only what was made for that guest: not an mdev another running guest holds', async () => {
    const host = givenSimulatedHost(talkGuestsHost(), '6.0');
    const lv = libvirt(host);
    await lv.start('Guest1');
    // A second domain naming Guest1's mdev (libvirt would refuse it later): its release must leave the mdev.
    const twin = DOMAINS.Guest1.replace('<name>Guest1</name>', '<name>Twin</name>');
    const r = await host.run(['libvirt-hook', 'Twin', 'release', 'end', '-'], {}, twin);
    expect(r.code).toBe(0);
    expect(active(host)).toEqual([TALK_GUEST1]);
  });

  it('reconnect after a daemon restart learns who holds a running guest mdev, and never fails', async () => {
    const host = givenSimulatedHost(talkGuestsHost(), '6.0');
    const lv = libvirt(host);
    await lv.start('Guest1');
    rmSync(join(host.root, 'run/ap-persist/guests'), { recursive: true });
    expect((await lv.hook('Guest1', 'reconnect', 'begin')).code).toBe(0);
    expect(host.read(`run/ap-persist/guests/${TALK_GUEST1}`)).toBe('Guest1\n');
    // A store that cannot be read: still 0, with the reason on stderr.
    writeFileSync(join(host.root, 'etc/ap-persist/ap-persist.conf'), '[mdev.x]\nbogus = 1\n');
    const r = await lv.hook('Guest1', 'reconnect', 'begin');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('ap-persist: guest Guest1:');
  });

  it('a guest named like an option is a guest (the installed script passes its arguments after --)', async () => {
    const host = givenSimulatedHost(talkGuestsHost(), '6.0');
    for (const name of ['-x', '--json', '--help']) {
      const named = DOMAINS.Guest1.replace('<name>Guest1</name>', `<name>${name}</name>`);
      const made = await host.run(['libvirt-hook', '--', name, 'prepare', 'begin', '-'], {}, named);
      expect([made.code, made.stdout, made.stderr], name).toEqual([0, '', '']);
      expect(active(host), name).toEqual([TALK_GUEST1]);
      expect(host.read(`run/ap-persist/guests/${TALK_GUEST1}`)).toBe(`${name}\n`);
      const released = await host.run(['libvirt-hook', '--', name, 'release', 'end', '-'], {}, named);
      expect([released.code, released.stdout], name).toEqual([0, '']);
      expect(active(host), name).toEqual([]);
    }
  });

  it('bad arguments are exit 2 with what libvirt passes', async () => {
    const host = givenSimulatedHost(talkGuestsHost(), '6.0');
    const r = await host.run(['libvirt-hook', 'Guest1'], {}, DOMAINS.Guest1);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('libvirt-hook takes the guest');
  });
});

/** libvirt's hook calls for Twin, a guest whose domain names Guest1's mdev. */
function twinOf(host: SimHost) {
  const twin = DOMAINS.Guest1.replace('<name>Guest1</name>', '<name>Twin</name>');
  return (op: string, sub: string) => host.run(['libvirt-hook', 'Twin', op, sub, '-'], {}, twin);
}

describe('two guests that name the same start = guest mdev, started at the same time', () => {
  it('the one that made it owns it: the other\'s failed start leaves it, and the maker\'s stop removes it', async () => {
    const host = givenSimulatedHost(talkGuestsHost(), '6.0');
    const lv = libvirt(host);
    const twinHook = twinOf(host);
    // Guest1's prepare makes the mdev; before libvirt writes Guest1's status file, Twin's prepare finds it up.
    expect((await lv.hook('Guest1', 'prepare', 'begin')).code).toBe(0);
    expect((await twinHook('prepare', 'begin')).code).toBe(0);
    expect(readFileSync(join(host.root, `run/ap-persist/guests/${TALK_GUEST1}`), 'utf8')).toBe('Guest1\n');
    // Guest1 runs; Twin's QEMU cannot have the device, so libvirt stops it: its release leaves the mdev.
    mkdirSync(join(host.root, 'run/libvirt/qemu'), { recursive: true });
    writeFileSync(join(host.root, 'run/libvirt/qemu/Guest1.xml'), `<domstatus state='running' reason='booted' pid='4242'>\n${DOMAINS.Guest1}</domstatus>\n`);
    await twinHook('stopped', 'end');
    expect((await twinHook('release', 'end')).code).toBe(0);
    expect(active(host)).toContain(TALK_GUEST1);
    // Guest1's stop: its mdev goes with it.
    expect((await lv.stop('Guest1')).code).toBe(0);
    expect(active(host)).not.toContain(TALK_GUEST1);
  });

  it('a maker that runs no more: the guest that used the mdev since removes it when it stops', async () => {
    const host = givenSimulatedHost(talkGuestsHost(), '6.0');
    const lv = libvirt(host);
    const twinHook = twinOf(host);
    // Guest1 made it, then vanished without its release (a libvirtd that died with it); Twin ran with the mdev, and stops.
    expect((await lv.hook('Guest1', 'prepare', 'begin')).code).toBe(0);
    expect((await twinHook('prepare', 'begin')).code).toBe(0);
    await twinHook('stopped', 'end');
    expect((await twinHook('release', 'end')).code).toBe(0);
    expect(active(host)).not.toContain(TALK_GUEST1);
  });
});

