// A large host for status --matrix: `cards` cards (00 ...) with `domains`
// domains (0000 ...), the last card the host's, and `guests` active mdevs
// named guest1 ... guestN sharing the other cards in blocks of domains.
// UUIDs are scrambled against the names, so name order is not UUID order.

import type { FakeHost, FakeMdev } from '../../src/fakehost/builder.js';
import { IdSet } from '../../src/model/idset.js';

export interface BigGuest extends FakeMdev {
  name: string;
}

export interface BigHost {
  spec: FakeHost;
  guests: BigGuest[];
  /** Who owns a present APQN: a guest's UUID, 'H' (host) or '.' (free). */
  owner(adapter: number, domain: number): string;
}

const range = (from: number, count: number): number[] => Array.from({ length: count }, (_, i) => from + i);

export function bigHost(cards: number, domains: number, guests: number): BigHost {
  const hostCard = cards - 1;
  const perCard = Math.ceil(guests / hostCard);
  const block = Math.floor(domains / perCard);
  const list: BigGuest[] = range(0, guests).map((i) => {
    const scrambled = ((i * 37 + 11) % 97).toString(16).padStart(8, '0');
    return {
      uuid: `${scrambled}-0000-4000-8000-${(i + 1).toString(16).padStart(12, '0')}`,
      name: `guest${i + 1}`,
      adapters: [i % hostCard],
      domains: range(block * Math.floor(i / hostCard), block),
    };
  });
  const store = [
    `[masks]\napmask = ${hostCard}-255\naqmask = 0-255\n`,
    ...list.map((g) => `[mdev.${g.uuid}]\nname = ${g.name}\nadapters = ${g.adapters.join(',')}\ndomains = ${IdSet.of(g.domains).toRanges()}\nstart = auto\n`),
  ].join('\n');
  return {
    spec: {
      cards: range(0, cards).map((adapter) => ({ adapter, hwtype: 12 })),
      domains: range(0, domains),
      masks: { apmask: IdSet.full().minus(IdSet.of(range(0, hostCard))), aqmask: IdSet.full() },
      vfioAp: true,
      activeMdevs: list,
      store,
    },
    guests: list,
    owner(adapter, domain) {
      if (adapter === hostCard) return 'H';
      return list.find((g) => g.adapters.includes(adapter) && g.domains.includes(domain))?.uuid ?? '.';
    },
  };
}
