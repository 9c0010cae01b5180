// vfio_ap mdev definitions as mdevctl's and libvirt's own test suites have
// them (test/fixtures/peers, origin and licence in ORIGIN.md), read by our
// parser. Each device's matrix is checked against values worked out by hand
// from the file, as vfio_ap would build it when mdevctl creates the mdev
// empty and writes the attributes to sysfs in order.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { parseMdevctlJson } from '../../src/store/mdevctl-defs.js';
import { givenHost } from '../support/host.js';

const PEERS = fileURLToPath(new URL('../fixtures/peers', import.meta.url));

interface FixtureDevice {
  /** `<repo>/<fixture file> <parent>/<uuid>`; a single definition has neither: `-/-`. */
  key: string;
  /** The device object, serialised as a definition file (two-space JSON, as mdevctl writes it). */
  text: string;
}

/** Every vfio_ap device in a fixture: each uuid under each parent of a dumpjson list, or the definition itself. */
function devicesOf(repo: string, file: string): FixtureDevice[] {
  const doc: unknown = JSON.parse(readFileSync(join(PEERS, repo, file), 'utf8'));
  const isVfioAp = (parent: string, dev: Record<string, unknown>): boolean => dev['mdev_type'] === 'vfio_ap-passthrough' || parent === 'matrix';
  const out: FixtureDevice[] = [];
  if (Array.isArray(doc)) {
    for (const byParent of doc as Record<string, Record<string, Record<string, unknown>>[]>[]) {
      for (const [parent, entries] of Object.entries(byParent)) {
        for (const entry of entries) {
          for (const [uuid, dev] of Object.entries(entry)) {
            if (isVfioAp(parent, dev)) out.push({ key: `${repo}/${file} ${parent}/${uuid}`, text: JSON.stringify(dev, null, 2) });
          }
        }
      }
    }
  } else {
    const dev = doc as Record<string, unknown>;
    if (isVfioAp('', dev)) out.push({ key: `${repo}/${file} -/-`, text: JSON.stringify(dev, null, 2) });
  }
  return out;
}

function allDevices(): FixtureDevice[] {
  return ['mdevctl', 'libvirt'].flatMap((repo) =>
    readdirSync(join(PEERS, repo))
      .sort()
      .flatMap((file) => devicesOf(repo, file)),
  );
}

interface Expected {
  adapters: number[];
  domains: number[];
  controlDomains: number[];
  start: 'auto' | 'manual';
  /** Attributes that are not vfio_ap's (mdevctl's own tests add one). */
  otherAttrs?: Record<string, string>[];
}

// How these were derived, by hand, from the files:
//
// BASE is the definition most of these files share (mdevctl's testdata and
// libvirt's matrix device): attrs, in order, assign_adapter "5",
// assign_adapter "6", assign_domain "0xab", assign_control_domain "0xab",
// assign_domain "4", assign_control_domain "4". All assigns, no unassign, no
// ap_config: adapters {5, 6}; domains {0xab = 171, 4}; control domains
// {0xab = 171, 4}. Sets, so listed ascending.
//
// addattr*.expected and defined-only.defined.expected: BASE plus
// {"added-attr": "added-attr-value"} (at index 3 or at the end), which is no
// vfio_ap attribute: the matrix is BASE's, the attribute is kept aside.
// delattr.expected: BASE without its assign_domain "0xab": domains {4}, the
// rest as BASE. delattr-noindex.expected: BASE without its last
// assign_control_domain "4": control domains {171}.
// defined-only.active.expected: attrs []: the matrix is empty.
// JSONFILE (modify/jsonfile.expected, modified.json, live-defined-supported.*,
// modify-jsonfile-with-version-callout-*): assign_adapter "0x04" (hex 4),
// assign_domain "0x0005" (hex 5), assign_control_domain "0x0005" (5).
// start is each file's own "start" value.
const BASE = { adapters: [5, 6], domains: [4, 171], controlDomains: [4, 171] };
const JSONFILE = { adapters: [4], domains: [5], controlDomains: [5] };
const ADDED = [{ 'added-attr': 'added-attr-value' }];

const EXPECTED: Record<string, Expected> = {
  'mdevctl/testdata__define__defined.json -/-': { ...BASE, start: 'manual' },
  'mdevctl/testdata__define__jsonfile.expected -/-': { ...BASE, start: 'manual' },
  'mdevctl/testdata__invalid-files__device.json -/-': { ...BASE, start: 'manual' },
  'mdevctl/testdata__list__defined-parent-verbose.json 0000:00:02.0/9f579710-6ffc-4201-987a-4ffa0fb1f3a5': { ...BASE, start: 'manual' },
  'mdevctl/testdata__list__defined-parent.json 0000:00:02.0/9f579710-6ffc-4201-987a-4ffa0fb1f3a5': { ...BASE, start: 'manual' },
  'mdevctl/testdata__list__defined-uuid-parent-verbose.json -/-': { ...BASE, start: 'manual' },
  'mdevctl/testdata__list__defined-uuid-parent.json -/-': { ...BASE, start: 'manual' },
  'mdevctl/testdata__list__defined-uuid-verbose.json 0000:00:02.0/9f579710-6ffc-4201-987a-4ffa0fb1f3a5': { ...BASE, start: 'manual' },
  'mdevctl/testdata__list__defined-uuid-verbose.json 0000:00:03.0/9f579710-6ffc-4201-987a-4ffa0fb1f3a5': { ...BASE, start: 'manual' },
  'mdevctl/testdata__list__defined-uuid.json 0000:00:02.0/9f579710-6ffc-4201-987a-4ffa0fb1f3a5': { ...BASE, start: 'manual' },
  'mdevctl/testdata__list__defined-uuid.json 0000:00:03.0/9f579710-6ffc-4201-987a-4ffa0fb1f3a5': { ...BASE, start: 'manual' },
  'mdevctl/testdata__list__defined-verbose.json 0000:00:02.0/9f579710-6ffc-4201-987a-4ffa0fb1f3a5': { ...BASE, start: 'manual' },
  'mdevctl/testdata__list__defined-verbose.json 0000:00:03.0/9f579710-6ffc-4201-987a-4ffa0fb1f3a5': { ...BASE, start: 'manual' },
  'mdevctl/testdata__list__defined.json 0000:00:02.0/9f579710-6ffc-4201-987a-4ffa0fb1f3a5': { ...BASE, start: 'manual' },
  'mdevctl/testdata__list__defined.json 0000:00:03.0/9f579710-6ffc-4201-987a-4ffa0fb1f3a5': { ...BASE, start: 'manual' },
  'mdevctl/testdata__list__device1.json -/-': { ...BASE, start: 'manual' },
  'mdevctl/testdata__load-json__783e6dbb-ea0e-411f-94e2-717eaad438bf.in -/-': { ...BASE, start: 'manual' },
  'mdevctl/testdata__load-json__783e6dbb-ea0e-411f-94e2-717eaad438bf.out -/-': { ...BASE, start: 'manual' },
  'mdevctl/testdata__modify__addattr-noindex.expected -/-': { ...BASE, start: 'manual', otherAttrs: ADDED },
  'mdevctl/testdata__modify__addattr.expected -/-': { ...BASE, start: 'manual', otherAttrs: ADDED },
  'mdevctl/testdata__modify__auto.expected -/-': { ...BASE, start: 'auto' },
  'mdevctl/testdata__modify__callout-fail-force.expected -/-': { ...BASE, start: 'auto' },
  'mdevctl/testdata__modify__callout-pass.expected -/-': { ...BASE, start: 'auto' },
  'mdevctl/testdata__modify__defined-only.active.expected -/-': { adapters: [], domains: [], controlDomains: [], start: 'manual' },
  'mdevctl/testdata__modify__defined-only.defined.expected -/-': { ...BASE, start: 'manual', otherAttrs: ADDED },
  'mdevctl/testdata__modify__defined.json -/-': { ...BASE, start: 'manual' },
  'mdevctl/testdata__modify__delattr-noindex.expected -/-': { adapters: [5, 6], domains: [4, 171], controlDomains: [171], start: 'manual' },
  'mdevctl/testdata__modify__delattr.expected -/-': { adapters: [5, 6], domains: [4], controlDomains: [4, 171], start: 'manual' },
  'mdevctl/testdata__modify__jsonfile.expected -/-': { ...JSONFILE, start: 'auto' },
  'mdevctl/testdata__modify__live-defined-supported.active.expected -/-': { ...JSONFILE, start: 'auto' },
  'mdevctl/testdata__modify__live-defined-supported.defined.expected -/-': { ...JSONFILE, start: 'auto' },
  'mdevctl/testdata__modify__live-event-supported.expected -/-': { ...BASE, start: 'manual' },
  'mdevctl/testdata__modify__manual.expected -/-': { ...BASE, start: 'manual' },
  'mdevctl/testdata__modify__modified.json -/-': { ...JSONFILE, start: 'auto' },
  'mdevctl/testdata__modify__modify-jsonfile-with-version-callout-all-pass.expected -/-': { ...JSONFILE, start: 'auto' },
  'mdevctl/testdata__modify__modify-jsonfile-with-version-callout-multiple-with-version-pass.expected -/-': { ...JSONFILE, start: 'auto' },
  'mdevctl/testdata__modify__modify-jsonfile-with-version-callout-multiple-with-version-pass2.expected -/-': { ...JSONFILE, start: 'auto' },
  'mdevctl/testdata__modify__multiple-parent.expected -/-': { ...BASE, start: 'auto' },
  'mdevctl/testdata__undefine__defined.json -/-': { ...BASE, start: 'manual' },
  'libvirt/tests__nodedevmdevctldata__mdevctl-list-multiple.json matrix/783e6dbb-ea0e-411f-94e2-717eaad438bf': { ...BASE, start: 'manual' },
};

/** Devices whose values the kernel would refuse: the attribute the error must name. None of the peers' fixtures has one. */
const REFUSED: Record<string, string> = {};

const DEVICES = allDevices();

describe("mdevctl's and libvirt's vfio_ap definitions, read with the matrix the kernel would build", () => {
  it('every vfio_ap device in the fixtures has an expectation, and every expectation a device', () => {
    expect(DEVICES.map((d) => d.key).sort()).toEqual([...Object.keys(EXPECTED), ...Object.keys(REFUSED)].sort());
    expect(DEVICES).toHaveLength(40);
  });

  for (const device of DEVICES) {
    const refused = REFUSED[device.key];
    if (refused !== undefined) {
      it(`${device.key}: refused, naming ${refused}`, () => {
        let thrown: unknown;
        try {
          parseMdevctlJson(device.text, device.key);
        } catch (err) {
          thrown = err;
        }
        expect(thrown).toBeInstanceOf(InputError);
        expect((thrown as Error).message).toContain(refused);
      });
      continue;
    }
    it(device.key, () => {
      const want = EXPECTED[device.key]!;
      const got = parseMdevctlJson(device.text, device.key);
      expect({
        adapters: got.adapters.ids(),
        domains: got.domains.ids(),
        controlDomains: got.controlDomains.ids(),
        start: got.start,
        otherAttrs: got.otherAttrs,
      }).toEqual({ ...want, otherAttrs: want.otherAttrs ?? [] });
      expect(got.usesApConfig).toBe(false);
      expect(got.usesUnassign).toBe(false);
    });
  }
});

/** One `[mdev.<uuid>]` section of the store, its keys and values as written. */
function storeSection(text: string, uuid: string): Record<string, string> {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim() === `[mdev.${uuid}]`);
  expect(start, `no [mdev.${uuid}] in the store:\n${text}`).toBeGreaterThanOrEqual(0);
  const out: Record<string, string> = {};
  for (const line of lines.slice(start + 1)) {
    if (line.trim().startsWith('[')) break;
    const m = /^\s*([a-z_]+)\s*=\s*([^;]*?)\s*(;.*)?$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** A store LIST (decimal or 0x IDs, a-b ranges) as IDs; only what the check below needs. */
function listIds(list: string | undefined): number[] {
  if (list === undefined || list === '') return [];
  return list.split(',').flatMap((item) => {
    const [a, b] = item.split('-').map((x) => Number(x.trim()));
    const ids: number[] = [];
    for (let i = a!; i <= (b ?? a!); i++) ids.push(i);
    return ids;
  });
}

describe('import --from mdevctl of peer fixture devices', () => {
  // libvirt's matrix device under its own UUID; mdevctl's modify/jsonfile.expected
  // under the UUID mdevctl's modify tests give it (976d8cc2-…).
  const LIBVIRT_UUID = '783e6dbb-ea0e-411f-94e2-717eaad438bf';
  const JSONFILE_UUID = '976d8cc2-4bfc-43b9-b9f9-f4af2de91ab9';
  const libvirtText = DEVICES.find((d) => d.key === `libvirt/tests__nodedevmdevctldata__mdevctl-list-multiple.json matrix/${LIBVIRT_UUID}`)!.text;
  const jsonfileText = readFileSync(join(PEERS, 'mdevctl', 'testdata__modify__jsonfile.expected'), 'utf8');

  it('puts their matrices into the store', async () => {
    const host = givenHost({
      cards: [
        { adapter: 4, hwtype: 11 },
        { adapter: 5, hwtype: 11 },
        { adapter: 6, hwtype: 11 },
      ],
      domains: [4, 5, 0xab],
      // Cards 4-6 and domains 4, 5, 0xab free for vfio_ap, so the auto mdev's queues are not the host's.
      store: '[masks]\napmask = 0-3,7-255\naqmask = 0-3,6-170,172-255\n',
      files: {
        [`etc/mdevctl.d/matrix/${LIBVIRT_UUID}`]: libvirtText,
        [`etc/mdevctl.d/matrix/${JSONFILE_UUID}`]: jsonfileText,
      },
    });
    const r = await host.run('import', '--from', 'mdevctl');
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const store = host.storeText();

    // By hand, as above: libvirt's device is BASE, manual; jsonfile.expected is 0x04 / 0x0005 / 0x0005, auto.
    const lib = storeSection(store, LIBVIRT_UUID);
    expect([listIds(lib['adapters']), listIds(lib['domains']), listIds(lib['control_domains']), lib['start']]).toEqual([[5, 6], [4, 171], [4, 171], 'manual']);
    const jf = storeSection(store, JSONFILE_UUID);
    expect([listIds(jf['adapters']), listIds(jf['domains']), listIds(jf['control_domains']), jf['start']]).toEqual([[4], [5], [5], 'auto']);
    expect(store).toContain(`[mdev.${JSONFILE_UUID}]\nadapters = 4\ndomains = 5\ncontrol_domains = 5\nstart = auto\n`);
  });
});
