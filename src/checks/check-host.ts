// Assembles the two scopes of DESIGN.md from a host view and runs the engine:
// persistent (store + mdevctl auto definitions vs the persistent masks) and
// active (live masks and mdevs). Pure: the view was read before.

import { formatAdapter, formatApqn } from '../model/apqn.js';
import { IdSet, MAX_ID } from '../model/idset.js';
import { mdevLabel, type HostMasks, type MdevDefinition } from '../model/mdev.js';
import type { CalloutsView } from '../host/callouts.js';
import type { HostView, LiveState, MdevctlView } from '../host/state.js';
import { driftLines, driftWaysOut, effectiveConfig, type EffectiveConfig } from './drift.js';
import type { Store } from '../store/store.js';
import { parseChzdevRules } from '../generate/chzdev-rules.js';
import { ClaimIndex, conflictKey, findHostOwned, findSharedApqns, mergeConflicts, newlyHostOwned, type ConflictList, type Scope } from './conflicts.js';

export interface CheckWarning {
  scope: Scope;
  kind: string;
  uuid?: string;
  message: string;
  /** A not-present warning's APQNs: how many, the first few (kernel notation), and the mdev's label and name; not in the JSON. */
  missing?: { count: number; first: string[]; label: string; name?: string | undefined };
  /** A summary of many not-present warnings (without -v): how many mdevs, and the first few. */
  summary?: { count: number; apqns: number; examples: { uuid: string; name?: string; missing: number; apqns: string[] }[] };
}

export interface CheckResult extends ConflictList {
  warnings: CheckWarning[];
}

export interface ResolvedMasks {
  apmask: IdSet;
  aqmask: IdSet;
  /** Where each side came from, for messages. */
  source: { apmask: MaskSource; aqmask: MaskSource };
}

export type MaskSource = 'store' | 'active' | 'kernel-default';

/** The configuration the next boot uses: the store with the peers' changes (drift) in their place. */
export function persistentConfig(view: Pick<HostView, 'store' | 'boot'>): EffectiveConfig {
  return effectiveConfig(view.store.store, view.boot);
}

/** The store alone, as generate writes it (over any drift). */
export function storeConfig(store: Store): EffectiveConfig {
  return { masks: store.masks, mdevs: store.mdevs, drift: [] };
}

/**
 * The masks the host will have after boot: the configuration's (41-ap.rules'
 * where chzdev changed them, else the store's), read as ap-check reads them;
 * a side neither sets stays as the kernel has it (the active value; the
 * kernel's default, everything to the host, when there is none).
 */
export function persistentMasks(config: { masks: HostMasks }, live: LiveState | undefined): ResolvedMasks {
  const side = (key: 'apmask' | 'aqmask'): [IdSet, MaskSource] => {
    const own = config.masks[key];
    if (own) return [own, 'store'];
    const active = live?.masks?.[key];
    return active ? [active, 'active'] : [IdSet.full(), 'kernel-default'];
  };
  const [apmask, apSource] = side('apmask');
  const [aqmask, aqSource] = side('aqmask');
  return { apmask, aqmask, source: { apmask: apSource, aqmask: aqSource } };
}

/** Auto mdevs of the configuration plus mdevctl's auto definitions it does not hold. */
export function autostartMdevs(config: Pick<EffectiveConfig, 'mdevs'>, mdevctl: Pick<MdevctlView, 'outside'>): MdevDefinition[] {
  const ours = config.mdevs;
  // mdevctl's own: the store's files are not even parsed (the callout's define path reads 64 and more).
  const known = new Set<string>(ours.map((m) => m.uuid));
  return [...ours.filter((m) => m.start === 'auto'), ...mdevctl.outside(known).filter((m) => m.start === 'auto')];
}

/**
 * What a guest mdev meets at rest: the persistent masks, which it must stay
 * clear of (a conflict: it could never be made), and the auto mdevs, which
 * hold their APQNs from boot (a warning: it can start only while they are
 * down). Other guest mdevs are no concern: what counts is what runs at the
 * same moment, which the qemu hook checks when a guest starts.
 */
export function guestFindings(guests: readonly MdevDefinition[], autos: readonly MdevDefinition[], masks: Pick<ResolvedMasks, 'apmask' | 'aqmask'>): { conflicts: ConflictList; warnings: CheckWarning[] } {
  const conflicts = findHostOwned(guests, masks.apmask, masks.aqmask, 'persistent');
  const warnings: CheckWarning[] = [];
  // The autos indexed once: each guest costs its own adapters, not a pass over every auto mdev.
  const index = new ClaimIndex(autos);
  for (const guest of guests) {
    const shared = new Map<string, { auto: MdevDefinition; apqns: string[] }>();
    const found = index.check(guest, undefined, 'persistent');
    for (const c of found.conflicts) {
      const auto = c.owners[0] as MdevDefinition;
      const entry = shared.get(auto.uuid) ?? { auto, apqns: [] };
      entry.apqns.push(formatApqn(c.apqn));
      shared.set(auto.uuid, entry);
    }
    for (const { auto, apqns } of shared.values()) {
      // Counted, not the listed ones: a list is cut at MAX_REPORTED.
      const count = auto.adapters.intersect(guest.adapters).size * auto.domains.intersect(guest.domains).size;
      const shown = count > 8 ? `${apqns.slice(0, 8).join(', ')}, ...` : apqns.join(', ');
      warnings.push({
        scope: 'persistent',
        kind: 'guest-overlaps-auto',
        uuid: guest.uuid,
        message: `guest mdev ${mdevLabel(guest)} shares ${count} APQN(s) (${shown}) with auto mdev ${mdevLabel(auto)}, which holds them from boot: its guest can start only while that mdev is stopped`,
      });
    }
    if (found.omitted) {
      // The overlaps past the cut may be with auto mdevs not named above.
      warnings.push({ scope: 'persistent', kind: 'guest-overlaps-auto', uuid: guest.uuid, message: `guest mdev ${mdevLabel(guest)} has ${found.omitted} more overlap(s) with auto mdevs, past the ${found.conflicts.length} looked at one by one: other auto mdevs than those named may hold its APQNs` });
    }
  }
  return { conflicts, warnings };
}

/**
 * APQNs of running mdevs (other than the auto ones, already checked) that the
 * persistent masks give the host: at the next boot those mdevs could not be
 * made again. 41-ap.rules never applies such masks while vfio_ap is loaded.
 */
export function activeGivenAway(view: Pick<HostView, 'live'>, masks: Pick<ResolvedMasks, 'apmask' | 'aqmask'>, autos: readonly MdevDefinition[], before?: Pick<ResolvedMasks, 'apmask' | 'aqmask'>): ConflictList {
  const none = IdSet.empty();
  return newlyHostOwned(runningNotAuto(view, autos), before ?? { apmask: none, aqmask: none }, masks, 'persistent', 'active-mdev-host');
}

/** The running mdevs that are no auto mdev (ours or mdevctl's). */
export function runningNotAuto(view: Pick<HostView, 'live'>, autos: readonly MdevDefinition[]): HostView['live']['mdevs'] {
  const auto = new Set(autos.map((m) => m.uuid));
  return view.live.mdevs.filter((m) => !auto.has(m.uuid));
}

/**
 * The persistent scope: `config` (by default what the next boot uses, drift
 * included and reported) with mdevctl's own auto definitions.
 */
export function checkPersistent(view: Pick<HostView, 'store' | 'mdevctl' | 'live' | 'boot'>, config: EffectiveConfig = persistentConfig(view)): CheckResult {
  const masks = persistentMasks(config, view.live);
  const autos = autostartMdevs(config, view.mdevctl);
  const guests = guestFindings(
    config.mdevs.filter((m) => m.start === 'guest'),
    autos,
    masks,
  );
  const conflicts = mergeConflicts(findSharedApqns(autos, 'persistent'), findHostOwned(autos, masks.apmask, masks.aqmask, 'persistent'), guests.conflicts);
  // A warning, not a conflict: generate and install must still write the guarded 41-ap.rules
  // (an upgrade from an unguarded one most of all); mask set refuses to introduce it.
  const warnings: CheckWarning[] = activeGivenAway(view, masks, autos).conflicts.map((c) => ({
    scope: 'persistent',
    kind: 'running-mdev-given-away',
    uuid: c.owners[1]!.uuid,
    message: c.message,
  }));
  warnings.push(...guests.warnings);
  for (const d of config.drift) {
    const [head, ...diff] = driftLines(d);
    warnings.push({ scope: 'persistent', kind: 'drift', ...('uuid' in d ? { uuid: d.uuid } : {}), message: [head, ...diff.map((l) => `  ${l}`), `  ${driftWaysOut(d)}`].join('\n') });
  }
  if (view.boot.recordError) warnings.push({ scope: 'persistent', kind: 'record-damaged', message: `${view.boot.recordError}: every generated file is taken for a peer's` });
  for (const key of ['apmask', 'aqmask'] as const) {
    if (masks.source[key] !== 'store') {
      warnings.push({
        scope: 'persistent',
        kind: 'mask-not-set',
        message: `no persistent ${key} is set; the check assumes the ${masks.source[key] === 'active' ? 'active' : "kernel's default (all IDs to the host)"} value`,
      });
    }
  }
  for (const u of view.mdevctl.unreadable) {
    warnings.push({ scope: 'persistent', kind: 'mdevctl-unreadable', message: `skipped mdevctl definition ${u.path}: ${u.reason}` });
  }
  // Lines zdev drops (it says "Unrecognized udev rule" and reads on): a mask line among them does not count at boot either.
  if (view.boot.rules.kind === 'file') {
    for (const line of parseChzdevRules(view.boot.rules.content).skipped) {
      warnings.push({ scope: 'persistent', kind: 'rules-line-skipped', message: `/${view.boot.rulesPath}:${line.line} is ${line.message}; chzdev, lszdev and ap-check skip it (zdev says "Unrecognized udev rule")` });
    }
  }
  warnings.push(...mdevWarnings(config.mdevs, view.live, 'persistent'));
  return { ...conflicts, warnings };
}

export function checkActive(live: LiveState): CheckResult {
  // Active mdevs sharing an APQN is a conflict whether or not the masks can be read.
  const shared = findSharedApqns(live.mdevs, 'active');
  if (!live.masks) {
    return {
      ...shared,
      warnings: live.apBus
        ? [{ scope: 'active', kind: 'masks-unreadable', message: 'the active AP masks could not be read' }]
        : [{ scope: 'active', kind: 'no-ap-bus', message: 'no AP bus (sys/bus/ap): the active masks were not checked' }],
    };
  }
  return { ...mergeConflicts(shared, findHostOwned(live.mdevs, live.masks.apmask, live.masks.aqmask, 'active')), warnings: [] };
}

/** Findings that do not stop anything but that an admin wants to know. */
export function mdevWarnings(mdevs: readonly MdevDefinition[], live: LiveState | undefined, scope: Scope): CheckWarning[] {
  const out: CheckWarning[] = [];
  const oldCards = new Map((live?.cards ?? []).filter((c) => c.hwtype !== undefined && c.hwtype < 10).map((c) => [c.adapter, c.hwtype]));
  const present = live?.apBus ? live.present : undefined;
  const maxIds = live?.maxIds;
  for (const m of mdevs) {
    const label = mdevLabel(m);
    const warn = (kind: string, message: string, extra: Partial<CheckWarning> = {}): void =>
      void out.push({ scope, kind, uuid: m.uuid, message: `mdev ${label}: ${message}`, ...extra });
    if (!m.adapters.isEmpty() && m.domains.isEmpty()) warn('no-domains', 'has adapters but no usage domains, so it gives the guest no queue');
    if (m.adapters.isEmpty() && !m.domains.isEmpty()) warn('no-adapters', 'has domains but no adapters, so it gives the guest no queue');
    if (maxIds) {
      // No ID is above a limit of 255 (the usual one): nothing to list then.
      const over = (ids: () => IdSet, max: number): number[] => (max >= MAX_ID ? [] : ids().ids().filter((id) => id > max));
      const a = over(() => m.adapters, maxIds.adapter);
      const d = over(() => m.domains.union(m.controlDomains), maxIds.domain);
      if (a.length) warn('above-max-id', `adapter(s) ${IdSet.of(a).toRanges()} above ap_max_adapter_id ${maxIds.adapter}; the kernel refuses them (ENODEV)`);
      if (d.length) warn('above-max-id', `domain(s) ${IdSet.of(d).toRanges()} above ap_max_domain_id ${maxIds.domain}; the kernel refuses them (ENODEV)`);
    }
    for (const a of m.adapters.ids()) {
      const hw = oldCards.get(a);
      if (hw !== undefined) warn('old-card', `card ${formatAdapter(a)} has hwtype ${hw} (older than CEX4, type 10); vfio_ap never gets its queues`);
    }
    if (present) {
      // Counted a row at a time, not APQN by APQN: 4,096 mdevs over 65,536 APQNs stay cheap.
      const { count, first } = present.missingOf(m.adapters, m.domains, 8);
      if (count) {
        const shown = first.map(formatApqn);
        warn('not-present', `${count} APQN(s) not present on this host (${shown.join(', ')}${count > 8 ? ', ...' : ''}); allowed, the guest gets them when they appear`, {
          missing: { count, first: shown, label, name: m.name },
        });
      }
    }
  }
  return out;
}

/** What mdevctl may ask instead of our callout, in one line; undefined when only ours answers. */
export function apCheckWarning(callouts: CalloutsView): string | undefined {
  if (!callouts.ours.length || !callouts.apCheck.length) return undefined;
  return `s390-tools' ap-check is installed as an mdevctl callout too (${callouts.apCheck.join(', ')}): mdevctl takes the answer of the first callout that handles vfio_ap, so ap-persist's checks may never run; run 'ap-persist install' to set it aside again`;
}

/** Runs the scopes asked for. */
export function checkHost(view: HostView, scopes: { persistent: boolean; active: boolean }): CheckResult {
  const parts: CheckResult[] = [];
  const apCheck = apCheckWarning(view.callouts);
  if (apCheck) parts.push({ conflicts: [], omitted: 0, warnings: [{ scope: 'persistent', kind: 'ap-check-present', message: apCheck }] });
  if (scopes.persistent) parts.push(checkPersistent(view));
  if (scopes.active) parts.push(checkActive(view.live));
  const merged = mergeConflicts(...parts);
  return { ...merged, warnings: parts.flatMap((p) => p.warnings) };
}

/** Conflicts in `after` that `before` did not have: what a change introduces. */
export function newConflicts(before: ConflictList, after: ConflictList): ConflictList {
  const old = new Set(before.conflicts.map(conflictKey));
  const conflicts = after.conflicts.filter((c) => !old.has(conflictKey(c)));
  return { conflicts, omitted: after.omitted };
}


