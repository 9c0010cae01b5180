// status and mdev list as the admin of the talk's host reads them (the three
// guests of src/fakehost/talk-guests.ts, all `start = guest`): which running
// guest holds which mdev now, which guest mdevs wait for their guest, and
// which libvirt guests name each mdev. All from libvirt's files: its
// definitions (etc/libvirt/qemu/<name>.xml) and the status files of running
// guests (run/libvirt/qemu/<name>.xml, a <domstatus> around the <domain>).

import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TALK_GUEST1, TALK_GUEST2, TALK_GUEST3, TALK_STORE, talkGuestsHost } from '../../src/fakehost/talk-guests.js';
import { GUEST1, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { givenHost } from '../support/host.js';
import { givenSimulatedHost, type SimHost } from '../support/sim-host.js';

const FIXTURES = new URL('../fixtures/libvirt/', import.meta.url);
const xml = (file: string): string => readFileSync(new URL(file, FIXTURES), 'utf8');
const DOMAINS = { Guest1: xml('guest1.xml'), Guest2: xml('guest2.xml'), Guest3: xml('guest3.xml') };
type Name = keyof typeof DOMAINS;

/** A running guest's status file, as libvirt writes it. */
const statusFile = (domain: string): string => `<domstatus state='running' reason='booted' pid='4242'>\n${domain}</domstatus>\n`;

/** The three guests defined in libvirt (virsh define). */
const DEFINED = { 'etc/libvirt/qemu/Guest1.xml': DOMAINS.Guest1, 'etc/libvirt/qemu/Guest2.xml': DOMAINS.Guest2, 'etc/libvirt/qemu/Guest3.xml': DOMAINS.Guest3 };

/** libvirt's own formatted domain (its test suite): QEMUGuest1, whose vfio-ap mdev is this one. */
const QEMU_GUEST1_XML = xml('tests__qemuxml2xmloutdata__hostdev-subsys-mdev-vfio-ap.xml');
const QEMU_GUEST1_MDEV = '90c6c135-ad44-41d0-b1b7-bae47de48627';

/** libvirt starting and stopping a guest: the qemu hook as libvirt runs it, and the status file while it runs. */
function libvirt(host: SimHost) {
  const statusDir = join(host.root, 'run/libvirt/qemu');
  const hook = (name: Name, op: string, sub: string) => host.run(['libvirt-hook', name, op, sub, '-'], {}, DOMAINS[name]);
  return {
    async start(name: Name) {
      const r = await hook(name, 'prepare', 'begin');
      expect(r.code, r.stderr).toBe(0);
      mkdirSync(statusDir, { recursive: true });
      writeFileSync(join(statusDir, `${name}.xml`), statusFile(DOMAINS[name]));
    },
    async stop(name: Name) {
      rmSync(join(statusDir, `${name}.xml`), { force: true });
      await hook(name, 'stopped', 'end');
      expect((await hook(name, 'release', 'end')).code).toBe(0);
    },
  };
}

async function simJson(host: SimHost, ...args: string[]): Promise<any> {
  const r = await host.run(['--json', ...args]);
  return JSON.parse(r.stdout);
}

/** status's guest section: from its caption to the blank line after it. */
function guestSection(stdout: string): string[] {
  const lines = stdout.split('\n');
  const from = lines.indexOf("guests, as libvirt's domain XML names their mdevs:");
  return from < 0 ? [] : lines.slice(from, lines.indexOf('', from));
}

/** A table row: its cells, split where the table puts two or more spaces. */
function row(stdout: string, uuid: string): string[] | undefined {
  return stdout.split('\n').find((l) => l.startsWith(uuid))?.split(/ {2,}/);
}

describe("the talk's three guests: Guest1 and Guest3 run, Guest2 waits", () => {
  async function talkHost(): Promise<SimHost> {
    const host = givenSimulatedHost({ ...talkGuestsHost(), files: DEFINED }, '6.0');
    const lv = libvirt(host);
    await lv.start('Guest1');
    await lv.start('Guest3');
    return host;
  }

  it('status says which guest holds which mdev, and that guest2 waits for Guest2', async () => {
    const host = await talkHost();
    const r = await host.run(['status']);
    expect(r.code, r.stderr).toBe(0);
    expect(guestSection(r.stdout)).toEqual([
      "guests, as libvirt's domain XML names their mdevs:",
      `  Guest1 (running) holds mdev ${TALK_GUEST1} (guest1)`,
      `  Guest3 (running) holds mdev ${TALK_GUEST3} (guest3)`,
      `  mdev ${TALK_GUEST2} (guest2), start = guest, waits for Guest2 to start`,
    ]);
    // The section comes right after the mdev table.
    expect(r.stdout).toMatch(/^mdevs, by name then UUID .*\n(.*\n){4}\nguests, as libvirt's/m);
    expect(row(r.stdout, 'UUID')).toEqual(['UUID', 'NAME', 'ADAPTERS', 'DOMAINS', 'CONTROL', 'START', 'STATE', 'GUESTS']);
    expect(row(r.stdout, TALK_GUEST1)).toEqual([TALK_GUEST1, 'guest1', '01-02', '0001', '-', 'guest', 'defined, active', 'Guest1 (running)']);
    expect(row(r.stdout, TALK_GUEST2)).toEqual([TALK_GUEST2, 'guest2', '02-03', '0001-0002', '-', 'guest', 'defined, inactive', 'Guest2']);
    expect(row(r.stdout, TALK_GUEST3)).toEqual([TALK_GUEST3, 'guest3', '01', '0002', '-', 'guest', 'defined, active', 'Guest3 (running)']);
  });

  it('status --json carries both: guests_holding and guest_mdevs_waiting, beside each mdev its guests', async () => {
    const host = await talkHost();
    const doc = await simJson(host, 'status');
    expect(doc.guests_holding).toEqual([
      { guest: 'Guest1', uuid: TALK_GUEST1, name: 'guest1' },
      { guest: 'Guest3', uuid: TALK_GUEST3, name: 'guest3' },
    ]);
    expect(doc.guest_mdevs_waiting).toEqual([{ uuid: TALK_GUEST2, name: 'guest2', guests: ['Guest2'] }]);
    expect(doc.guest_mdevs_idle).toEqual([]);
    expect(doc.mdevs.map((m: any) => [m.name, m.start, m.active, m.guests, m.held_by])).toEqual([
      ['guest1', 'guest', true, ['Guest1'], ['Guest1']],
      ['guest2', 'guest', false, ['Guest2'], []],
      ['guest3', 'guest', true, ['Guest3'], ['Guest3']],
    ]);
    // What was there before stays.
    for (const key of ['store', 'store_error', 'ap_bus', 'masks', 'vfio_ap_loaded', 'matrix', 'guest_shortfalls', 'boot_files', 'callouts', 'last_hook']) expect(doc).toHaveProperty(key);
  });

  it('mdev list shows the same table, and --json each mdev with guests and held_by', async () => {
    const host = await talkHost();
    const r = await host.run(['mdev', 'list']);
    expect(r.stdout.split('\n')[0]).toMatch(/^UUID +NAME +ADAPTERS +DOMAINS +CONTROL +START +STATE +GUESTS$/);
    expect(row(r.stdout, TALK_GUEST1)).toEqual([TALK_GUEST1, 'guest1', '01-02', '0001', '-', 'guest', 'defined, active', 'Guest1 (running)']);
    expect(row(r.stdout, TALK_GUEST2)).toEqual([TALK_GUEST2, 'guest2', '02-03', '0001-0002', '-', 'guest', 'defined, inactive', 'Guest2']);
    expect(await simJson(host, 'mdev', 'list')).toEqual([
      { uuid: TALK_GUEST1, name: 'guest1', adapters: [1, 2], domains: [1], control_domains: [], start: 'guest', defined: true, defined_by: 'store', active: true, guests: ['Guest1'], held_by: ['Guest1'] },
      { uuid: TALK_GUEST2, name: 'guest2', adapters: [2, 3], domains: [1, 2], control_domains: [], start: 'guest', defined: true, defined_by: 'store', active: false, guests: ['Guest2'], held_by: [] },
      { uuid: TALK_GUEST3, name: 'guest3', adapters: [1], domains: [2], control_domains: [], start: 'guest', defined: true, defined_by: 'store', active: true, guests: ['Guest3'], held_by: ['Guest3'] },
    ]);
    expect((await simJson(host, 'mdev', 'list', '--active')).map((m: any) => [m.name, m.held_by])).toEqual([['guest1', ['Guest1']], ['guest3', ['Guest3']]]);
  });

  it('Guest1 stops and Guest2 starts: now Guest2 holds guest2, and guest1 waits for Guest1', async () => {
    const host = await talkHost();
    const lv = libvirt(host);
    await lv.stop('Guest1');
    await lv.start('Guest2');
    const r = await host.run(['status']);
    expect(guestSection(r.stdout)).toEqual([
      "guests, as libvirt's domain XML names their mdevs:",
      `  Guest2 (running) holds mdev ${TALK_GUEST2} (guest2)`,
      `  Guest3 (running) holds mdev ${TALK_GUEST3} (guest3)`,
      `  mdev ${TALK_GUEST1} (guest1), start = guest, waits for Guest1 to start`,
    ]);
    const doc = await simJson(host, 'status');
    expect(doc.guests_holding.map((h: any) => [h.guest, h.uuid])).toEqual([['Guest2', TALK_GUEST2], ['Guest3', TALK_GUEST3]]);
    expect(doc.guest_mdevs_waiting).toEqual([{ uuid: TALK_GUEST1, name: 'guest1', guests: ['Guest1'] }]);
  });

  it('before any guest starts, all three wait, each for the guest whose definition names it', async () => {
    const host = givenSimulatedHost({ ...talkGuestsHost(), files: DEFINED }, '6.0');
    const r = await host.run(['status']);
    expect(guestSection(r.stdout)).toEqual([
      "guests, as libvirt's domain XML names their mdevs:",
      `  mdev ${TALK_GUEST1} (guest1), start = guest, waits for Guest1 to start`,
      `  mdev ${TALK_GUEST2} (guest2), start = guest, waits for Guest2 to start`,
      `  mdev ${TALK_GUEST3} (guest3), start = guest, waits for Guest3 to start`,
    ]);
    expect(row(r.stdout, TALK_GUEST3)).toEqual([TALK_GUEST3, 'guest3', '01', '0002', '-', 'guest', 'defined, inactive', 'Guest3']);
  });
});

describe('a guest mdev without its guest', () => {
  it('one that is up while its guest does not run (a release that never came) is said, with the guest it was made for', async () => {
    // guest2 was made for Guest2 (our record), but libvirt has no status file for Guest2.
    const host = givenHost({
      ...talkGuestsHost(),
      activeMdevs: [{ uuid: TALK_GUEST2, adapters: [2, 3], domains: [1, 2] }],
      files: { ...DEFINED, [`run/ap-persist/guests/${TALK_GUEST2}`]: 'Guest2\n' },
    });
    const r = await host.run('status');
    expect(guestSection(r.stdout)).toEqual([
      "guests, as libvirt's domain XML names their mdevs:",
      `  mdev ${TALK_GUEST2} (guest2), start = guest, is up but no running guest holds it (made for Guest2)`,
      `    its queues stay taken until 'ap-persist mdev stop ${TALK_GUEST2}'`,
      `  mdev ${TALK_GUEST1} (guest1), start = guest, waits for Guest1 to start`,
      `  mdev ${TALK_GUEST3} (guest3), start = guest, waits for Guest3 to start`,
    ]);
    expect(row(r.stdout, TALK_GUEST2)).toEqual([TALK_GUEST2, 'guest2', '02-03', '0001-0002', '-', 'guest', 'defined, active', 'Guest2']);
    const { doc } = await host.json('status');
    expect(doc.guest_mdevs_idle).toEqual([{ uuid: TALK_GUEST2, name: 'guest2', made_for: 'Guest2' }]);
    expect(doc.guests_holding).toEqual([]);
  });

  it('one no libvirt guest names waits for a guest, and says so; the START column still says guest', async () => {
    const host = givenHost(talkGuestsHost());
    const r = await host.run('status');
    expect(guestSection(r.stdout)).toContain(
      `  mdev ${TALK_GUEST1} (guest1), start = guest, waits for a guest, but no libvirt guest names it (a <hostdev type='mdev' model='vfio-ap'> with its UUID)`,
    );
    // No libvirt guest names any mdev: the table has no GUESTS column.
    const list = await host.run('mdev', 'list');
    expect(list.stdout.split('\n')[0]).toMatch(/^UUID +NAME +ADAPTERS +DOMAINS +CONTROL +START +STATE$/);
    expect(list.stdout).toMatch(new RegExp(`^${TALK_GUEST1} +guest1 +01-02 +0001 +- +guest +defined, inactive$`, 'm'));
    const { doc } = await host.json('status');
    expect(doc.guest_mdevs_waiting).toEqual([
      { uuid: TALK_GUEST1, name: 'guest1', guests: [] },
      { uuid: TALK_GUEST2, name: 'guest2', guests: [] },
      { uuid: TALK_GUEST3, name: 'guest3', guests: [] },
    ]);
  });
});

describe('a running guest holds an mdev whatever its start mode, and whoever defines it', () => {
  // QEMUGuest1 was started with `virsh create` (no definition, only its status file);
  // its mdev was made by hand and is defined nowhere.
  const spec = (store = TALK_STORE) => ({
    ...talkGuestsHost(),
    store,
    activeMdevs: [{ uuid: QEMU_GUEST1_MDEV, adapters: [3], domains: [2] }],
    files: { ...DEFINED, 'run/libvirt/qemu/QEMUGuest1.xml': statusFile(QEMU_GUEST1_XML) },
  });

  it('status and mdev list name the running guest, from its status file alone', async () => {
    const host = givenHost(spec());
    const r = await host.run('status');
    expect(guestSection(r.stdout)[1]).toBe(`  QEMUGuest1 (running) holds mdev ${QEMU_GUEST1_MDEV}`);
    expect(row(r.stdout, QEMU_GUEST1_MDEV)).toEqual([QEMU_GUEST1_MDEV, '-', '03', '0002', '-', '-', 'not defined, active', 'QEMUGuest1 (running)']);
    const list = (await host.json('mdev', 'list')).doc;
    expect(list.find((m: any) => m.uuid === QEMU_GUEST1_MDEV)).toMatchObject({ start: null, defined_by: null, active: true, guests: ['QEMUGuest1'], held_by: ['QEMUGuest1'] });
  });

  it('an auto mdev held by a running guest is listed as held, and never as waiting or idle', async () => {
    const host = givenHost(spec(`${TALK_STORE}\n[mdev.${QEMU_GUEST1_MDEV}]\nname = qemu1\nadapters = 3\ndomains = 2\nstart = auto\n`));
    const { doc } = await host.json('status');
    expect(doc.guests_holding).toEqual([{ guest: 'QEMUGuest1', uuid: QEMU_GUEST1_MDEV, name: 'qemu1' }]);
    expect(doc.guest_mdevs_waiting.map((m: any) => m.uuid)).toEqual([TALK_GUEST1, TALK_GUEST2, TALK_GUEST3]);
    expect(doc.guest_mdevs_idle).toEqual([]);
  });

  it('a store that cannot be read still shows who holds what (exit 2)', async () => {
    const host = givenHost(spec(TALK_STORE.replace('adapters = 2,3\n', 'adapters = 3-2\n')));
    const r = await host.run('status');
    expect(r.code).toBe(2);
    expect(guestSection(r.stdout)).toEqual(["guests, as libvirt's domain XML names their mdevs:", `  QEMUGuest1 (running) holds mdev ${QEMU_GUEST1_MDEV}`]);
    expect(row(r.stdout, QEMU_GUEST1_MDEV)).toEqual([QEMU_GUEST1_MDEV, '-', '03', '0002', '-', '-', 'store unreadable, active', 'QEMUGuest1 (running)']);
  });
});

describe('a host without libvirt guests or guest mdevs', () => {
  it('status and mdev list look as they did: no guest section, no GUESTS column; --json has the fields, empty', async () => {
    const host = givenHost(threeGuestsHost());
    const r = await host.run('status');
    expect(r.stdout).not.toContain('guests, as libvirt');
    expect(r.stdout).toMatch(new RegExp(`^${GUEST1} +guest1 +05-06 +0004,00ab +00ab +auto +defined, inactive$`, 'm'));
    expect((await host.run('mdev', 'list')).stdout.split('\n')[0]).toMatch(/ STATE$/);
    const { doc } = await host.json('status');
    expect([doc.guests_holding, doc.guest_mdevs_waiting, doc.guest_mdevs_idle]).toEqual([[], [], []]);
    expect(doc.mdevs.every((m: any) => m.guests.length === 0 && m.held_by.length === 0)).toBe(true);
  });
});

describe('status run by another user than root', () => {
  const BIN = new URL('../../dist/bin/ap-persist.cjs', import.meta.url).pathname;
  it.runIf(process.geteuid?.() === 0)("says libvirt's files could not be read, rather than that no guest names the mdevs", () => {
    const host = givenHost({ ...talkGuestsHost(), files: { ...DEFINED, 'run/libvirt/qemu/Guest1.xml': statusFile(DOMAINS.Guest1) } });
    // libvirt keeps its directories root's alone; the rest of the host is readable by all.
    // The test's own directories up to the temporary one; never a shared sticky one such as /tmp.
    const top = tmpdir();
    for (let dir = host.root; dir === top || dir.startsWith(`${top}/`); dir = dirname(dir)) {
      const st = statSync(dir);
      if (st.uid === 0 && (st.mode & 0o1000) === 0) chmodSync(dir, 0o755);
    }
    chmodSync(join(host.root, 'etc/libvirt/qemu'), 0o700);
    chmodSync(join(host.root, 'run/libvirt/qemu'), 0o700);
    const r = spawnSync(process.execPath, [BIN, '--root', host.root, 'status'], { uid: 65534, gid: 65534, encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
    expect(r.stdout).toContain(`libvirt's files could not be read (${join(host.root, 'run/libvirt/qemu')} (EACCES), ${join(host.root, 'etc/libvirt/qemu')} (EACCES)): no guest is shown; run as root to see them`);
  });
});
