// What generate tells the admin: progress lines, the diff, the JSON document
// and why a file is in the way. Pure: the plan holds everything needed.

import type { HostPaths } from '../host/paths.js';
import type { IdSet } from '../model/idset.js';
import { parseChzdevRules } from './chzdev-rules.js';
import { unifiedDiff } from './diff.js';
import { rootPath, type HostEntry } from './host-files.js';
import type { GeneratePlan } from './plan.js';
import { driftLines } from '../checks/drift.js';
import { conflictsOf, stepPath, type Observed, type Step } from './reconcile.js';

/** The files part of the --json document of generate (and of install). */
export interface GenerateJson {
  written: string[];
  unchanged: string[];
  removed: string[];
  /** Files someone else wrote or changed: refused, or replaced under --force. */
  file_conflicts: { path: string; reason: string }[];
}

export function generateJson(paths: HostPaths, plan: GeneratePlan): GenerateJson {
  const abs = (s: Step): string => paths.at(stepPath(s));
  return {
    written: plan.steps.filter((s) => s.op === 'write').map(abs),
    unchanged: plan.steps.filter((s) => s.op === 'keep').map(abs),
    removed: plan.steps.filter((s) => s.op === 'remove').map(abs),
    file_conflicts: conflictsOf(plan.steps).map((s) => ({ path: abs(s), reason: s.conflict })),
  };
}

/** `would write X` / `wrote X` lines; unchanged files only when `verbose`. */
export function stepLines(paths: HostPaths, steps: readonly Step[], opts: { dryRun: boolean; verbose: boolean }): string[] {
  const lines: string[] = [];
  for (const s of steps) {
    const where = paths.at(stepPath(s));
    if (s.op === 'keep') {
      if (opts.verbose) lines.push(`unchanged ${where}`);
      continue;
    }
    const forced = s.conflict ? ' (it was not ours: --force)' : '';
    if (s.op === 'remove') lines.push(`${opts.dryRun ? 'would remove' : 'removed'} ${where}${forced}`);
    else if (s.entry.kind === 'symlink') lines.push(`${opts.dryRun ? 'would link' : 'linked'} ${where} -> ${s.entry.target}${forced}`);
    else lines.push(`${opts.dryRun ? 'would write' : 'wrote'} ${where}${forced}`);
  }
  return lines;
}

/** The unified diff of a step; links read as a one-line `-> target` file, so a retarget shows as a change. */
export function stepDiff(step: Step): string {
  if (step.op === 'keep') return '';
  const show = (o: Observed | HostEntry): string | undefined =>
    o.kind === 'file' ? o.content : o.kind === 'symlink' ? `-> ${o.target}\n` : o.kind === 'other' ? `(${o.what})\n` : undefined;
  return unifiedDiff(show(step.observed), step.op === 'remove' ? undefined : show(step.entry), stepPath(step));
}

const masksText = (m: { apmask: IdSet | undefined; aqmask: IdSet | undefined }): string =>
  `apmask ${m.apmask ? `"${m.apmask.toRanges()}"` : '(not set)'}, aqmask ${m.aqmask ? `"${m.aqmask.toRanges()}"` : '(not set)'}`;

/** One line per file generate may not touch: whose it is and, for 41-ap.rules, whose masks differ how. */
export function fileConflictLines(paths: HostPaths, plan: GeneratePlan): string[] {
  const chzdevRules = rootPath(paths, paths.chzdevRules);
  const explained = new Set<string>();
  return conflictsOf(plan.steps).flatMap((step) => {
    const path = stepPath(step);
    // The exact difference, where the drift check has it: one explanation per file.
    const drift = plan.drift.find((d) => d.path === path);
    if (drift) {
      if (explained.has(path)) return [];
      explained.add(path);
      const [head, ...diff] = driftLines(drift, (p) => paths.at(p));
      return [[head, ...diff.map((l) => `  ${l}`)].join('\n  ')];
    }
    const since =
      step.conflict === 'changed-since-generated'
        ? 'was changed since ap-persist generated it'
        : step.conflict === 'removed-since-generated'
          ? 'was removed since ap-persist generated it'
          : 'was not written by ap-persist';
    const seen = step.observed;
    if (path === chzdevRules && seen.kind === 'file') {
      return [`${paths.at(path)} ${since} (chzdev -t ap writes this file): it sets ${masksText(parseChzdevRules(seen.content))}; the store has ${masksText(plan.store.masks)}`];
    }
    const what = seen.kind === 'symlink' ? ` (a link to ${seen.target})` : seen.kind === 'other' ? ` (${seen.what})` : '';
    return [`${paths.at(path)}${what} ${since}`];
  });
}

export const FILE_CONFLICT_HINT =
  "to keep the other tool's change, run 'ap-persist import' (the store then holds it); " +
  "to put the store's files back, run 'ap-persist generate --force'";
