// Reads what the checks need from a host: the store, mdevctl's definitions and
// the live AP state. The only I/O on the check path; everything after is pure.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
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

/** mdevctl's vfio_ap-passthrough definitions for parent `matrix`. */
export function readMdevctlDefinitions(paths: HostPaths): MdevctlView {
  const dir = paths.mdevctlMatrixDir;
  const view: MdevctlView = { definitions: [], unreadable: [] };
  if (!existsSync(dir)) return view;
  for (const name of readdirSync(dir).sort()) {
    if (!isUuid(name)) continue;
    const path = join(dir, name);
    try {
      const device = parseMdevctlJson(readFileSync(path, 'utf8'), path);
      if (device.mdevType !== PASSTHROUGH_TYPE) continue;
      view.definitions.push(toDefinition(parseUuid(name), device));
    } catch (err) {
      view.unreadable.push({ path, reason: err instanceof ApPersistError ? err.message : String(err) });
    }
  }
  return view;
}

export interface HostView {
  store: LoadedStore;
  mdevctl: MdevctlView;
  live: LiveState;
}
