// Lays out a fake IBM Z host under a directory: AP bus sysfs (masks, cards,
// queues bound by the kernel's rule), vfio_ap's matrix and active mdevs, the
// store and mdevctl definitions. Tests and examples/ use the same builder.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { formatApqn } from '../model/apqn.js';
import { IdSet } from '../model/idset.js';
import { mdevApqns } from '../model/mdev.js';
import { renderMdevctlJson } from '../store/mdevctl-defs.js';
import type { StartMode } from '../model/mdev.js';
import { AP_BUS, AP_DEVICES, MATRIX, PASSTHROUGH_CREATE } from '../sysfs/ap-host.js';

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

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');

export function buildFakeHost(root: string, host: FakeHost): void {
  mkdirSync(root, { recursive: true });
  if (host.masks !== null) {
    const masks = host.masks ?? { apmask: IdSet.full(), aqmask: IdSet.full() };
    const sys = (rel: string, text: string): void => put(root, `sys/${rel}`, text);
    sys(`${AP_BUS}/apmask`, `${masks.apmask.toKernelHex()}\n`);
    sys(`${AP_BUS}/aqmask`, `${masks.aqmask.toKernelHex()}\n`);
    sys(`${AP_BUS}/ap_max_adapter_id`, `${host.maxAdapterId ?? 255}\n`);
    sys(`${AP_BUS}/ap_max_domain_id`, `${host.maxDomainId ?? 255}\n`);
    sys(`${AP_BUS}/bindings`, `complete (${host.cards.length * host.domains.length}/${host.cards.length * host.domains.length})\n`);
    sys('devices/ap/uevent', 'BINDINGS=complete\nCOMPLETECOUNT=1\n');
    for (const card of host.cards) {
      sys(`${AP_DEVICES}/card${hex2(card.adapter)}/hwtype`, `${card.hwtype}\n`);
      for (const domain of host.domains) {
        const apqn = { adapter: card.adapter, domain };
        const hostOwned = masks.apmask.has(card.adapter) && masks.aqmask.has(domain);
        const driver = hostOwned ? 'cex4queue' : card.hwtype >= 10 && host.vfioAp ? 'vfio_ap' : undefined;
        const dir = `${AP_DEVICES}/${formatApqn(apqn)}`;
        mkdirSync(join(root, 'sys', dir), { recursive: true });
        if (driver) sys(`${dir}/driver`, `${driver}\n`);
      }
    }
    if (host.vfioAp) {
      put(root, `sys/${PASSTHROUGH_CREATE}`, '');
      for (const m of host.activeMdevs ?? []) {
        const adapters = IdSet.of(m.adapters);
        const domains = IdSet.of(m.domains);
        const lines = mdevApqns({ adapters, domains }).toArray().map(formatApqn);
        if (domains.isEmpty()) lines.push(...adapters.ids().map((a) => `${hex2(a)}.`));
        if (adapters.isEmpty()) lines.push(...domains.ids().map((d) => `.${d.toString(16).padStart(4, '0')}`));
        sys(`${MATRIX}/${m.uuid}/matrix`, lines.map((l) => `${l}\n`).join(''));
        sys(`${MATRIX}/${m.uuid}/control_domains`, (m.controlDomains ?? []).map((d) => `${d.toString(16).padStart(4, '0')}\n`).join(''));
      }
    }
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
