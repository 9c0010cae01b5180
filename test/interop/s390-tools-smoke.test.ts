// The real s390-tools peers (Debian's s390x chzdev and lszdev under qemu-user;
// test/support/s390-tools.ts) against a test root: chzdev writes 41-ap.rules as
// our fixture says, lszdev reads it and ours back. Debian's package has no
// ap-check, so it is not run here.

import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { buildFakeHost } from '../../src/fakehost/builder.js';
import { threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { IdSet } from '../../src/model/idset.js';
import { chzdevRulesText } from '../support/chzdev.js';
import { givenHost, tempDir } from '../support/host.js';
import { itWith } from '../support/real-tools.js';
import { s390Tools, type S390Tools } from '../support/s390-tools.js';

// Built on first use (about 15 MB from the Debian archive; 2-3 s on a fast
// mirror), then cached under /var/cache/ap-persist-test.
const found = await s390Tools();
const tools = 'skip' in found ? undefined : found;
const zdev = { missing: 'skip' in found ? found.skip : undefined };
const use = (): S390Tools => tools!;

// The kernel documentation's host: cards 05 and 06, domains 4, 0x47, 0xab, 0xff.
const APMASK = IdSet.full().minus(IdSet.of([5, 6]));
const AQMASK = IdSet.full().minus(IdSet.of([0x04, 0x47, 0xab, 0xff]));
const RULES = 'etc/udev/rules.d/41-ap.rules';

/** Upstream version as numbers: 2.40.0-4 → [2, 40, 0]. */
const upstream = (v: string): number[] => v.replace(/-[^-]*$/, '').split('.').map(Number);
const atLeast = (v: string, want: number[]): boolean => {
  const have = upstream(v);
  for (let i = 0; i < want.length; i++) if ((have[i] ?? 0) !== want[i]) return (have[i] ?? 0) > want[i]!;
  return true;
};

/**
 * The rule chzdev writes: test/support/chzdev.ts's text (2.40 and later);
 * before 2.40 (trixie's 2.35, checked here) without the ACTION=="add" trigger.
 */
function expectedRules(apmask: IdSet, aqmask: IdSet): string {
  const text = chzdevRulesText(apmask, aqmask);
  return atLeast(use().version, [2, 40]) ? text : text.replace(/^ACTION=="add".*\n/m, '');
}

/** A freshly booted host: the kernel's default masks (everything to the host), no rule. */
function freshHost(): string {
  const root = tempDir();
  buildFakeHost(root, { ...threeGuestsHost(), store: undefined });
  return root;
}

/** lszdev's `--pairs` attribute lines as { apmask: "0-4,7-255", ... } for the column asked. */
function pairs(stdout: string, column: 'ACTIVE' | 'PERSISTENT'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const attr = /^ATTRIBUTE="([^"]*)"/.exec(line)?.[1];
    const value = new RegExp(`\\b${column}="([^"]*)"`).exec(line)?.[1];
    if (attr && value !== undefined) out[attr] = value;
  }
  return out;
}

const ok = (r: { code: number | null; stdout: string; stderr: string }): void => {
  expect(r.code, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(0);
};

describe(`s390-tools ${tools ? `${tools.version} (Debian ${tools.suite}, s390x under qemu-user)` : ''}`, () => {
  itWith(zdev, 'chzdev -t ap -p with both masks writes 41-ap.rules byte for byte as test/support/chzdev.ts builds it', async () => {
    const root = freshHost();
    const sysfsBefore = readFileSync(join(root, 'sys/bus/ap/apmask'), 'utf8');
    const r = await use().chzdev(root, ['-t', 'ap', '-p', 'apmask=-5-6', 'aqmask=-4,-0x47,-0xab,-0xff']);
    ok(r);
    expect(readFileSync(join(root, RULES), 'utf8')).toBe(expectedRules(APMASK, AQMASK));
    // -p: the active masks are left alone.
    expect(readFileSync(join(root, 'sys/bus/ap/apmask'), 'utf8')).toBe(sysfsBefore);
  });

  itWith(zdev, 'an absolute chzdev assignment gives the same file as the relative one', async () => {
    const root = freshHost();
    ok(await use().chzdev(root, ['-t', 'ap', '-p', 'apmask=0-4,7-255', 'aqmask=0-3,5-70,72-170,172-254']));
    expect(readFileSync(join(root, RULES), 'utf8')).toBe(expectedRules(APMASK, AQMASK));
  });

  itWith(zdev, 'chzdev persists only the mask it was given: apmask alone gives a rule without an aqmask line', async () => {
    const root = freshHost();
    ok(await use().chzdev(root, ['-t', 'ap', '-p', 'apmask=+5,-6']));
    const text = readFileSync(join(root, RULES), 'utf8');
    const onlyAp = expectedRules(IdSet.full().minus(IdSet.of([6])), IdSet.full())
      .split('\n')
      .filter((l) => !l.startsWith('ATTR{../../bus/ap/aqmask}'))
      .join('\n');
    expect(text).toBe(onlyAp);
    // lszdev then shows only apmask as persistent.
    const ls = await use().lszdev(root, ['-t', 'ap', '-p', '--pairs']);
    ok(ls);
    expect(pairs(ls.stdout, 'PERSISTENT')).toEqual({ apmask: '0-5,7-255' });
  });

  itWith(zdev, 'lszdev -t ap reads back what chzdev persisted, and the active masks from sysfs', async () => {
    const root = freshHost();
    ok(await use().chzdev(root, ['-t', 'ap', '-p', 'apmask=-5-6', 'aqmask=-4,-0x47,-0xab,-0xff']));
    const r = await use().lszdev(root, ['-t', 'ap', '--pairs']);
    ok(r);
    expect(pairs(r.stdout, 'PERSISTENT')).toEqual({ apmask: APMASK.toRanges(), aqmask: AQMASK.toRanges() });
    expect(pairs(r.stdout, 'ACTIVE')).toEqual({ apmask: '0-255', aqmask: '0-255' });
  });

  itWith(zdev, "lszdev -t ap reads the masks from ap-persist's own 41-ap.rules (with its guard line) as from chzdev's", async () => {
    const host = givenHost(threeGuestsHost());
    const g = await host.run('generate');
    expect(g.code, g.stderr).toBe(0);
    expect(host.read(RULES)).toContain('ap-persist');
    const r = await use().lszdev(host.root, ['-t', 'ap', '-p', '--pairs']);
    ok(r);
    expect(pairs(r.stdout, 'PERSISTENT')).toEqual({ apmask: APMASK.toRanges(), aqmask: AQMASK.toRanges() });
  });

  itWith(zdev, 'chzdev -r removes the rule once no mask is left', async () => {
    const root = freshHost();
    ok(await use().chzdev(root, ['-t', 'ap', '-p', 'apmask=-5']));
    expect(existsSync(join(root, RULES))).toBe(true);
    ok(await use().chzdev(root, ['-t', 'ap', '-p', '-r', 'apmask']));
    expect(existsSync(join(root, RULES))).toBe(false);
  });

  itWith(zdev, 'round trip: chzdev changes and removals after generate show as drift, import takes them, generate keeps them, lszdev reads the same', async () => {
    const host = givenHost(threeGuestsHost());
    expect((await host.run('generate')).code).toBe(0);
    const lszdev = async (): Promise<Record<string, string>> => {
      const r = await use().lszdev(host.root, ['-t', 'ap', '-p', '--pairs']);
      ok(r);
      return pairs(r.stdout, 'PERSISTENT');
    };
    for (const change of [['apmask=-8'], ['-r', 'apmask'], ['aqmask=-5']]) {
      ok(await use().chzdev(host.root, ['-t', 'ap', '-p', ...change]));
      const chzdevSays = await lszdev();
      const check = await host.run('check');
      expect(check.stderr, `after chzdev ${change.join(' ')}`).toContain('/etc/udev/rules.d/41-ap.rules was changed since ap-persist wrote it');
      const imp = await host.run('import', '--from', 'chzdev');
      expect(imp.code, imp.stderr).toBe(0);
      const g = await host.run('generate');
      expect(g.code, g.stderr).toBe(0);
      expect(await lszdev(), `after chzdev ${change.join(' ')}, import, generate`).toEqual(chzdevSays);
      expect((await host.run('check')).stderr).not.toContain('41-ap.rules was changed');
    }
    // apmask ended removed: chzdev's meaning, not set, is the store's too.
    expect(host.read('etc/ap-persist/ap-persist.conf')).not.toMatch(/^apmask/m);
  });
});
