// A host set up the s390-tools way: chzdev wrote 41-ap.rules, libvirt had
// mdevctl write the definitions. Import takes it over; generate then gives
// back the same masks and mdevs, now restored by ap-persist.

import { describe, expect, it } from 'vitest';
import { GUEST1, GUEST2, GUEST3, THREE_GUESTS_STORE, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { IdSet } from '../../src/model/idset.js';
import { parseChzdevRules } from '../../src/generate/chzdev-rules.js';
import { givenHost } from '../support/host.js';
import { chzdevRulesText } from '../support/chzdev.js';

const APMASK = IdSet.full().minus(IdSet.of([5, 6]));
const AQMASK = IdSet.full().minus(IdSet.of([4, 0x47, 0xab, 0xff]));

/** 41-ap.rules exactly as chzdev (s390-tools 2.40 and later) writes it. */
const CHZDEV_RULES = chzdevRulesText(APMASK, AQMASK);

/** As mdevctl writes a definition: two-space JSON, no final newline; libvirt's hex attribute values. */
function mdevctlFile(start: string, attrs: [string, string][]): string {
  return JSON.stringify({ mdev_type: 'vfio_ap-passthrough', start, attrs: attrs.map(([k, v]) => ({ [k]: v })) }, null, 2);
}

function s390toolsHost() {
  return {
    ...threeGuestsHost(),
    store: undefined,
    files: {
      'etc/udev/rules.d/41-ap.rules': CHZDEV_RULES,
      [`etc/mdevctl.d/matrix/${GUEST1}`]: mdevctlFile('auto', [
        ['assign_adapter', '0x05'],
        ['assign_adapter', '0x06'],
        ['assign_domain', '0x0004'],
        ['assign_domain', '0x00ab'],
        ['assign_control_domain', '0x00ab'],
      ]),
      [`etc/mdevctl.d/matrix/${GUEST2}`]: mdevctlFile('auto', [
        ['assign_adapter', '5'],
        ['assign_domain', '71'],
        ['assign_domain', '255'],
      ]),
      [`etc/mdevctl.d/matrix/${GUEST3}`]: mdevctlFile('manual', [
        ['assign_adapter', '6'],
        ['assign_domain', '0x47'],
        ['assign_domain', '0xff'],
      ]),
    },
  };
}

const INTRUDER = '0badc0de-0000-4000-8000-000000000000';

/** chzdev's masks, and an auto mdev on 05.0047, which mdevctl's guest2 also claims. */
function intruderStore(): string {
  return `[masks]\napmask = 0-4,7-255\naqmask = 0-3,5-70,72-170,172-254\n\n[mdev.${INTRUDER}]\nname = payments\nadapters = 5\ndomains = 0x47\nstart = auto\n`;
}

describe('import from chzdev and mdevctl, then generate', () => {
  it('gives back equivalent masks and mdevs', async () => {
    const host = givenHost(s390toolsHost());
    const dry = await host.run('import', '--from', 'all', '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('would import apmask "0-4,7-255" from chzdev');
    expect(host.exists('etc/ap-persist/ap-persist.conf')).toBe(false);

    // sysfs shows the kernel defaults at this point: chzdev's persistent masks win.
    const r = await host.run('import');
    expect(r.code).toBe(0);
    const list = (await host.json('mdev', 'list', '--defined')).doc as { uuid: string; adapters: number[]; domains: number[]; control_domains: number[]; start: string }[];
    expect(list.map((m) => [m.uuid, m.adapters, m.domains, m.control_domains, m.start]).sort()).toEqual([
      [GUEST1, [5, 6], [4, 171], [171], 'auto'],
      [GUEST2, [5], [71, 255], [], 'auto'],
      [GUEST3, [6], [71, 255], [], 'manual'],
    ].sort());
    expect((await host.json('mask', 'show')).doc.persistent).toEqual({ apmask: '0-4,7-255', aqmask: '0-3,5-70,72-170,172-254' });
    expect((await host.run('check', '--persistent')).code).toBe(0);

    // generate takes over 41-ap.rules: same masks, now restored by our rules and units.
    const g = await host.run('generate', '--no-reload');
    expect(g.code).toBe(0);
    const rules = parseChzdevRules(host.read('etc/udev/rules.d/41-ap.rules'));
    expect(rules.apmask!.equals(APMASK)).toBe(true);
    expect(rules.aqmask!.equals(AQMASK)).toBe(true);
    expect(host.has(`etc/systemd/system/ap-persist-mdevs.target.wants/ap-persist-mdev@${GUEST1}.service`)).toBe(true);
    expect(host.has(`etc/systemd/system/ap-persist-mdevs.target.wants/ap-persist-mdev@${GUEST2}.service`)).toBe(true);
    expect(host.has(`etc/systemd/system/ap-persist-mdevs.target.wants/ap-persist-mdev@${GUEST3}.service`)).toBe(false);

    // A second import finds nothing new.
    const again = await host.run('import');
    expect(again.stdout).toContain('nothing to import');
  });

  it('refuses (exit 3) an import that would create a conflict unless told which side wins', async () => {
    const host = givenHost({ ...s390toolsHost(), store: intruderStore() });
    const before = host.snapshot();
    const r = await host.run('import', '--from', 'mdevctl');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('APQN 05.0047 (5.71)');
    expect(r.stderr).toContain('--prefer');
    expect(host.snapshot()).toEqual(before);

    expect((await host.run('import', '--from', 'mdevctl', '--prefer', 'store')).code).toBe(0);
    const list = (await host.json('mdev', 'list')).doc as { uuid: string; start: string }[];
    expect(list.find((m) => m.uuid === INTRUDER)!.start).toBe('auto');
    expect(list.find((m) => m.uuid === GUEST2)!.start).toBe('manual');
    expect((await host.run('check', '--persistent')).code).toBe(0);
  });

  it('--from chzdev that changes nothing succeeds despite a conflict the store already had with mdevctl', async () => {
    // The store's payments mdev and mdevctl's guest2 both claim 05.0047: not this import's doing.
    const host = givenHost({ ...s390toolsHost(), store: intruderStore() });
    const r = await host.run('import', '--from', 'chzdev');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('nothing to import');

    expect((await host.run('import', '--from', 'chzdev', '--prefer', 'store')).code).toBe(0);
    const list = (await host.json('mdev', 'list')).doc as { uuid: string; start: string }[];
    expect(list.find((m) => m.uuid === INTRUDER)!.start).toBe('auto');
  });

  it('--prefer store keeps the store\'s masks over a chzdev file nothing records as newer, and does not report them as imported', async () => {
    // chzdev gives adapter 5 and domain 0x47 back to the host, so APQN 05.0047, which the store's auto mdev uses.
    const host = givenHost({
      ...threeGuestsHost(),
      store: intruderStore(),
      files: { 'etc/udev/rules.d/41-ap.rules': chzdevRulesText(IdSet.full().minus(IdSet.of([6])), IdSet.full().minus(IdSet.of([4, 0xab, 0xff]))) },
    });
    const r = await host.json('import', '--from', 'chzdev', '--prefer', 'store');
    expect(r.code, r.stderr).toBe(0);
    expect(r.doc.changes).toEqual([]);
    expect(r.doc.resolved).toEqual([
      expect.stringContaining("kept the store's apmask over chzdev's (--prefer store): apmask: store 0-4,7-255; chzdev's 41-ap.rules 0-5,7-255"),
      expect.stringContaining("kept the store's aqmask over chzdev's"),
    ]);
    expect((await host.json('mask', 'show')).doc.persistent.apmask).toBe('0-4,7-255');
  });

  it('--prefer store ends after one line per decision, even when mdevctl already conflicts with the store', async () => {
    // mdevctl's auto mdev uses APQN 07.0005, which both the store's and chzdev's masks give the host;
    // chzdev's masks differ from the store's on adapter 6 only.
    const host = givenHost({
      ...threeGuestsHost(),
      store: '[masks]\napmask = 0-4,7-255\naqmask = 0-3,5-70,72-170,172-254\n',
      files: {
        'etc/udev/rules.d/41-ap.rules': chzdevRulesText(IdSet.full().minus(IdSet.of([5])), AQMASK),
        [`etc/mdevctl.d/matrix/${GUEST1}`]: mdevctlFile('auto', [['assign_adapter', '7'], ['assign_domain', '5']]),
      },
    });
    const r = await host.run('import', '--from', 'chzdev', '--prefer', 'store');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      'nothing to import: the store already holds it',
      "kept the store's apmask over chzdev's (--prefer store): apmask: store 0-4,7-255; chzdev's 41-ap.rules 0-4,6-255",
    ]);
    // Without a preference, chzdev's masks are taken: the store sets none.
    const fresh = givenHost({ ...threeGuestsHost(), store: '', files: { 'etc/udev/rules.d/41-ap.rules': chzdevRulesText(IdSet.full().minus(IdSet.of([5])), AQMASK) } });
    const taken = await fresh.run('import', '--from', 'chzdev');
    expect(taken.code, taken.stderr).toBe(0);
    expect(taken.stdout.trim().split('\n')).toEqual([
      'imported apmask "0-4,6-255" from chzdev (store: not set)',
      `imported aqmask "${AQMASK.toRanges()}" from chzdev (store: not set)`,
    ]);
  });

  it('--prefer imported lists the store mdevs it made manual among the changes', async () => {
    const host = givenHost({ ...s390toolsHost(), store: intruderStore() });
    const r = await host.json('import', '--from', 'mdevctl', '--prefer', 'imported');
    expect(r.code, r.stderr).toBe(0);
    expect(r.doc.changes).toContain(`mdev ${INTRUDER} (payments): start manual (was auto)`);
    expect((await host.run('check', '--persistent')).code).toBe(0);
  });

  it('--json: refusing mdevs that the store defines differently (matrix, start mode) prints one document', async () => {
    const host = givenHost({ ...s390toolsHost(), store: THREE_GUESTS_STORE.replace(/(name = guest2\nadapters = )5/, '$16') });
    const before = host.snapshot();
    const r = await host.json('import', '--from', 'mdevctl');
    expect(r.code).toBe(3);
    expect(r.doc).toEqual({
      ok: false,
      refused: 'differing',
      // guest2's adapter was edited in the store; mdevctl's guest3 is manual where the store's is auto.
      differing: [
        { uuid: GUEST2, message: expect.stringContaining(`mdev ${GUEST2}: store has ${GUEST2} (guest2): adapters 6,`) },
        { uuid: GUEST3, message: expect.stringMatching(/store has .*start auto; mdevctl has .*start manual$/) },
      ],
    });
    expect(host.snapshot()).toEqual(before);
  });

  it('a broken 41-ap.rules is an error with file:line, and nothing changes', async () => {
    const host = givenHost({ ...s390toolsHost(), files: { 'etc/udev/rules.d/41-ap.rules': CHZDEV_RULES.replace(APMASK.toKernelHex(), '0xfff') } });
    const before = host.snapshot();
    const r = await host.run('import', '--from', 'chzdev');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/41-ap\.rules:8: apmask value '0xfff' is not 0x and 64 hex digits/);
    expect(host.snapshot()).toEqual(before);
  });

  it('imports the running state from sysfs', async () => {
    const host = givenHost({
      ...threeGuestsHost(),
      store: undefined,
      masks: { apmask: APMASK, aqmask: AQMASK },
      vfioAp: true,
      activeMdevs: [{ uuid: GUEST2, adapters: [5], domains: [0x47, 0xff] }],
    });
    expect((await host.run('import', '--from', 'sysfs', '--start', 'manual')).code).toBe(0);
    expect(host.storeText()).toContain(`[mdev.${GUEST2}]\nadapters = 5\ndomains = 71,255\nstart = manual\n`);
    expect(host.storeText()).toContain('apmask = 0-4,7-255');
  });
});
