// generate keeps the store it read in its record; the boot takes the store's
// meaning from there while the file still holds that very text. Given a
// store, generate, then an edit (or none), the hook acts on what the file says.

import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GUEST1, THREE_GUESTS_STORE, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { parseRecord } from '../../src/generate/manifest.js';
import { IdSet } from '../../src/model/idset.js';
import { codeVersion } from '../../src/package-info.js';
import { storeFromSnapshot, storeSnapshot, type StoreSnapshot } from '../../src/store/snapshot.js';
import { loadStore, parseStoreText, type Store } from '../../src/store/store.js';
import { givenHost, tempDir } from '../support/host.js';
import { randomIds, rng } from '../support/random.js';

const VERSION = codeVersion();
const BINDINGS = { ACTION: 'change', DEVPATH: '/devices/ap', BINDINGS: 'complete', COMPLETECOUNT: '1' };

/** A store as an admin might write it: hex and ranges, names or none, every start mode, masks set or not. */
function randomStoreText(seed: number): string {
  const next = rng(seed);
  const ranges = (span: number, count: number): string => randomIds(next, span, count).toRanges();
  const lines: string[] = ['; written by the test', '[masks]'];
  if (next() < 0.7) lines.push(`apmask = ${ranges(256, 20)}`);
  if (next() < 0.7) lines.push(`aqmask = ${ranges(256, 20)} ; inline comment`);
  const mdevs = Math.floor(next() * 20);
  for (let i = 0; i < mdevs; i++) {
    const uuid = `${(seed * 1000 + i).toString(16).padStart(8, '0')}-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
    lines.push('', `[mdev.${next() < 0.2 ? uuid.toUpperCase() : uuid}]`);
    if (next() < 0.6) lines.push(`name = guest${i}`);
    lines.push(`adapters = ${ranges(16, 3) || '0'}`, `domains = ${ranges(256, 4) || '1'}`);
    if (next() < 0.4) lines.push(`control_domains = ${ranges(256, 2)}`);
    if (next() < 0.8) lines.push(`start = ${['auto', 'manual', 'guest'][Math.floor(next() * 3)]}`);
  }
  return `${lines.join('\n')}\n`;
}

const roundTrip = (text: string, store: Store): Store | undefined => storeFromSnapshot(JSON.parse(JSON.stringify(storeSnapshot(VERSION, text, store))) as StoreSnapshot, VERSION, text);

describe("generate's snapshot of the store", () => {
  it('means what the store means, for 200 random stores and the three guests', () => {
    for (const text of [THREE_GUESTS_STORE, ...Array.from({ length: 200 }, (_, seed) => randomStoreText(seed + 1))]) {
      const parsed = parseStoreText(text, 'ap-persist.conf');
      expect(roundTrip(text, parsed), text).toEqual(parsed);
    }
  });

  it('is taken only for the very text it was made of, by the same version', () => {
    const parsed = parseStoreText(THREE_GUESTS_STORE, 'f');
    const snapshot = storeSnapshot(VERSION, THREE_GUESTS_STORE, parsed);
    expect(storeFromSnapshot(snapshot, VERSION, THREE_GUESTS_STORE)).toEqual(parsed);
    expect(storeFromSnapshot(snapshot, VERSION, `${THREE_GUESTS_STORE}\n`)).toBeUndefined();
    expect(storeFromSnapshot(snapshot, `${VERSION}-next`, THREE_GUESTS_STORE)).toBeUndefined();
  });

  it('is no snapshot when any part of it is not what generate writes', () => {
    const parsed = parseStoreText(THREE_GUESTS_STORE, 'f');
    const good = (): StoreSnapshot => JSON.parse(JSON.stringify(storeSnapshot(VERSION, THREE_GUESTS_STORE, parsed))) as StoreSnapshot;
    const damaged: [string, (s: any) => void][] = [
      ['a word that is a string', (s) => (s.mdevs[0].adapters[0] = '6')],
      ['a negative word', (s) => (s.mdevs[0].domains[1] = -1)],
      ['a word above 32 bits', (s) => (s.masks.apmask[0] = 2 ** 32)],
      ['seven words', (s) => s.mdevs[1].control_domains.pop()],
      ['a fraction', (s) => (s.masks.aqmask[7] = 0.5)],
      ['a mask that is neither words nor null', (s) => (s.masks.aqmask = 'all')],
      ['an upper-case UUID', (s) => (s.mdevs[2].uuid = s.mdevs[2].uuid.toUpperCase())],
      ['no UUID', (s) => delete s.mdevs[2].uuid],
      ['an unknown start mode', (s) => (s.mdevs[0].start = 'boot')],
      ['a name that is a number', (s) => (s.mdevs[0].name = 7)],
      ['an mdev that is null', (s) => (s.mdevs[1] = null)],
    ];
    for (const [what, damage] of damaged) {
      const s = good();
      damage(s);
      expect(storeFromSnapshot(s, VERSION, THREE_GUESTS_STORE), what).toBeUndefined();
    }
    expect(storeFromSnapshot(good(), VERSION, THREE_GUESTS_STORE)).toEqual(parsed);
  });

  it('beside a store file of the same text, its meaning is the snapshot\'s: the file is not parsed again', () => {
    const dir = tempDir();
    const path = join(dir, 'ap-persist.conf');
    writeFileSync(path, THREE_GUESTS_STORE);
    const parsed = parseStoreText(THREE_GUESTS_STORE, 'f');
    // A snapshot that says something else of this very text (no generate writes one): it is what the store means.
    const marked = storeSnapshot(VERSION, THREE_GUESTS_STORE, { ...parsed, mdevs: parsed.mdevs.map((m) => ({ ...m, name: `${m.name}-from-the-snapshot` })) });
    expect(loadStore(path, marked).store.mdevs.map((m) => m.name)).toEqual(['guest1-from-the-snapshot', 'guest2-from-the-snapshot', 'guest3-from-the-snapshot']);
    // Made by other code, or of another text: the file is parsed.
    expect(loadStore(path, { ...marked, tool: `${VERSION}+other` }).store).toEqual(parsed);
    expect(loadStore(path, { ...marked, content: `${THREE_GUESTS_STORE} ` }).store).toEqual(parsed);
    // Edits go through the lines, parsed when asked.
    expect(loadStore(path, marked).doc.get('masks', 'apmask')).toBe('0-4,7-255');
  });

  it('a store readable by root alone is not copied into the record, which all may read', async () => {
    const host = givenHost(threeGuestsHost());
    chmodSync(join(host.root, 'etc/ap-persist/ap-persist.conf'), 0o600);
    expect((await host.run('generate')).code).toBe(0);
    expect(parseRecord(host.read('etc/ap-persist/generated.json'), 'generated.json').store).toBeUndefined();
  });

  it('a broken store is refused with its line even beside a snapshot of another text', () => {
    const dir = tempDir();
    const path = join(dir, 'ap-persist.conf');
    writeFileSync(path, '[masks]\napmask = 5-3\n');
    const snapshot = storeSnapshot(VERSION, THREE_GUESTS_STORE, parseStoreText(THREE_GUESTS_STORE, 'f'));
    expect(() => loadStore(path, snapshot)).toThrow(/range '5-3' is reversed/);
  });

  it('generate records it; the hook then applies the store the file holds, edited since or not', async () => {
    const host = givenHost(threeGuestsHost(), { env: BINDINGS });
    expect((await host.run('generate')).code).toBe(0);
    const record = parseRecord(host.read('etc/ap-persist/generated.json'), 'generated.json');
    expect(record.store?.content).toBe(host.storeText());
    expect(record.store?.tool).toBe(VERSION);
    // As generated: the snapshot's masks.
    expect((await host.run('hook')).code).toBe(0);
    expect(IdSet.fromKernelHex(host.read('sys/bus/ap/apmask').trim())!.toRanges()).toBe('0-4,7-255');
    // The admin edits apmask by hand and runs no generate: the next hook applies the edit, not the snapshot.
    writeFileSync(join(host.root, 'etc/ap-persist/ap-persist.conf'), host.storeText().replace(/^apmask = .*$/m, 'apmask = 0-3,7-255'));
    expect((await host.run('hook')).code).toBe(0);
    expect(IdSet.fromKernelHex(host.read('sys/bus/ap/apmask').trim())!.toRanges()).toBe('0-3,7-255');
    const report = JSON.parse(host.read('run/ap-persist/last-hook.json'));
    expect(report.mdevs.find((m: { uuid: string }) => m.uuid === GUEST1)).toBeDefined();
  });
});
