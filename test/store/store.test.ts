// The store as an admin writes it by hand: comments, blank lines, hex IDs,
// inline comments. Every broken input names file:line and changes nothing.

import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { parseStoreText } from '../../src/store/store.js';
import { GUEST1, THREE_GUESTS_STORE, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { givenHost } from '../support/host.js';

const U = 'bfccf00d-21f1-448c-9979-b7341129d985';

function errorOf(text: string): InputError {
  try {
    parseStoreText(text, 'ap-persist.conf');
  } catch (err) {
    if (err instanceof InputError) return err;
    throw err;
  }
  throw new Error('no error');
}

describe('reading the store', () => {
  it('reads the three-guest store of the kernel documentation', () => {
    const store = parseStoreText(THREE_GUESTS_STORE, 'ap-persist.conf');
    expect(store.masks.apmask!.toRanges()).toBe('0-4,7-255');
    expect(store.masks.aqmask!.toRanges()).toBe('0-3,5-70,72-170,172-254');
    const g1 = store.mdevs.find((m) => m.uuid === GUEST1)!;
    expect(g1.name).toBe('guest1');
    expect(g1.adapters.ids()).toEqual([5, 6]);
    expect(g1.domains.ids()).toEqual([4, 171]);
    expect(g1.controlDomains.ids()).toEqual([171]);
    expect(store.mdevs.map((m) => m.start)).toEqual(['auto', 'auto', 'auto']);
  });

  it('a missing mask key leaves the mask to the kernel; an empty one gives the host nothing', () => {
    const store = parseStoreText('[masks]\napmask =\n', 'f');
    expect(store.masks.apmask!.isEmpty()).toBe(true);
    expect(store.masks.aqmask).toBeUndefined();
  });

  const broken: [string, string, number, RegExp][] = [
    ['unknown section', '[mask]\napmask = 1\n', 1, /unknown section \[mask\]/],
    ['unknown key', `[mdev.${U}]\nadapter = 5\n`, 2, /unknown key 'adapter'/],
    ['duplicate key', '[masks]\napmask = 1\napmask = 2\n', 3, /set twice \(first at line 2\)/],
    ['duplicate section', `[mdev.${U}]\nadapters = 5\n[mdev.${U.toUpperCase()}]\n`, 3, new RegExp(`defines mdev ${U} a second time \\(first at line 1\\)`)],
    // The unit would start one section's matrix while check passed the other's.
    ['same UUID spelled with a space', `[mdev.${U}]\nadapters = 5\n[mdev. ${U}]\nadapters = 6\n`, 3, new RegExp(`\\[mdev\\. ${U}\\] defines mdev ${U} a second time`)],
    ['duplicate [masks]', '[masks]\napmask = 1\n[masks]\naqmask = 2\n', 3, /defines \[masks\] a second time/],
    ['bad UUID', '[mdev.guest1]\nadapters = 5\n', 1, /not a UUID/],
    ['bad ID', `[mdev.${U}]\nadapters = 5,300\n`, 2, /above 255/],
    ['reversed range', `[mdev.${U}]\ndomains = 9-3\n`, 2, /reversed/],
    ['bad start', `[mdev.${U}]\nstart = yes\n`, 2, /not auto, manual or guest/],
    ['relative mask', '[masks]\napmask = -5\n', 2, /absolute/],
    ['garbage line', '[masks]\nthis is not ini\n', 2, /cannot read/],
    ['key before section', 'apmask = 1\n', 1, /before any \[section\]/],
  ];
  for (const [what, text, line, message] of broken) {
    it(`refuses a ${what} with file:line`, () => {
      const err = errorOf(text);
      expect(err.where).toBe(`ap-persist.conf:${line}`);
      expect(err.message).toMatch(message);
      expect(err.exitCode).toBe(2);
    });
  }
});

const HAND_WRITTEN = `# Crypto pass-through for the payment guests.
# Owner: the KVM team.

[masks]
; Keep 5 and 6 for the guests.
apmask = 0-4,7-255   ; host adapters
aqmask = 0-3,5-70,72-170,172-254

; The first guest: both cards.
[mdev.${U}]
name = guest1
adapters = 5,6
domains = 4,0xab   ; hex as in lszcrypt
start = auto

# trailing note
`;

describe('editing the store keeps what the admin wrote', () => {
  it('mdev define and modify keep every comment, blank line and the section order', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: HAND_WRITTEN });
    const NEW = '11111111-2222-4333-8444-555555555555';
    expect((await host.run('mdev', 'define', NEW, '--adapters', '5', '--domains', '0x47', '--name', 'guest2')).code).toBe(0);
    expect((await host.run('mdev', 'modify', U, '--name', 'payments')).code).toBe(0);
    const text = host.storeText();
    // Every line the admin wrote is still there but the one value changed.
    for (const line of HAND_WRITTEN.split('\n').filter((l) => l !== 'name = guest1')) expect(text).toContain(line);
    expect(text).toContain('name = payments');
    // The unchanged domains keep the admin's hex spelling and inline comment.
    expect(text).toContain('domains = 4,0xab   ; hex as in lszcrypt');
    expect(text.indexOf('[masks]')).toBeLessThan(text.indexOf(`[mdev.${U}]`));
    expect(text.indexOf(`[mdev.${U}]`)).toBeLessThan(text.indexOf(`[mdev.${NEW}]`));
    expect(text).toMatch(new RegExp(`\\[mdev\\.${NEW}\\]\\nname = guest2\\nadapters = 5\\ndomains = 71\\nstart = auto\\n`));
  });

  it('a changed value keeps its inline comment', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: HAND_WRITTEN });
    expect((await host.run('mdev', 'modify', U, '--domains', '4')).code).toBe(0);
    expect(host.storeText()).toContain('domains = 4   ; hex as in lszcrypt');
  });

  it('mdev undefine removes the section and the comment that describes it, nothing else', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: HAND_WRITTEN });
    expect((await host.run('mdev', 'undefine', U)).code).toBe(0);
    const text = host.storeText();
    expect(text).not.toContain(U);
    expect(text).not.toContain('; The first guest: both cards.');
    expect(text).toContain('# Owner: the KVM team.');
    expect(text).toContain('apmask = 0-4,7-255   ; host adapters');
    expect(text).toContain('# trailing note');
  });

  // The store's own layout (DESIGN.md): a comment continued on indented lines below its entry.
  const CONTINUED = `[masks]
apmask = 0-4,7-255
aqmask = 0-3,5-70,72-170,172-254

[mdev.${GUEST1}]
adapters = 5,6
domains = 4,0xab
start = auto              ; auto: started at boot; manual: defined only;
                          ; guest: created when its libvirt guest starts
[mdev.4b0d8e7a-5f2c-4c11-8e44-6a1f1b3b7c21]
name = guest2
adapters = 5
domains = 0x47,0xff
start = auto
`;

  it('a new key goes below the comment that continues the last entry, not into it', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: CONTINUED });
    const r = await host.run('mdev', 'modify', GUEST1, '--name', 'guest1', '--no-generate');
    expect(r.code, r.stderr).toBe(0);
    expect(host.storeText()).toContain('start = auto              ; auto: started at boot; manual: defined only;\n                          ; guest: created when its libvirt guest starts\nname = guest1\n');
  });

  it("mdev undefine of the next section leaves the previous entry's continued comment", async () => {
    const host = givenHost({ ...threeGuestsHost(), store: CONTINUED });
    expect((await host.run('mdev', 'undefine', '4b0d8e7a-5f2c-4c11-8e44-6a1f1b3b7c21', '--no-generate')).code).toBe(0);
    expect(host.storeText()).toBe(CONTINUED.slice(0, CONTINUED.indexOf('[mdev.4b0d')));
  });

  it('a name with a quote or a backslash is refused (the store would read another name back), nothing changed', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: CONTINUED });
    for (const name of ['"x"', "'q'", 'a\\b']) {
      const r = await host.run('mdev', 'modify', GUEST1, '--name', name, '--no-generate');
      expect(r.code, name).toBe(2);
      expect(r.stderr).toContain('--name');
      expect(host.storeText()).toBe(CONTINUED);
    }
  });

  it('a store with Windows line ends is refused saying so, and how to convert it', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: CONTINUED.replaceAll('\n', '\r\n') });
    const r = await host.run('check');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('ap-persist.conf:2:');
    expect(r.stderr).toContain('it ends in a carriage return (the file has Windows line ends, CRLF)');
    expect(r.stderr).toContain('dos2unix');
  });

  it('mask set rewrites only the mask it changes', async () => {
    const host = givenHost({ ...threeGuestsHost(), store: HAND_WRITTEN });
    // Adapter 7 is the host's already: nothing changes, not even the spelling.
    expect((await host.run('mask', 'set', '--persistent', 'apmask=+7')).code).toBe(0);
    expect(host.storeText()).toBe(HAND_WRITTEN);
    expect((await host.run('mask', 'set', '--persistent', 'apmask=-7')).code).toBe(0);
    expect(host.storeText()).toBe(HAND_WRITTEN.replace('apmask = 0-4,7-255   ; host adapters', 'apmask = 0-4,8-255   ; host adapters'));
  });

  it('an edit to a broken store is refused, never repaired', async () => {
    const broken = HAND_WRITTEN.replace('start = auto', 'start = sometimes');
    const host = givenHost({ ...threeGuestsHost(), store: broken });
    const before = host.snapshot();
    const r = await host.run('mdev', 'define', '--adapters', '6', '--domains', '0x47');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/ap-persist\.conf:14: start 'sometimes' is not auto, manual or guest/);
    expect(host.snapshot()).toEqual(before);
  });
});
