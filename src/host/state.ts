// Reads what the checks need from a host: the store, mdevctl's definitions and
// the live AP state. The only I/O on the check path; everything after is pure.

import type { CalloutsView } from './callouts.js';
import { existsSync, readdirSync } from 'node:fs';
import { readRegularFile } from '../fsio/read.js';
import { join } from 'node:path';
import { ApPersistError } from '../errors.js';
import type { ApqnSet, Apqn } from '../model/apqn.js';
import type { MdevDefinition } from '../model/mdev.js';
import { isUuid, parseUuid } from '../model/uuid.js';
import type { LoadedStore } from '../store/store.js';
import { parseMdevctlJson, PASSTHROUGH_TYPE, toDefinition } from '../store/mdevctl-defs.js';
import {
  AP_DEVICES,
  listActiveMatrices,
  listActiveMdevs,
  listCards,
  presentApqns,
  readActiveMasks,
  readMaxIds,
  vfioApLoaded,
  type ActiveMasks,
  type ActiveMatrix,
  type ActiveMdev,
  type Card,
  type MaxIds,
} from '../sysfs/ap-host.js';
import type { Sysfs } from '../sysfs/sysfs.js';
import type { HostPaths } from './paths.js';
import type { BootFiles, DefinitionFile } from '../checks/drift.js';
import { observe } from '../fsio/observe.js';
import { rootPath } from '../generate/host-files.js';
import { parseManifest, type ManifestEntry } from '../generate/manifest.js';

export interface LiveState {
  /** False when the AP bus is not there (not an IBM Z host, or a bare fake root). */
  apBus: boolean;
  masks: ActiveMasks | undefined;
  mdevs: ActiveMdev[];
  cards: Card[];
  /** The queues present, by name (ascending); their drivers are not read. */
  queues: Apqn[];
  /** The same queues as a set, for presence tests. */
  present: ApqnSet;
  maxIds: MaxIds | undefined;
  vfioAp: boolean;
}

export interface MdevctlView {
  definitions: MdevDefinition[];
  /** Files that could not be read, with the reason. */
  unreadable: { path: string; reason: string }[];
  /** Every vfio_ap definition file (readable or not), by UUID, for the drift checks. */
  files: Map<string, DefinitionFile>;
}

/**
 * The live AP state. The masks, the bus and vfio_ap are read at once; the
 * rest (the mdevs, the cards, the queues, the limits) when first asked for,
 * and then kept: `mask show` never lists 65,536 queues, and bus/ap/devices
 * is listed once for both the cards and the queues.
 */
export function readLiveState(sysfs: Sysfs): LiveState {
  const masks = readActiveMasks(sysfs);
  const vfioAp = vfioApLoaded(sysfs);
  const apBus = sysfs.exists('bus/ap');
  let devices: string[] | undefined;
  const listing = (): string[] => (devices ??= sysfs.list(AP_DEVICES));
  const once = <T>(read: () => T): (() => T) => {
    let done = false;
    let value: T;
    return () => {
      if (!done) {
        value = read();
        done = true;
      }
      return value;
    };
  };
  const mdevs = once(() => listActiveMdevs(sysfs));
  const cards = once(() => listCards(sysfs, listing()));
  const present = once(() => presentApqns(sysfs, listing()));
  const queues = once(() => present().toArray());
  const maxIds = once(() => readMaxIds(sysfs));
  return {
    apBus,
    masks,
    vfioAp,
    get mdevs() {
      return mdevs();
    },
    get cards() {
      return cards();
    },
    get queues() {
      return queues();
    },
    get present() {
      return present();
    },
    get maxIds() {
      return maxIds();
    },
  };
}

export interface ActiveState {
  masks: ActiveMasks | undefined;
  mdevs: ActiveMatrix[];
  vfioAp: boolean;
}

/** Only what the boot hook needs: masks and active matrices, not every queue. */
export function readActiveState(sysfs: Sysfs): ActiveState {
  return { masks: readActiveMasks(sysfs), mdevs: listActiveMatrices(sysfs), vfioAp: vfioApLoaded(sysfs) };
}

/**
 * mdevctl's vfio_ap-passthrough definitions for parent `matrix`; with `only`,
 * just that one (an mdev unit at boot needs its own, not all of them).
 */
export function readMdevctlDefinitions(paths: HostPaths, only?: string): MdevctlView {
  const dir = paths.mdevctlMatrixDir;
  const view: MdevctlView = { definitions: [], unreadable: [], files: new Map() };
  if (!existsSync(dir)) return view;
  const names = only === undefined ? readdirSync(dir).sort() : existsSync(join(dir, only)) ? [only] : [];
  for (const name of names) {
    if (!isUuid(name)) continue;
    const path = join(dir, name);
    const file: DefinitionFile = { path: rootPath(paths, path), text: '', device: undefined };
    try {
      file.text = readRegularFile(path, "mdevctl's definition") ?? '';
      const device = parseMdevctlJson(file.text, path);
      if (device.mdevType !== PASSTHROUGH_TYPE) continue;
      file.device = device;
      view.definitions.push(toDefinition(parseUuid(name), device));
    } catch (err) {
      file.reason = err instanceof ApPersistError ? err.message : String(err);
      view.unreadable.push({ path, reason: file.reason });
    }
    view.files.set(name, file);
  }
  return view;
}

/**
 * What the boot reads besides mdevctl's definitions: chzdev's 41-ap.rules
 * and generate's record of what it wrote. A damaged record counts as none
 * (every file then looks like a peer's), with the reason in `recordError`.
 */
export function readBootFiles(paths: HostPaths, mdevctl: MdevctlView): BootFiles & { recordError?: string } {
  let recorded = new Map<string, ManifestEntry>();
  let recordError: string | undefined;
  try {
    const text = readRegularFile(paths.generatedManifest, 'the record of generated files');
    if (text !== undefined) recorded = new Map(parseManifest(text, paths.generatedManifest).map((e) => [e.path, e]));
  } catch (err) {
    recordError = err instanceof ApPersistError ? err.message : String(err);
  }
  return {
    recorded,
    rulesPath: rootPath(paths, paths.chzdevRules),
    rules: observe(paths.chzdevRules),
    mdevctlDir: rootPath(paths, paths.mdevctlMatrixDir),
    definitions: mdevctl.files,
    ...(recordError ? { recordError } : {}),
  };
}

export interface HostView {
  store: LoadedStore;
  mdevctl: MdevctlView;
  live: LiveState;
  boot: BootFiles & { recordError?: string };
  callouts: CalloutsView;
}
