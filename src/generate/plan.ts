// One generate run, decided before anything is written: what the store asks
// for, how that meets the disk, and what stands in the way. Pure: the caller
// passes in what it read.

import type { CheckResult } from '../checks/check-host.js';
import type { Drift } from '../checks/drift.js';
import type { HostPaths } from '../host/paths.js';
import type { Store } from '../store/store.js';
import type { RenderChzdevRules } from './chzdev-rules.js';
import { desiredHostFiles, linkedUnits, type RootPath } from './host-files.js';
import type { ManifestEntry } from './manifest.js';
import type { StoreSnapshot } from '../store/snapshot.js';
import { reconcile, type Observed, type Step } from './reconcile.js';
import { releasedLinks } from './enable.js';

export interface GeneratePlan {
  store: Store;
  /** Persistent conflicts of the store: the auto mdevs named there fail at boot. */
  check: CheckResult;
  /** One step per path, in path order. */
  steps: Step[];
  /** The record once the steps are done. */
  manifest: ManifestEntry[];
  /** Unit files the links point to that are not installed. */
  missingUnits: RootPath[];
  /** What the peers changed in the boot files, to explain the conflicts. */
  drift: Drift[];
  /** The store these files come from, for the record (store/snapshot.ts); none when there is no store file. */
  storeSnapshot?: StoreSnapshot;
  /** The pending list it was planned with (what a run killed before its record was putting in place). */
  pending: readonly ManifestEntry[];
}

export interface PlanInput {
  store: Store;
  check: CheckResult;
  paths: HostPaths;
  storeLabel: string;
  renderChzdevRules: RenderChzdevRules;
  /** The record of the last run; undefined when generate never ran on this host. */
  recorded: readonly ManifestEntry[] | undefined;
  /** The files a run killed before its record was putting in place (paths.generatedPending). */
  pending?: readonly ManifestEntry[];
  observe: (path: RootPath) => Observed;
  exists: (path: RootPath) => boolean;
  drift: Drift[];
}

export function makePlan(input: PlanInput): GeneratePlan {
  const desired = desiredHostFiles(input);
  // A link generate made before systemctl preset enabled the wait: systemctl's now, left alone and forgotten.
  const released = new Set(releasedLinks(input.paths));
  const recorded = (input.recorded ?? []).filter((e) => !released.has(e.path));
  const { steps, manifest } = reconcile(desired, recorded, input.observe, { adoptUnrecorded: input.recorded === undefined, pending: input.pending ?? [] });
  return {
    store: input.store,
    check: input.check,
    steps,
    manifest,
    missingUnits: linkedUnits(desired).filter((u) => !input.exists(u)),
    drift: input.drift,
    pending: input.pending ?? [],
  };
}
