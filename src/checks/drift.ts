// Drift: where the files the peers act on (chzdev's 41-ap.rules, mdevctl's
// definitions) no longer say what the store says. At boot those files rule,
// so every check works on the effective configuration: the store, with each
// peer's change in its place. Who changed a file is read off generate's
// record (generated.json): a file that still holds what generate wrote is
// the store's (only perhaps stale); one that holds something else, or is
// gone, was changed by a peer. Pure: the caller reads the disk.

import type { Observed } from '../fsio/observe.js';
import { parseChzdevRules } from '../generate/chzdev-rules.js';
import type { RootPath } from '../generate/host-files.js';
import { holdsRecorded, type ManifestEntry } from '../generate/manifest.js';
import type { IdSet } from '../model/idset.js';
import { mdevctlStart, mdevLabel, type HostMasks, type MdevDefinition } from '../model/mdev.js';
import type { Uuid } from '../model/uuid.js';
import type { MdevctlDevice } from '../store/mdevctl-defs.js';
import type { Store } from '../store/store.js';

/** One mdevctl definition file for parent `matrix`, as read. */
export interface DefinitionFile {
  readonly path: RootPath;
  readonly text: string;
  /** Undefined when it cannot be read (or is another type's); `reason` says why. */
  readonly device: MdevctlDevice | undefined;
  readonly reason?: string | undefined;
  /** Another mdev type's definition (vfio_ccw, ...) under a store mdev's UUID: none of vfio_ap's. */
  readonly otherType?: boolean;
  /** It holds what generate wrote, by the record: assign_* lines only, as renderMdevctlJson writes them. */
  readonly generated?: boolean;
}

export interface BootFiles {
  /** generate's record, by path; empty when generate never ran here. */
  recorded: ReadonlyMap<RootPath, ManifestEntry>;
  rulesPath: RootPath;
  rules: Observed;
  mdevctlDir: RootPath;
  /** The vfio_ap definitions in mdevctl's directory, by UUID. */
  definitions: ReadonlyMap<string, DefinitionFile>;
}

export type MaskKey = 'apmask' | 'aqmask';

export interface MaskChange {
  key: MaskKey;
  /** Undefined: not set (the kernel's value stays). */
  store: IdSet | undefined;
  disk: IdSet | undefined;
}

export type Drift =
  /** chzdev (or an admin) set other masks in 41-ap.rules, or removed one. */
  | { kind: 'masks'; path: RootPath; changes: MaskChange[]; generated: boolean }
  /** 41-ap.rules is gone: no persistent masks at boot. */
  | { kind: 'rules-removed'; path: RootPath; changes: MaskChange[] }
  /** Rewritten with the same masks, without the guard line generate writes. */
  | { kind: 'rules-rewritten'; path: RootPath }
  /** A line zdev cannot read: chzdev, lszdev and ap-check abort on it. */
  | { kind: 'rules-unreadable'; path: RootPath; problems: { line?: number; message: string }[] }
  /** mdevctl (define, modify) holds another definition of a store mdev. */
  | { kind: 'mdev-changed'; uuid: Uuid; label: string; path: RootPath; changes: string[]; disk: MdevDefinition; otherAttrs: Record<string, string>[]; generated: boolean }
  /** `mdevctl undefine`: mdevctl no longer knows a store mdev (`otherType`: its UUID now names another type's mdev there). */
  | { kind: 'mdev-undefined'; uuid: Uuid; label: string; path: RootPath; otherType?: true }
  /** Rewritten with the same meaning. */
  | { kind: 'mdev-rewritten'; uuid: Uuid; label: string; path: RootPath }
  | { kind: 'mdev-unreadable'; uuid: Uuid; label: string; path: RootPath; reason: string };

export interface EffectiveConfig {
  /** The persistent masks the boot applies: 41-ap.rules' where chzdev changed them, else the store's. */
  masks: HostMasks;
  /** The store's mdevs with mdevctl's changes in their place (an undefined one is gone). */
  mdevs: MdevDefinition[];
  drift: Drift[];
}

/** The two ways out of any drift, for every report. */
const DRIFT_WAYS_OUT = "keep the peers' change: 'ap-persist import'; or put the store's back: 'ap-persist generate --force'";

/**
 * The ways out of `d`. A 41-ap.rules chzdev wrote with masks the store does
 * not set is no file generate writes: --force leaves it, so the way back is
 * chzdev's own removal.
 */
export function driftWaysOut(d: Drift): string {
  if (d.kind === 'masks' && !d.generated && d.changes.every((c) => !c.store)) {
    return `keep chzdev's masks: 'ap-persist import --from chzdev'; or drop them: 'chzdev -t ap -p ${d.changes.map((c) => `-r ${c.key}`).join(' ')}' (the store sets none, so 'ap-persist generate --force' leaves the file)`;
  }
  return DRIFT_WAYS_OUT;
}

type Ownership = 'ours' | 'changed' | 'removed' | 'foreign' | 'absent';

/** Whether a path still holds what generate wrote there (the record says what). */
function ownership(observed: Observed, recorded: ManifestEntry | undefined): Ownership {
  if (!recorded) return observed.kind === 'absent' ? 'absent' : 'foreign';
  if (observed.kind === 'absent') return 'removed';
  return holdsRecorded(observed, recorded) ? 'ours' : 'changed';
}

/** Two masks alike, "not set" included. */
export function sameMask(a: IdSet | undefined, b: IdSet | undefined): boolean {
  return a && b ? a.equals(b) : a === b;
}

function maskChanges(store: HostMasks, disk: HostMasks): MaskChange[] {
  return (['apmask', 'aqmask'] as const).filter((key) => !sameMask(store[key], disk[key])).map((key) => ({ key, store: store[key], disk: disk[key] }));
}

function rulesDrift(store: Store, files: BootFiles): { drift?: Drift; masks: HostMasks } {
  const path = files.rulesPath;
  const owner = ownership(files.rules, files.recorded.get(path));
  if (owner === 'ours' || owner === 'absent') return { masks: store.masks };
  if (owner === 'removed') {
    const none: HostMasks = { apmask: undefined, aqmask: undefined };
    const changes = maskChanges(store.masks, none);
    return changes.length ? { drift: { kind: 'rules-removed', path, changes }, masks: none } : { masks: store.masks };
  }
  if (files.rules.kind !== 'file') {
    const what = files.rules.kind === 'symlink' ? 'a symbolic link' : files.rules.kind === 'other' ? files.rules.what : 'gone';
    return { drift: { kind: 'rules-unreadable', path, problems: [{ message: `it is ${what}, not a file` }] }, masks: store.masks };
  }
  const parsed = parseChzdevRules(files.rules.content);
  if (parsed.problems.length) {
    return { drift: { kind: 'rules-unreadable', path, problems: parsed.problems }, masks: store.masks };
  }
  const disk: HostMasks = { apmask: parsed.apmask, aqmask: parsed.aqmask };
  const changes = maskChanges(store.masks, disk);
  if (changes.length) return { drift: { kind: 'masks', path, changes, generated: owner === 'changed' }, masks: disk };
  return owner === 'changed' ? { drift: { kind: 'rules-rewritten', path }, masks: store.masks } : { masks: store.masks };
}

/** What differs between the store's definition and mdevctl's, in words. */
function definitionChanges(store: MdevDefinition, disk: MdevctlDevice): string[] {
  const out: string[] = [];
  if (mdevctlStart(store.start) !== disk.start) out.push(`start ${store.start} -> ${disk.start}`);
  const axis = (what: string, a: IdSet, b: IdSet): void => {
    if (!a.equals(b)) out.push(`${what} ${a.toRanges() || '-'} -> ${b.toRanges() || '-'}`);
  };
  axis('adapters', store.adapters, disk.adapters);
  axis('domains', store.domains, disk.domains);
  axis('control domains', store.controlDomains, disk.controlDomains);
  for (const attr of disk.otherAttrs) out.push(`attribute ${JSON.stringify(attr)} the store cannot hold`);
  return out;
}

function mdevDrift(mdev: MdevDefinition, files: BootFiles): { drift?: Drift; effective: MdevDefinition | undefined } {
  const path = `${files.mdevctlDir}/${mdev.uuid}`;
  let file = files.definitions.get(mdev.uuid);
  const recorded = files.recorded.get(path);
  // The reader compared it with the record already.
  let owner = file?.generated ? 'ours' : ownership(file ? { kind: 'file', content: file.text } : { kind: 'absent' }, recorded);
  // Parsed only when not generate's own text.
  const otherType = owner !== 'ours' && file?.otherType === true;
  if (otherType) {
    file = undefined;
    owner = ownership({ kind: 'absent' }, recorded);
  }
  const label = mdevLabel(mdev);
  if (owner === 'ours' || owner === 'absent') return { effective: mdev };
  if (owner === 'removed') return { drift: { kind: 'mdev-undefined', uuid: mdev.uuid, label, path, ...(otherType ? { otherType: true as const } : {}) }, effective: undefined };
  const device = file!.device;
  if (!device) return { drift: { kind: 'mdev-unreadable', uuid: mdev.uuid, label, path, reason: file!.reason ?? 'unreadable' }, effective: mdev };
  const changes = definitionChanges(mdev, device);
  if (changes.length === 0) return owner === 'changed' ? { drift: { kind: 'mdev-rewritten', uuid: mdev.uuid, label, path }, effective: mdev } : { effective: mdev };
  // mdevctl's manual is a guest mdev's own mode there.
  const start = mdevctlStart(mdev.start) === device.start ? mdev.start : device.start;
  const disk: MdevDefinition = { ...mdev, adapters: device.adapters, domains: device.domains, controlDomains: device.controlDomains, start };
  return { drift: { kind: 'mdev-changed', uuid: mdev.uuid, label, path, changes, disk, otherAttrs: device.otherAttrs, generated: owner === 'changed' }, effective: disk };
}

/** One store mdev as the boot makes it: mdevctl's definition where it changed ours; undefined once undefined there. */
export function effectiveMdev(mdev: MdevDefinition, files: BootFiles): MdevDefinition | undefined {
  return mdevDrift(mdev, files).effective;
}

/** The store with every peer's change in its place, and the list of those changes. */
export function effectiveConfig(store: Store, files: BootFiles): EffectiveConfig {
  const drift: Drift[] = [];
  const rules = rulesDrift(store, files);
  if (rules.drift) drift.push(rules.drift);
  const mdevs: MdevDefinition[] = [];
  for (const m of store.mdevs) {
    const d = mdevDrift(m, files);
    if (d.drift) drift.push(d.drift);
    if (d.effective) mdevs.push(d.effective);
  }
  return { masks: rules.masks, mdevs, drift };
}

/** Drift that changes what the boot does (a rewrite with the same meaning does not). */
export function changesBoot(d: Drift): boolean {
  return d.kind !== 'rules-rewritten' && d.kind !== 'mdev-rewritten';
}

function maskText(key: MaskKey, ids: IdSet | undefined): string {
  if (!ids) return 'not set';
  return `${key === 'apmask' ? 'adapters' : 'domains'} ${ids.toRanges() || 'none'}`;
}

function maskChangeLine(c: MaskChange): string {
  const gained = c.disk && c.store ? c.disk.minus(c.store) : undefined;
  const lost = c.disk && c.store ? c.store.minus(c.disk) : undefined;
  const what = c.key === 'apmask' ? 'adapter' : 'domain';
  const effect = [
    ...(gained && !gained.isEmpty() ? [`gives the host ${what}(s) ${gained.toRanges()}`] : []),
    ...(lost && !lost.isEmpty() ? [`frees ${what}(s) ${lost.toRanges()} for vfio_ap`] : []),
  ];
  return `${c.key}: store ${maskText(c.key, c.store)}; on disk ${maskText(c.key, c.disk)}${effect.length ? ` (${effect.join(', ')})` : ''}`;
}

/**
 * One headline per drift and the exact difference below it. `show` turns a
 * root path into what the admin should read (by default, as on the host).
 */
export function driftLines(d: Drift, show: (path: RootPath) => string = (p) => `/${p}`): string[] {
  const path = show(d.path);
  switch (d.kind) {
    case 'masks':
      return [`${path} ${d.generated ? 'was changed since ap-persist wrote it' : 'was not written by ap-persist'} (chzdev -t ap writes it); the boot applies it:`, ...d.changes.map(maskChangeLine)];
    case 'rules-removed':
      return [`${path} was removed (chzdev -r?); the boot sets no persistent masks:`, ...d.changes.map(maskChangeLine)];
    case 'rules-rewritten':
      return [`${path} was rewritten with the store's masks but without ap-persist's guard line, so a udev replay on a running host applies them again`];
    case 'rules-unreadable':
      return [`${path} cannot be read as chzdev writes it; chzdev, lszdev and ap-check stop on it:`, ...d.problems.map((p) => (p.line ? `line ${p.line}: ${p.message}` : p.message))];
    case 'mdev-changed':
      return [`mdevctl's definition of mdev ${d.label} (${path}) ${d.generated ? 'was changed since ap-persist wrote it' : 'differs from the store'}; the boot uses mdevctl's:`, ...d.changes];
    case 'mdev-undefined':
      return d.otherType
        ? [`mdevctl's definition under mdev ${d.label}'s UUID (${path}) is of another mdev type now; the boot does not start it as vfio_ap's`]
        : [`mdev ${d.label} was undefined in mdevctl (${path} is gone); the boot does not start it`];
    case 'mdev-rewritten':
      return [`mdevctl's definition of mdev ${d.label} (${path}) was rewritten with the same meaning`];
    case 'mdev-unreadable':
      return [`mdevctl's definition of mdev ${d.label} (${path}) cannot be read: ${d.reason}`];
  }
}

/** Drift as the JSON documents carry it. */
export function driftJson(d: Drift): { kind: string; path: RootPath; uuid?: string; changes_boot: boolean; lines: string[] } {
  return { kind: d.kind, path: d.path, ...('uuid' in d ? { uuid: d.uuid } : {}), changes_boot: changesBoot(d), lines: driftLines(d) };
}
