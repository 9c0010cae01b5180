// What check warns about without failing: IDs above the machine's limits,
// cards older than CEX4, APQNs not present, an mdev with no usage domain.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IdSet } from '../../src/model/idset.js';
import { givenHost } from '../support/host.js';

const U = '12345678-1234-4234-8234-123456789abc';

describe('check warnings', () => {
  it('names each finding and still exits 0 (-v: every not-present warning on its own)', async () => {
    const host = givenHost({
      cards: [
        { adapter: 2, hwtype: 7 }, // CEX3: never vfio_ap's
        { adapter: 5, hwtype: 11 },
      ],
      domains: [4],
      maxAdapterId: 15,
      maxDomainId: 15,
      store: `[masks]
apmask =
aqmask =

[mdev.${U}]
name = odd
adapters = 2,5,20
domains = 4,9
start = auto

[mdev.aaaaaaaa-1234-4234-8234-123456789abc]
adapters = 6
start = manual
`,
    });
    const r = await host.json('-v', 'check', '--persistent');
    expect(r.code).toBe(0);
    const kinds = (r.doc.warnings as { kind: string; message: string }[]).map((w) => [w.kind, w.message]);
    expect(kinds).toEqual([
      ['above-max-id', `mdev ${U} (odd): adapter(s) 20 above ap_max_adapter_id 15; the kernel refuses them (ENODEV)`],
      ['old-card', `mdev ${U} (odd): card 02 has hwtype 7 (older than CEX4, type 10); vfio_ap never gets its queues`],
      ['not-present', expect.stringContaining(`mdev ${U} (odd): 4 APQN(s) not present on this host (02.0009, 05.0009, 14.0004, 14.0009)`)],
      // Adapters without domains make no APQN, so none is missing either.
      ['no-domains', 'mdev aaaaaaaa-1234-4234-8234-123456789abc: has adapters but no usage domains, so it gives the guest no queue'],
    ]);
    expect(r.doc.warnings[2]).toEqual({ scope: 'persistent', kind: 'not-present', uuid: U, message: expect.any(String) });

    // Without -v the not-present warnings become one summary, in the place of the first; the others stay.
    const brief = await host.json('check', '--persistent');
    expect(brief.code).toBe(0);
    expect((brief.doc.warnings as { kind: string }[]).map((w) => w.kind)).toEqual(['above-max-id', 'old-card', 'not-present-summary', 'no-domains']);
    expect(brief.doc.warnings[2]).toEqual({
      scope: 'persistent',
      kind: 'not-present-summary',
      message: `1 mdev(s) have APQN(s) not present on this host, 4 in all (e.g. mdev ${U} (odd) lacks 4 (02.0009, 05.0009, 14.0004, ...)); allowed, the guests get them when they appear; use -v to list them`,
      count: 1,
      apqns: 4,
      examples: [{ uuid: U, name: 'odd', missing: 4, apqns: ['02.0009', '05.0009', '14.0004', '14.0009'] }],
    });
  });
});

/** `n` mdevs, each on adapters 1-2 and one domain of its own: on a host with card 0 alone, none of their APQNs is present. */
function overProvisioned(n: number): { host: ReturnType<typeof givenHost>; uuids: string[] } {
  const uuids = Array.from({ length: n }, (_, i) => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`);
  const store = uuids.reduce(
    (text, u, i) => `${text}\n[mdev.${u}]\nname = guest${i}\nadapters = 1-2\ndomains = ${i}\nstart = auto\n`,
    '[masks]\napmask =\naqmask =\n',
  );
  const host = givenHost({ cards: [{ adapter: 0, hwtype: 12 }], domains: Array.from({ length: n }, (_, d) => d), masks: { apmask: IdSet.empty(), aqmask: IdSet.empty() }, vfioAp: true, store });
  return { host, uuids };
}

describe('APQNs not present, on an over-provisioned store', () => {
  it('check says it in one line: how many mdevs, a few of them, and -v to list them', async () => {
    const { host, uuids } = overProvisioned(10);
    const r = await host.run('check');
    expect(r.code).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.includes('not present'));
    expect(lines).toEqual([
      `warning (persistent): 10 mdev(s) have APQN(s) not present on this host, 20 in all (e.g. mdev ${uuids[0]} (guest0) lacks 2 (01.0000, 02.0000); mdev ${uuids[1]} (guest1) lacks 2 (01.0001, 02.0001); mdev ${uuids[2]} (guest2) lacks 2 (01.0002, 02.0002); and 7 more); allowed, the guests get them when they appear; use -v to list them`,
    ]);
    expect(r.stdout).toContain('no conflicts');
  });

  it('check -v lists every mdev, as before', async () => {
    const { host, uuids } = overProvisioned(10);
    const r = await host.run('-v', 'check');
    expect(r.code).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.includes('not present'));
    expect(lines).toEqual(
      uuids.map(
        (u, i) =>
          `warning (persistent): mdev ${u} (guest${i}): 2 APQN(s) not present on this host (01.${i.toString(16).padStart(4, '0')}, 02.${i.toString(16).padStart(4, '0')}); allowed, the guest gets them when they appear`,
      ),
    );
    expect(r.stderr).not.toContain('use -v');
  });

  it('check --json carries the summary (count, examples), and -v every warning', async () => {
    const { host, uuids } = overProvisioned(10);
    const brief = await host.json('check');
    expect(brief.code).toBe(0);
    const summaries = (brief.doc.warnings as { kind: string }[]).filter((w) => w.kind.startsWith('not-present'));
    expect(summaries).toEqual([
      {
        scope: 'persistent',
        kind: 'not-present-summary',
        message: expect.stringMatching(/^10 mdev\(s\) have APQN\(s\) not present on this host, 20 in all \(e\.g\. .*; and 7 more\); .*use -v to list them$/),
        count: 10,
        apqns: 20,
        examples: [0, 1, 2].map((i) => ({ uuid: uuids[i], name: `guest${i}`, missing: 2, apqns: [`01.000${i}`, `02.000${i}`] })),
      },
    ]);

    const all = await host.json('-v', 'check');
    const each = (all.doc.warnings as { kind: string; uuid?: string }[]).filter((w) => w.kind.startsWith('not-present'));
    expect(each.map((w) => [w.kind, w.uuid])).toEqual(uuids.map((u) => ['not-present', u]));
    expect(each.every((w) => !('count' in w) && !('examples' in w))).toBe(true);
  });

  it('a refusal lists the summary too (generate on a store with a conflict)', async () => {
    const { host } = overProvisioned(10);
    // A second mdev on guest0's APQNs: a conflict, so generate refuses and prints the check.
    const text = host.storeText() + '\n[mdev.11111111-2222-4333-8444-555555555555]\nadapters = 1\ndomains = 0\nstart = auto\n';
    writeFileSync(join(host.root, 'etc/ap-persist/ap-persist.conf'), text);
    const r = await host.run('generate');
    expect(r.code).toBe(3);
    const lines = r.stderr.split('\n').filter((l) => l.includes('not present'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^warning \(persistent\): 11 mdev\(s\) have APQN\(s\) not present on this host, 21 in all .*use -v to list them$/);
    const verbose = await host.run('-v', 'generate');
    expect(verbose.stderr.split('\n').filter((l) => l.includes('not present'))).toHaveLength(11);
  });
});
