// Lays out a fake IBM Z host under a directory: AP bus sysfs (masks, cards,
// queues bound by the kernel's rule), vfio_ap's matrix and active mdevs, the
// store and mdevctl definitions. Tests and examples/ use the same builder.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { IdSet } from '../model/idset.js';
import { renderMdevctlJson } from '../store/mdevctl-defs.js';
import type { StartMode } from '../model/mdev.js';
import { AP_BUS, PASSTHROUGH_CREATE, mdevPath } from '../sysfs/ap-host.js';
import { SimKernel } from '../sysfs/sim-kernel.js';
import { isSysfsError } from '../sysfs/sysfs.js';

export interface FakeCard {
  adapter: number;
  /** 10 or more is CEX4 and newer, the only cards vfio_ap takes. */
  hwtype: number;
}

export interface FakeMdev {
  uuid: string;
  adapters: number[];
  domains: number[];
  controlDomains?: number[];
}

export interface FakeHost {
  cards: FakeCard[];
  /** Usage domains present on every card. */
  domains: number[];
  maxAdapterId?: number;
  maxDomainId?: number;
  /** Active masks; absent: the kernel default, everything to the host. No `bus/ap` at all when null. */
  masks?: { apmask: IdSet; aqmask: IdSet } | null;
  vfioAp?: boolean;
  activeMdevs?: FakeMdev[];
  /** The store's text, written to etc/ap-persist/ap-persist.conf. */
  store?: string;
  mdevctl?: { uuid: string; start: StartMode; adapters: number[]; domains: number[]; controlDomains?: number[] }[];
  /** Extra files, path relative to the root. */
  files?: Record<string, string>;
}

function put(root: string, rel: string, text: string): void {
  const path = join(root, rel);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

/** Creates and assigns the mdev as an admin would; a state no kernel would build is adopted as is. */
function activate(kernel: SimKernel, m: FakeMdev): void {
  try {
    kernel.write(PASSTHROUGH_CREATE, m.uuid);
    const assign = (attr: string, ids: number[]): void => {
      for (const id of ids) kernel.write(mdevPath(m.uuid, attr), `${id}`);
    };
    assign('assign_adapter', m.adapters);
    assign('assign_domain', m.domains);
    assign('assign_control_domain', m.controlDomains ?? []);
  } catch (err) {
    if (!isSysfsError(err)) throw err;
    kernel.adoptMdev(m.uuid, m.adapters, m.domains, m.controlDomains ?? []);
  }
}

export function buildFakeHost(root: string, host: FakeHost): void {
  mkdirSync(root, { recursive: true });
  if (host.masks !== null) {
    // The simulated kernel decides the bindings and the mdev files, so a fake
    // host on disk looks exactly like what the runtime sees through it.
    const kernel = new SimKernel({
      kernel: '6.0',
      cards: host.cards,
      domains: host.domains,
      maxAdapterId: host.maxAdapterId,
      maxDomainId: host.maxDomainId,
      apmask: host.masks?.apmask,
      aqmask: host.masks?.aqmask,
      vfioAp: host.vfioAp,
    });
    if (host.vfioAp) for (const m of host.activeMdevs ?? []) activate(kernel, m);
    kernel.saveTo(root);
    const queues = host.cards.length * host.domains.length;
    put(root, `sys/${AP_BUS}/bindings`, `complete (${queues}/${queues})\n`);
    put(root, 'sys/devices/ap/uevent', 'BINDINGS=complete\nCOMPLETECOUNT=1\n');
  }
  if (host.store !== undefined) put(root, 'etc/ap-persist/ap-persist.conf', host.store);
  for (const d of host.mdevctl ?? []) {
    const json = renderMdevctlJson(
      { adapters: IdSet.of(d.adapters), domains: IdSet.of(d.domains), controlDomains: IdSet.of(d.controlDomains ?? []) },
      d.start,
    );
    put(root, `etc/mdevctl.d/matrix/${d.uuid}`, json);
  }
  for (const [rel, text] of Object.entries(host.files ?? {})) put(root, rel, text);
}
