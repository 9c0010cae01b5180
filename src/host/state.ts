// Reads what the checks need from a host: the store, mdevctl's definitions and
// the live AP state. The only I/O on the check path; everything after is pure.

import type { CalloutsView } from './callouts.js';
import { existsSync, readdirSync } from 'node:fs';
import { readRegularFile } from '../fsio/read.js';
import { join } from 'node:path';
import { ApPersistError } from '../errors.js';
import type { MdevDefinition } from '../model/mdev.js';
import { isUuid, parseUuid } from '../model/uuid.js';
import type { LoadedStore } from '../store/store.js';
import { parseMdevctlJson, PASSTHROUGH_TYPE, toDefinition } from '../store/mdevctl-defs.js';
import {
  listActiveMatrices,
  listActiveMdevs,
  listCards,
  listQueues,
  readActiveMasks,
  readMaxIds,
  vfioApLoaded,
  type ActiveMasks,
  type ActiveMatrix,
  type ActiveMdev,
  type Card,
  type MaxIds,
  type Queue,
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
  queues: Queue[];
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

export function readLiveState(sysfs: Sysfs): LiveState {
  return {
    masks: readActiveMasks(sysfs),
    mdevs: listActiveMdevs(sysfs),
    vfioAp: vfioApLoaded(sysfs),
    apBus: sysfs.exists('bus/ap'),
    cards: listCards(sysfs),
    queues: listQueues(sysfs),
    maxIds: readMaxIds(sysfs),
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
