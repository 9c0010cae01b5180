// The kernel documentation's example host (vfio-ap.rst, "Example"): cards 05
// and 06 (CEX5, hwtype 11), usage domains 0x0004, 0x0047, 0x00ab, 0x00ff,
// three guests. Freshly booted: the kernel's default masks, vfio_ap not
// loaded, no mdev active; the store says how it should be.

import type { FakeHost } from './builder.js';

export const GUEST1 = 'bfccf00d-21f1-448c-9979-b7341129d985';
export const GUEST2 = '4b0d8e7a-5f2c-4c11-8e44-6a1f1b3b7c21';
export const GUEST3 = 'c2f1a0de-9d3b-4f7e-a6c5-0e8b2d4f6a13';

export const THREE_GUESTS_STORE = `; ap-persist store for the kernel documentation's three-guest host.
; Cards 05 and 06 with domains 0x04, 0x47, 0xab and 0xff go to vfio_ap.

[masks]
apmask = 0-4,7-255        ; host keeps every adapter but 5 and 6
aqmask = 0-3,5-70,72-170,172-254

; Guest1 gets both cards on domains 4 and 0xab, and may change 0xab.
[mdev.${GUEST1}]
name = guest1
adapters = 5,6
domains = 4,0xab
control_domains = 0xab
start = auto              ; started at boot

[mdev.${GUEST2}]
name = guest2
adapters = 5
domains = 0x47,0xff
start = auto

[mdev.${GUEST3}]
name = guest3
adapters = 6
domains = 0x47,0xff
start = auto
`;

/** guest1 and guest2 of the three-guest host; guest3's queues (6 x 0x47,0xff) are free. */
export const TWO_GUESTS_STORE = THREE_GUESTS_STORE.slice(0, THREE_GUESTS_STORE.indexOf(`[mdev.${GUEST3}]`));

export function threeGuestsHost(): FakeHost {
  return {
    cards: [
      { adapter: 5, hwtype: 11 },
      { adapter: 6, hwtype: 11 },
    ],
    domains: [0x04, 0x47, 0xab, 0xff],
    store: THREE_GUESTS_STORE,
  };
}
