// The example of the vfio-ap design talk ("vfio-ap: The Perils of the
// Weird"): three guests whose matrices overlap pairwise in time, not all at
// once. Guest1: adapters 1, 2, domain 1. Guest2: adapters 2, 3, domains 1,
// 2 (shares 02.0001 with Guest1). Guest3: adapter 1, domain 2. With start =
// guest all three are defined; Guest1 and Guest3 run together, Guest2 only
// while Guest1 is down. A booted host: vfio_ap loaded, the store's masks
// applied, no mdev yet. The mdev UUIDs are those of the domain XML in
// test/fixtures/libvirt/.

import { parseIdList } from '../model/idlist.js';
import type { FakeHost } from './builder.js';

export const TALK_GUEST1 = '2615c132-440f-45d3-b18d-7caffc4378df';
export const TALK_GUEST2 = 'ed03cf54-52b4-4c22-b6e4-0b19636db369';
export const TALK_GUEST3 = 'c22eb144-d2d9-4e71-a3ef-f611eb4db372';

const HOST_ADAPTERS = '0,4-255';
const HOST_DOMAINS = '0,3-255';

export const TALK_STORE = `; The talk's three guests, each mdev made for its guest by libvirt's qemu hook.
[masks]
apmask = ${HOST_ADAPTERS}     ; adapters 1-3 to vfio_ap
aqmask = ${HOST_DOMAINS}      ; domains 1-2 to vfio_ap

[mdev.${TALK_GUEST1}]
name = guest1
adapters = 1,2
domains = 1
start = guest

[mdev.${TALK_GUEST2}]
name = guest2
adapters = 2,3
domains = 1,2
start = guest

[mdev.${TALK_GUEST3}]
name = guest3
adapters = 1
domains = 2
start = guest
`;

export function talkGuestsHost(): FakeHost {
  return {
    cards: [1, 2, 3].map((adapter) => ({ adapter, hwtype: 13 })),
    domains: [1, 2],
    masks: { apmask: parseIdList(HOST_ADAPTERS, 'adapter', true), aqmask: parseIdList(HOST_DOMAINS, 'domain', true) },
    vfioAp: true,
    store: TALK_STORE,
  };
}
