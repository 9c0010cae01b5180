// Decides what `generate` does with each path: write, keep, remove, or
// refuse. The rule: a path is touched only when it is absent, holds what
// generate wrote there last (the manifest says so), or already holds what it
// would write. Anything else was written or changed by someone else (chzdev,
// an admin) and is a conflict that only --force overrides. Pure.

import type { HostEntry, RootPath } from './host-files.js';
import { entriesByPath, holdsListed, holdsRecorded, manifestEntry, type ManifestEntry } from './manifest.js';

export type { Observed } from '../fsio/observe.js';
import type { Observed } from '../fsio/observe.js';

/** Why a path is not generate's to change. */
export type ConflictReason = 'changed-since-generated' | 'removed-since-generated' | 'not-generated';

/** A step that changes the disk; `conflict` when the path is not generate's to change. */
export type Change =
  | { op: 'write'; entry: HostEntry; observed: Observed; conflict?: ConflictReason }
  | { op: 'remove'; path: RootPath; observed: Observed; conflict?: ConflictReason };

export type Step = Change | { op: 'keep'; entry: HostEntry };

export type Conflicting = Change & { conflict: ConflictReason };

export interface Reconciled {
  /** In path order. */
  steps: Step[];
  /** The manifest once the steps are done. */
  manifest: ManifestEntry[];
}

function holds(observed: Observed, entry: HostEntry): boolean {
  if (entry.kind === 'file') return observed.kind === 'file' && observed.content === entry.content;
  return observed.kind === 'symlink' && observed.target === entry.target;
}

/** Conflict reason for changing `observed`, or undefined when generate may. */
function ownership(observed: Observed, recorded: ManifestEntry | undefined): ConflictReason | undefined {
  // Gone since generate wrote it: chzdev -r, mdevctl undefine or an admin removed it on purpose.
  if (observed.kind === 'absent') return recorded ? 'removed-since-generated' : undefined;
  if (!recorded) return 'not-generated';
  return holdsRecorded(observed, recorded) ? undefined : 'changed-since-generated';
}

/**
 * `observe` answers for every path of `desired` and `recorded`; the caller
 * reads the disk, so this stays pure.
 */
export function reconcile(
  desired: readonly HostEntry[],
  recorded: readonly ManifestEntry[],
  observe: (path: RootPath) => Observed,
  opts: {
    adoptUnrecorded?: boolean;
    /** What a run killed before its record was writing (paths.generatedPending): ours where it holds that (on a first run, not adopted). */
    pending?: readonly ManifestEntry[];
  } = {},
): Reconciled {
  const previous = new Map(recorded.map((r) => [r.path, r]));
  // A path twice: two first runs killed in turn, with the store changed between them.
  const pending = entriesByPath(opts.pending ?? []);
  const wanted = new Map(desired.map((d) => [d.path, d]));
  const steps: Step[] = [];
  const seen = new Map<RootPath, Observed>();
  /** Made by the killed run, on a path the record does not name: absent (it never got there) or holding what that run wrote. */
  const leftByKilledRun = (path: RootPath, observed: Observed): boolean => {
    return pending.has(path) && !previous.has(path) && (observed.kind === 'absent' || holdsListed(pending, path, observed));
  };
  for (const path of [...new Set([...wanted.keys(), ...previous.keys(), ...pending.keys()])].sort()) {
    const entry = wanted.get(path);
    const observed = observe(path);
    seen.set(path, observed);
    const left = leftByKilledRun(path, observed);
    // Named by the killed run, no longer wanted, and since replaced by someone else: theirs, not ours to remove.
    if (!entry && !previous.has(path) && !left) continue;
    // A recorded file the killed run had already replaced holds its content, not the record's: still ours.
    const conflict = left || holdsListed(pending, path, observed) ? undefined : ownership(observed, previous.get(path));
    if (entry) {
      if (holds(observed, entry)) steps.push({ op: 'keep', entry });
      else steps.push({ op: 'write', entry, observed, ...(conflict ? { conflict } : {}) });
    } else if (observed.kind !== 'absent') {
      steps.push({ op: 'remove', path, observed, ...(conflict ? { conflict } : {}) });
    }
  }
  // On its first run on a host (no record yet), what generate finds already in place was
  // chzdev's or mdevctl's: adopted, and it stays so; but not what a first run killed before its
  // record had made (it named those first). Later, an unrecorded file of the right content is
  // what a run killed between the file and the record left: ours.
  const manifest = desired.map((d): ManifestEntry => {
    const before = previous.get(d.path);
    const observed = seen.get(d.path)!;
    const adopted = before ? before.adopted : opts.adoptUnrecorded === true && observed.kind !== 'absent' && !leftByKilledRun(d.path, observed);
    return adopted ? { ...manifestEntry(d), adopted: true } : manifestEntry(d);
  });
  return { steps, manifest };
}

export function conflictsOf(steps: readonly Step[]): Conflicting[] {
  return steps.filter((s): s is Conflicting => s.op !== 'keep' && s.conflict !== undefined);
}

export function stepPath(step: Step): RootPath {
  return step.op === 'remove' ? step.path : step.entry.path;
}
