// status as the admin reads it: the live state whatever the store says, every
// mdev whoever defined it, one notation (hex) outside the masks, a stable
// order, and a matrix that stays readable on a big host.

import { describe, expect, it } from 'vitest';
import { GUEST1, GUEST2, GUEST3, THREE_GUESTS_STORE, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { IdSet } from '../../src/model/idset.js';
import { givenHost } from '../support/host.js';
import { bigHost, type BigHost } from '../support/big-host.js';

const FREE = { apmask: IdSet.full().minus(IdSet.of([5, 6])), aqmask: IdSet.full().minus(IdSet.of([4, 0x47, 0xab, 0xff])) };
const MDEVCTL_ONLY = '11111111-2222-4333-8444-555555555555';
const MDEVCTL_MANUAL = '22222222-2222-4333-8444-555555555555';

/** guest1 runs; guest2 and guest3 are defined only. */
const guest1Running = () => ({ ...threeGuestsHost(), masks: FREE, vfioAp: true, activeMdevs: [{ uuid: GUEST1, adapters: [5, 6], domains: [4, 0xab], controlDomains: [0xab] }] });

describe('status with a broken store', () => {
  // A typo on line 18 (guest2's adapters): the store cannot be read.
  const broken = () => givenHost({ ...guest1Running(), store: THREE_GUESTS_STORE.replace('adapters = 5\n', 'adapters = 5-3\n') });

  it('still shows the AP bus, the active masks and the active mdevs, then names the error with file:line, exit 2', async () => {
    const host = broken();
    const before = host.snapshot();
    const r = await host.run('status');
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('AP bus: 2 card(s) (05-06), 8 queue(s); vfio_ap loaded');
    expect(r.stdout).toMatch(/^apmask {2}\(store error\) {2}"0-4,7-255"$/m);
    expect(r.stdout).toMatch(/^aqmask {2}\(store error\) {2}"0-3,5-70,72-170,172-254"$/m);
    expect(r.stdout).toMatch(new RegExp(`^${GUEST1} +- +05-06 +0004,00ab +00ab +- +store unreadable, active$`, 'm'));
    expect(r.stdout).toContain('not compared with the store, which cannot be read');
    expect(r.stderr).toMatch(/ap-persist: the store cannot be read: .*ap-persist\.conf:18: range '5-3' is reversed\n {2}write it low to high: 3-5\n/);
    expect(host.snapshot()).toEqual(before);
  });

  it('--json carries store_error {where, message} beside everything it could read, exit 2', async () => {
    const host = broken();
    const { code, doc } = await host.json('status');
    expect(code).toBe(2);
    expect(doc.store_error).toEqual({ where: expect.stringMatching(/ap-persist\.conf:18$/), message: "range '5-3' is reversed", hint: 'write it low to high: 3-5' });
    expect(doc.masks).toEqual({ persistent: null, active: { apmask: '0-4,7-255', aqmask: '0-3,5-70,72-170,172-254' } });
    expect(doc.mdevs).toEqual([{ uuid: GUEST1, name: null, adapters: [5, 6], domains: [4, 0xab], control_domains: [0xab], start: null, defined: false, defined_by: null, active: true, guests: [], held_by: [] }]);
    expect(doc.matrix.filter((q: { owners: string[] }) => q.owners.includes(GUEST1)).map((q: { apqn: string }) => q.apqn)).toEqual(['05.0004', '05.00ab', '06.0004', '06.00ab']);
    expect(doc.ap_bus).toEqual({ present: true, cards: [{ adapter: 5, hwtype: 11 }, { adapter: 6, hwtype: 11 }], queues: 8 });
  });

  it('a good store has store_error null and exit 0', async () => {
    const host = givenHost(guest1Running());
    const { code, doc } = await host.json('status');
    expect(code).toBe(0);
    expect(doc.store_error).toBeNull();
    expect(doc.masks.persistent).toEqual({ apmask: '0-4,7-255', aqmask: '0-3,5-70,72-170,172-254' });
  });
});

describe('status lists every mdev, whoever defined it', () => {
  const host = () =>
    givenHost({
      ...guest1Running(),
      mdevctl: [
        { uuid: MDEVCTL_ONLY, start: 'auto', adapters: [7], domains: [0x10] },
        { uuid: MDEVCTL_MANUAL, start: 'manual', adapters: [7], domains: [0x11] },
      ],
    });

  it("mdevctl's own auto definitions (which check counts) show with their source", async () => {
    const h = host();
    const r = await h.run('status');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${MDEVCTL_ONLY} +- +07 +0010 +- +auto +mdevctl only, inactive$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^${MDEVCTL_MANUAL} +- +07 +0011 +- +manual +mdevctl only, inactive$`, 'm'));
    const { doc } = await h.json('status');
    expect(doc.mdevs.find((m: { uuid: string }) => m.uuid === MDEVCTL_ONLY)).toEqual({
      uuid: MDEVCTL_ONLY, name: null, adapters: [7], domains: [0x10], control_domains: [], start: 'auto', defined: false, defined_by: 'mdevctl', active: false, guests: [], held_by: [],
    });
    // check counts the same auto mdev: it is not in the store, but it starts at boot.
    const check = await h.json('check', '--persistent');
    expect(check.doc.conflicts.flatMap((c: { owners: string[] }) => c.owners)).toContain(MDEVCTL_ONLY);
    // mdev list shows it too; --defined means the store's.
    expect((await h.json('mdev', 'list')).doc.map((m: { uuid: string }) => m.uuid)).toContain(MDEVCTL_ONLY);
    expect((await h.json('mdev', 'list', '--defined')).doc.map((m: { uuid: string }) => m.uuid)).toEqual([GUEST1, GUEST2, GUEST3]);
  });
});

describe('one notation per screen', () => {
  it('IDs are hex as lszcrypt shows them in the mdev table, the matrix and mdev list; masks alone in chzdev syntax', async () => {
    const host = givenHost(guest1Running());
    const r = await host.run('status', '--matrix');
    expect(r.stdout).toContain('masks, as chzdev shows them (decimal IDs the host owns):');
    expect(r.stdout).toContain('mdevs, by name then UUID (IDs in hex, as lszcrypt and the kernel show them):');
    expect(r.stdout).toMatch(new RegExp(`^${GUEST1} +guest1 +05-06 +0004,00ab +00ab +auto +defined, active$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^${GUEST2} +guest2 +05 +0047,00ff +- +auto +defined, inactive$`, 'm'));
    expect(r.stdout).toContain('      0004 0047 00ab 00ff\n  05     a    .    a    .\n');
    // The decimal spellings of the same IDs appear nowhere but in the masks.
    const outsideMasks = r.stdout.split('\n').filter((l) => !/^(apmask|aqmask) /.test(l)).join('\n');
    expect(outsideMasks).not.toMatch(/\b(4,171|71,255|5-6)\b/);
    const list = await host.run('mdev', 'list');
    expect(list.stdout).toMatch(new RegExp(`^${GUEST3} +guest3 +06 +0047,00ff +- +auto +defined, inactive$`, 'm'));
    expect(list.stdout).not.toMatch(/\b(4,171|71,255)\b/);
  });
});

describe('a stable, meaningful order', () => {
  it('mdevs are listed by name (guest2 before guest10), unnamed last, then by UUID, whatever the store order', async () => {
    const u = (n: number): string => `${String(n).repeat(8)}-0000-4000-8000-000000000000`;
    const store = [
      `[mdev.${u(1)}]\nname = guest10\nadapters = 5\ndomains = 1\nstart = manual\n`,
      `[mdev.${u(2)}]\nadapters = 5\ndomains = 2\nstart = manual\n`,
      `[mdev.${u(3)}]\nname = guest2\nadapters = 5\ndomains = 3\nstart = manual\n`,
      `[mdev.${u(4)}]\nname = guest2\nadapters = 5\ndomains = 4\nstart = manual\n`,
      `[mdev.${u(5)}]\nname = alpha\nadapters = 5\ndomains = 5\nstart = manual\n`,
      `[mdev.${u(6)}]\nadapters = 6\ndomains = 6\nstart = manual\n`,
    ].reverse().join('\n');
    const host = givenHost({ ...threeGuestsHost(), store });
    const expected = [u(5), u(3), u(4), u(1), u(2), u(6)];
    expect((await host.json('mdev', 'list')).doc.map((m: { uuid: string }) => m.uuid)).toEqual(expected);
    expect((await host.json('status')).doc.mdevs.map((m: { uuid: string }) => m.uuid)).toEqual(expected);
    const table = (await host.run('mdev', 'list')).stdout.split('\n').slice(1, -1).map((l) => l.slice(0, 36));
    expect(table).toEqual(expected);
  });
});

/** The matrix section of status --matrix: from its caption to the line before `last hook`. */
function matrixSection(stdout: string): string[] {
  const lines = stdout.split('\n');
  const from = lines.findIndex((l) => l.startsWith('matrix of the present APQNs'));
  const to = lines.findIndex((l, i) => i > from && l === '');
  return lines.slice(from, to);
}

/** The legend: mark -> UUID, in the order printed. */
function legend(lines: string[]): [string, string, string | undefined][] {
  return lines.flatMap((l) => {
    const m = /^ {2}([a-z]+) = ([0-9a-f-]{36})(?: \((.*)\))?$/.exec(l);
    return m ? [[m[1]!, m[2]!, m[3]] as [string, string, string | undefined]] : [];
  });
}

/** A grid's cells by APQN (`05.0004` -> mark), reading each cell under its column header. */
function gridCells(lines: string[], rowDigits: 2 | 4): Map<string, string> {
  const colDigits = rowDigits === 2 ? 4 : 2;
  const headerAt = lines.findIndex((l) => new RegExp(`^ +[0-9a-f]{${colDigits}}( +[0-9a-f]{${colDigits}})*$`).test(l));
  const header = lines[headerAt]!;
  const columns = [...header.matchAll(new RegExp(`[0-9a-f]{${colDigits}}`, 'g'))].map((m) => ({ id: m[0], start: m.index!, end: m.index! + colDigits }));
  const cells = new Map<string, string>();
  for (const line of lines.slice(headerAt + 1)) {
    const row = new RegExp(`^ {2}([0-9a-f]{${rowDigits}}) {2}`).exec(line);
    if (!row) break;
    for (const c of columns) {
      // A mark may be wider than the header: its cell ends where the header ends.
      const cell = line.padEnd(c.end).slice(c.start - 1, c.end).trim();
      const apqn = rowDigits === 2 ? `${row[1]}.${c.id}` : `${c.id}.${row[1]}`;
      if (cell) cells.set(apqn, cell);
    }
  }
  return cells;
}

/** The per-adapter list view: `  05  H 0000-0003  ga 0004,0006  . 0005`, continued on lines indented by 6. */
function listCells(lines: string[]): Map<string, string> {
  const rows: [string, string][] = [];
  for (const line of lines) {
    const row = /^ {2}([0-9a-f]{2}) {2}(.*)$/.exec(line);
    if (row) rows.push([row[1]!, row[2]!]);
    else if (/^ {6}\S/.test(line) && rows.length) {
      const last = rows[rows.length - 1]!;
      last[1] += last[1].endsWith(',') ? line.trim() : `  ${line.trim()}`;
    }
  }
  const cells = new Map<string, string>();
  for (const [adapter, text] of rows) {
    for (const part of text.split('  ')) {
      const [mark, ranges] = part.split(' ');
      for (const r of ranges!.split(',')) {
        const [from, to] = r.split('-').map((x) => parseInt(x, 16));
        for (let d = from!; d <= (to ?? from!); d++) cells.set(`${adapter}.${d.toString(16).padStart(4, '0')}`, mark!);
      }
    }
  }
  return cells;
}

/** Every present APQN's owner as read from the output equals the host's. */
function expectOwnersRecoverable(big: BigHost, cards: number, domains: number, cells: Map<string, string>, marks: Map<string, string>): void {
  let checked = 0;
  for (let a = 0; a < cards; a++) {
    for (let d = 0; d < domains; d++) {
      const apqn = `${a.toString(16).padStart(2, '0')}.${d.toString(16).padStart(4, '0')}`;
      const cell = cells.get(apqn);
      const owner = cell === 'H' || cell === '.' ? cell : cell === undefined ? undefined : marks.get(cell);
      expect(owner, apqn).toBe(big.owner(a, d));
      checked++;
    }
  }
  expect(checked).toBe(cards * domains);
}

describe('status --matrix on a big host', () => {
  it('16 cards x 85 domains and 60 guests: every line fits 160 columns, one unique mark per guest by name, every owner recoverable, in text and --json', async () => {
    const big = bigHost(16, 85, 60);
    const host = givenHost(big.spec);
    const r = await host.run('status', '--matrix');
    expect(r.code).toBe(0);
    for (const line of r.stdout.split('\n')) expect(line.length, line).toBeLessThanOrEqual(160);
    const section = matrixSection(r.stdout);
    // 85 domains across do not fit: the grid turns, and says so.
    expect(section[0]).toBe('matrix of the present APQNs, domains down and adapters across (85 domains across would take 430 columns, more than 160):');
    const keys = legend(section);
    expect(keys).toHaveLength(60);
    expect(new Set(keys.map(([mark]) => mark)).size).toBe(60);
    expect(new Set(keys.map(([, uuid]) => uuid))).toEqual(new Set(big.guests.map((g) => g.uuid)));
    // By name, naturally: guest1, guest2, ... guest60 (not their UUID order).
    expect(keys.map(([, , name]) => name)).toEqual(big.guests.map((g) => g.name));
    // No mark reads as a hex ID.
    for (const [mark] of keys) expect(mark).toMatch(/^[g-z][a-z]$/);
    const marks = new Map(keys.map(([mark, uuid]) => [mark, uuid]));
    expectOwnersRecoverable(big, 16, 85, gridCells(section, 4), marks);

    // --json carries the matrix too: every present APQN with its owners.
    const { doc } = await host.json('status');
    expect(doc.matrix).toHaveLength(16 * 85);
    for (const q of doc.matrix as { apqn: string; owners: string[] }[]) {
      const [a, d] = q.apqn.split('.').map((x) => parseInt(x, 16));
      const owner = big.owner(a!, d!);
      expect(q.owners, q.apqn).toEqual(owner === '.' ? [] : [owner === 'H' ? 'host' : owner]);
    }
  });

  it('a host too big for either grid gets one line per adapter with its domains by owner, and says why', async () => {
    const big = bigHost(52, 40, 60);
    const host = givenHost(big.spec);
    const r = await host.run('status', '--matrix');
    const section = matrixSection(r.stdout);
    for (const line of section) expect(line.length, line).toBeLessThanOrEqual(160);
    expect(section[0]).toBe('matrix of the present APQNs, one line per adapter listing its domains by owner (a grid would take 163 columns, more than 160):');
    const marks = new Map(legend(section).map(([mark, uuid]) => [mark, uuid]));
    expect(marks.size).toBe(60);
    expectOwnersRecoverable(big, 52, 40, listCells(section), marks);
  });

  it("fits the terminal's width when stdout is one", async () => {
    const big = bigHost(16, 85, 60);
    const host = givenHost(big.spec, { columns: 50 });
    const section = matrixSection((await host.run('status', '--matrix')).stdout);
    for (const line of section) expect(line.length, line).toBeLessThanOrEqual(50);
    expect(section[0]).toMatch(/^matrix of the present APQNs, one line per/);
    expectOwnersRecoverable(big, 16, 85, listCells(section), new Map(legend(section).map(([mark, uuid]) => [mark, uuid])));
  });

  it('an APQN held twice (an old kernel let it happen) is marked ! and both holders are named', async () => {
    const host = givenHost({
      ...threeGuestsHost(),
      masks: FREE,
      vfioAp: true,
      activeMdevs: [
        { uuid: GUEST1, adapters: [5, 6], domains: [4, 0xab] },
        { uuid: GUEST2, adapters: [5], domains: [4] },
      ],
    });
    const r = await host.run('status', '--matrix');
    expect(r.stdout).toContain('  05     !    .    a    .\n');
    expect(r.stdout).toContain(`  ! 05.0004 is held by ${GUEST1} (guest1) and ${GUEST2} (guest2)`);
  });
});
