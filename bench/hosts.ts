// The hosts the bench measures, laid out by the fake-host builder (the same
// files FileSysfs reads on a real host). Active mdevs are adopted by the
// simulated kernel rather than made through its assign_* writes: the same
// files on disk, without the simulator's checks, which take minutes for
// thousands of mdevs (the hosts here hold no conflict for them to find).

import { mkdirSync, rmSync } from 'node:fs';
import { HostPaths } from '../src/host/paths.js';
import { writeMark } from '../src/fsio/mark.js';
import { buildFakeHost, type FakeHost, type FakeMdev } from '../src/fakehost/builder.js';
import { IdSet } from '../src/model/idset.js';
import { SimKernel } from '../src/sysfs/sim-kernel.js';

export const uuid = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

const range = (start: number, count: number): number[] => Array.from({ length: count }, (_, k) => start + k);

/** side x side mdevs, each owning its own block of width x width adapters x domains: no conflict; all 65,536 APQNs for side 64, width 4. */
export function grid(side: number, width: number): FakeMdev[] {
  const blocks: FakeMdev[] = [];
  for (let i = 0; i < side; i++) for (let j = 0; j < side; j++) blocks.push({ uuid: uuid(i * side + j), adapters: range(i * width, width), domains: range(j * width, width) });
  return blocks;
}

/** A store of auto mdevs (or, with `guestEvery` n, every n-th a guest one) where the host keeps nothing: every APQN is vfio_ap's. */
export function storeOf(mdevs: readonly FakeMdev[], guestEvery = 0): string {
  const ids = (list: number[]): string => IdSet.of(list).toRanges();
  const start = (i: number): string => (guestEvery && i % guestEvery === 0 ? 'guest' : 'auto');
  const sections = mdevs.map((m, i) => `\n[mdev.${m.uuid}]\nname = guest${i}\nadapters = ${ids(m.adapters)}\ndomains = ${ids(m.domains)}\nstart = ${start(i)}\n`);
  return `[masks]\napmask =\naqmask =\n${sections.join('')}`;
}

export interface BenchHost {
  host: FakeHost;
  /** Active in vfio_ap (adopted by the simulated kernel, see above). */
  active: FakeMdev[];
}

/** Writes the host under `root`, replacing whatever was there. */
export function layOut(root: string, { host, active }: BenchHost): void {
  rmSync(root, { recursive: true, force: true });
  buildFakeHost(root, { ...host, activeMdevs: [] });
  if (active.length === 0) return;
  const kernel = SimKernel.fromDisk(root, '6.0');
  for (const m of active) kernel.adoptMdev(m.uuid, m.adapters, m.domains, m.controlDomains ?? []);
  kernel.saveTo(root);
  // /run as after the boot that brought them up: systemd's mark of each mdev's unit (its
  // RuntimeDirectory), and the boot hook's own marks of the units and the target it started.
  const paths = new HostPaths(root);
  for (const m of active) mkdirSync(`${paths.unitMarksDir}/${m.uuid}`, { recursive: true });
  markBootHookRan(paths);
}

/** The boot hook's marks in /run that it had the units and the target started: a later event's hook finds them. */
export function markBootHookRan(paths: HostPaths): void {
  writeMark(paths.unitsStarted);
  writeMark(paths.targetStarted);
}

/**
 * n auto mdevs (n a square) of one APQN each on sqrt(n) cards x sqrt(n)
 * domains, with the masks the store asks for (everything to vfio_ap).
 * `running`: every mdev up (a host in service, the hook has nothing to do);
 * otherwise a boot: the kernel's default masks (all to the host), vfio_ap
 * loaded by 41-ap.rules, no mdev yet.
 */
export function mdevHost(n: number, running: boolean): BenchHost {
  const side = Math.round(Math.sqrt(n));
  if (side * side !== n) throw new Error(`mdevHost: ${n} is not a square`);
  const mdevs = grid(side, 1);
  return {
    host: {
      cards: range(0, side).map((adapter) => ({ adapter, hwtype: 12 })),
      domains: range(0, side),
      masks: running ? { apmask: IdSet.empty(), aqmask: IdSet.empty() } : undefined,
      vfioAp: true,
      store: storeOf(mdevs),
    },
    active: running ? mdevs : [],
  };
}

/**
 * 4,096 mdevs of 4 adapters x 4 domains each, all 65,536 APQNs, in the store
 * (none active: checked before the boot brings them up), on a host with all
 * 256 cards (every APQN present in sysfs) or with card 00 alone.
 */
export function checkHost(cards: 'all' | 'one' | 'guests'): BenchHost {
  return {
    host: {
      cards: range(0, cards === 'one' ? 1 : 256).map((adapter) => ({ adapter, hwtype: 12 })),
      domains: range(0, 256),
      masks: { apmask: IdSet.empty(), aqmask: IdSet.empty() },
      vfioAp: true,
      // `guests`: every other mdev is a guest one, which check holds against every auto mdev.
      store: storeOf(grid(64, 4), cards === 'guests' ? 2 : 0),
    },
    active: [],
  };
}

/** mdevctl's device JSON for a newcomer (auto, so define checks it against the store) on an APQN no bench host uses. */
export const NEWCOMER = {
  uuid: uuid(0xfffff),
  adapter: 255,
  domain: 255,
  json: JSON.stringify({ mdev_type: 'vfio_ap-passthrough', start: 'auto', attrs: [{ assign_adapter: '255' }, { assign_domain: '255' }] }),
};
