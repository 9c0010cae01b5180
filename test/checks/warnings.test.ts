// What check warns about without failing: IDs above the machine's limits,
// cards older than CEX4, APQNs not present, an mdev with no usage domain.

import { describe, expect, it } from 'vitest';
import { givenHost } from '../support/host.js';

const U = '12345678-1234-4234-8234-123456789abc';

describe('check warnings', () => {
  it('names each finding and still exits 0', async () => {
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
    const r = await host.json('check', '--persistent');
    expect(r.code).toBe(0);
    const kinds = (r.doc.warnings as { kind: string; message: string }[]).map((w) => [w.kind, w.message]);
    expect(kinds).toEqual([
      ['above-max-id', `mdev ${U} (odd): adapter(s) 20 above ap_max_adapter_id 15; the kernel refuses them (ENODEV)`],
      ['old-card', `mdev ${U} (odd): card 02 has hwtype 7 (older than CEX4, type 10); vfio_ap never gets its queues`],
      ['not-present', expect.stringContaining(`mdev ${U} (odd): 4 APQN(s) not present on this host (02.0009, 05.0009, 14.0004, 14.0009)`)],
      // Adapters without domains make no APQN, so none is missing either.
      ['no-domains', 'mdev aaaaaaaa-1234-4234-8234-123456789abc: has adapters but no usage domains, so it gives the guest no queue'],
    ]);
  });
});
