// status --matrix's owners, found through each mdev's rows of present APQNs,
// against the per-queue reference (every queue tried on every mdev): the same
// owners, in the same order, on random hosts.

import { describe, expect, it } from 'vitest';
import { rng, randomIds } from '../support/random.js';
import { matrixModel } from '../../src/commands/matrix.js';
import type { HostView, LiveState } from '../../src/host/state.js';
import { ApqnSet, type Apqn } from '../../src/model/apqn.js';
import { IdSet } from '../../src/model/idset.js';
import { compareMdevs } from '../../src/model/mdev.js';
import type { Uuid } from '../../src/model/uuid.js';

describe('the matrix model agrees with a per-queue reference', () => {
  for (let seed = 1; seed <= 100; seed++) {
    it(`random host #${seed}`, () => {
      const next = rng(seed * 104729);
      const span = seed % 5 === 0 ? 256 : 3 + (seed % 8);
      const queues: Apqn[] = [];
      for (const adapter of randomIds(next, span, 1 + Math.floor(next() * span)).ids())
        for (const domain of randomIds(next, span, 1 + Math.floor(next() * span)).ids()) queues.push({ adapter, domain });
      const mdevs = Array.from({ length: Math.floor(next() * 8) }, (_, i) => ({
        uuid: `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}` as Uuid,
        adapters: randomIds(next, span, Math.floor(next() * 4)),
        domains: randomIds(next, span, Math.floor(next() * 4)),
        controlDomains: IdSet.empty(),
      }));
      const masks = next() < 0.2 ? undefined : { apmask: randomIds(next, span, Math.floor(next() * span)), aqmask: randomIds(next, span, Math.floor(next() * span)) };
      const live = { apBus: true, masks, mdevs, cards: [], queues, present: ApqnSet.of(queues), maxIds: undefined, vfioAp: true } satisfies LiveState;
      const names = ['guest2', undefined, 'guest10', 'a'];
      const store = { store: { masks: { apmask: undefined, aqmask: undefined }, mdevs: mdevs.map((m, i) => ({ ...m, name: names[i % names.length], start: 'auto' as const })) } } as unknown as HostView['store'];

      const model = matrixModel({ live, store });

      const byName = new Map(store.store.mdevs.map((m) => [m.uuid as string, m.name]));
      const ordered = mdevs.map((m) => ({ ...m, name: byName.get(m.uuid) })).sort(compareMdevs);
      const reference = new Map<number, string[]>();
      for (const q of queues) {
        const who: string[] = [];
        for (const m of ordered) if (m.adapters.has(q.adapter) && m.domains.has(q.domain)) who.push(m.uuid);
        if (masks && masks.apmask.has(q.adapter) && masks.aqmask.has(q.domain)) who.push('host');
        reference.set(q.adapter * 256 + q.domain, who);
      }
      expect([...model.owners.entries()].sort(([a], [b]) => a - b)).toEqual([...reference.entries()].sort(([a], [b]) => a - b));
      expect(model.mdevs.map((m) => m.uuid)).toEqual(ordered.map((m) => m.uuid));
    });
  }
});
