// How findings are shown: lines for the admin, or DESIGN.md's JSON document.

import { formatApqn } from '../model/apqn.js';
import type { CheckWarning } from './check-host.js';
import type { Conflict, ConflictKind, ConflictList } from './conflicts.js';

const FIX: Record<ConflictKind, string> = {
  'mdev-mdev': "give each mdev its own adapters or domains ('ap-persist mdev modify'), or make one of them --start manual",
  'mdev-host':
    "free the APQN for vfio_ap ('ap-persist mask set apmask=-ADAPTER' or 'aqmask=-DOMAIN'), or drop it from the mdev",
  'active-mdev-host': "stop the guest and the mdev first ('ap-persist mdev stop UUID'), or keep the ID in the vfio_ap pool",
};

export interface CheckJson {
  ok: boolean;
  conflicts: {
    scope: string;
    kind: string;
    adapter: number;
    domain: number;
    apqn: string;
    owners: [string, string];
    message: string;
  }[];
  omitted?: number;
  warnings: WarningJson[];
}

export interface WarningJson {
  scope: string;
  kind: string;
  uuid?: string;
  message: string;
  /** not-present-summary: how many mdevs have APQNs not present, how many APQNs in all, and the first few mdevs. */
  count?: number;
  apqns?: number;
  examples?: { uuid: string; name?: string; missing: number; apqns: string[] }[];
}

/** How the findings are shown: `verbose` (-v) lists every not-present warning, else one summary says how many. */
export interface ReportOptions {
  verbose?: boolean;
}

/** The mdevs a not-present summary names. */
export const NOT_PRESENT_EXAMPLES = 3;
/** The APQNs of each of them it names in the text (the JSON has the warning's eight). */
const EXAMPLE_APQNS = 3;

/**
 * The warnings as shown: without `verbose`, the not-present warnings of a
 * scope (one per mdev: 4,096 on an over-provisioned store) become one, in
 * the place of the first, with how many mdevs, a few of them, and -v to list
 * them all. Every other warning stays as it is, in its order.
 */
export function shownWarnings(warnings: readonly CheckWarning[], opts: ReportOptions = {}): CheckWarning[] {
  if (opts.verbose) return [...warnings];
  const groups = new Map<string, CheckWarning[]>();
  for (const w of warnings) {
    if (w.kind !== 'not-present') continue;
    const group = groups.get(w.scope);
    if (group) group.push(w);
    else groups.set(w.scope, [w]);
  }
  if (groups.size === 0) return [...warnings];
  const out: CheckWarning[] = [];
  for (const w of warnings) {
    if (w.kind !== 'not-present') out.push(w);
    else if (groups.get(w.scope)![0] === w) out.push(notPresentSummary(groups.get(w.scope)!));
  }
  return out;
}

function notPresentSummary(group: readonly CheckWarning[]): CheckWarning {
  let apqns = 0;
  for (const w of group) apqns += w.missing?.count ?? 0;
  const examples = group.slice(0, NOT_PRESENT_EXAMPLES).map((w) => ({
    uuid: w.uuid ?? '',
    ...(w.missing?.name ? { name: w.missing.name } : {}),
    missing: w.missing?.count ?? 0,
    apqns: w.missing?.first ?? [],
  }));
  const named = group.slice(0, NOT_PRESENT_EXAMPLES).map((w) => {
    const m = w.missing;
    if (!m) return w.message;
    const shown = m.first.slice(0, EXAMPLE_APQNS).join(', ');
    return `mdev ${m.label} lacks ${m.count} (${shown}${m.count > EXAMPLE_APQNS ? ', ...' : ''})`;
  });
  const more = group.length > NOT_PRESENT_EXAMPLES ? `; and ${group.length - NOT_PRESENT_EXAMPLES} more` : '';
  return {
    scope: group[0]!.scope,
    kind: 'not-present-summary',
    message: `${group.length} mdev(s) have APQN(s) not present on this host, ${apqns} in all (e.g. ${named.join('; ')}${more}); allowed, the guests get them when they appear; use -v to list them`,
    summary: { count: group.length, apqns, examples },
  };
}

function warningJson(w: CheckWarning): WarningJson {
  const doc: WarningJson = { scope: w.scope, kind: w.kind, ...(w.uuid !== undefined ? { uuid: w.uuid } : {}), message: w.message };
  if (w.summary) Object.assign(doc, { count: w.summary.count, apqns: w.summary.apqns, examples: w.summary.examples });
  return doc;
}

export function checkJson(result: ConflictList & { warnings?: CheckWarning[] }, opts: ReportOptions = {}): CheckJson {
  const doc: CheckJson = {
    ok: result.conflicts.length === 0,
    conflicts: result.conflicts.map((c) => ({
      scope: c.scope,
      kind: c.kind,
      adapter: c.apqn.adapter,
      domain: c.apqn.domain,
      apqn: formatApqn(c.apqn),
      owners: [c.owners[0].uuid, c.owners[1].uuid],
      message: c.message,
    })),
    warnings: shownWarnings(result.warnings ?? [], opts).map(warningJson),
  };
  if (result.omitted) doc.omitted = result.omitted;
  return doc;
}

/** Lines for stdout/stderr: each conflict with its fix, then warnings. */
export function checkLines(result: ConflictList & { warnings?: CheckWarning[] }, opts: ReportOptions = {}): string[] {
  const lines: string[] = [];
  const kinds = new Set<ConflictKind>();
  for (const c of result.conflicts) {
    lines.push(`conflict (${c.scope}): ${c.message}`);
    kinds.add(c.kind);
  }
  if (result.omitted) lines.push(`... and ${result.omitted} more conflicts not listed`);
  for (const k of kinds) lines.push(`  to fix ${k}: ${FIX[k]}`);
  for (const w of shownWarnings(result.warnings ?? [], opts)) lines.push(`warning (${w.scope}): ${w.message}`);
  return lines;
}

/** The distinct owners named in conflicts, for a one-line summary. */
export function conflictOwners(conflicts: readonly Conflict[]): string[] {
  return [...new Set(conflicts.flatMap((c) => c.owners.map((o) => o.uuid)))];
}
