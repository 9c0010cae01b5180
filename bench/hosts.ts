// The hosts the bench measures, made with the fake-host builder.

import type { FakeHost } from '../src/fakehost/builder.js';
import { IdSet } from '../src/model/idset.js';

const uuid = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

interface Block {
  uuid: string;
  adapters: number[];
  domains: number[];
}

export interface BenchHost {
  host: FakeHost;
  callout?: { uuid: string; json: string };
}

/** side x side mdevs, each owning its own block of adapters x domains: no conflict, all 65,536 APQNs for side 64. */
function grid(side: number, width: number): Block[] {
  const blocks: Block[] = [];
  const ids = (start: number): number[] => Array.from({ length: width }, (_, k) => start + k);
  for (let i = 0; i < side; i++) for (let j = 0; j < side; j++) blocks.push({ uuid: uuid(i * side + j), adapters: ids(i * width), domains: ids(j * width) });
  return blocks;
}

/** A store where the host keeps nothing: every APQN is free for vfio_ap. */
function storeOf(blocks: Block[]): string {
  const range = (ids: number[]): string => IdSet.of(ids).toRanges();
  return blocks.reduce(
    (text, b, i) => `${text}\n[mdev.${b.uuid}]\nname = guest${i}\nadapters = ${range(b.adapters)}\ndomains = ${range(b.domains)}\nstart = auto\n`,
    '[masks]\napmask =\naqmask =\n',
  );
}

export function benchHosts(): Record<string, BenchHost> {
  // 64 auto mdevs of one APQN each on 8 cards x 8 domains, all up, masks already right.
  const hook = grid(8, 1);
  return {
    hook64: {
      host: {
        cards: Array.from({ length: 8 }, (_, adapter) => ({ adapter, hwtype: 12 })),
        domains: Array.from({ length: 8 }, (_, d) => d),
        masks: { apmask: IdSet.empty(), aqmask: IdSet.empty() },
        vfioAp: true,
        activeMdevs: hook,
        store: storeOf(hook),
      },
      // A newcomer on a free APQN, checked against the 64 active mdevs and the masks.
      callout: {
        uuid: uuid(9999),
        json: JSON.stringify({ mdev_type: 'vfio_ap-passthrough', start: 'manual', attrs: [{ assign_adapter: '9' }, { assign_domain: '9' }] }),
      },
    },
    check4096: { host: { cards: [], domains: [], masks: null, store: storeOf(grid(64, 4)) } },
    generate1024: { host: { cards: [], domains: [], masks: null, store: storeOf(grid(32, 8)) } },
  };
}
