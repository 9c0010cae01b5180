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
  warnings: { scope: string; kind: string; uuid?: string; message: string }[];
}

export function checkJson(result: ConflictList & { warnings?: CheckWarning[] }): CheckJson {
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
    warnings: (result.warnings ?? []).map((w) => ({ ...w })),
  };
  if (result.omitted) doc.omitted = result.omitted;
  return doc;
}

/** Lines for stdout/stderr: each conflict with its fix, then warnings. */
export function checkLines(result: ConflictList & { warnings?: CheckWarning[] }): string[] {
  const lines: string[] = [];
  const kinds = new Set<ConflictKind>();
  for (const c of result.conflicts) {
    lines.push(`conflict (${c.scope}): ${c.message}`);
    kinds.add(c.kind);
  }
  if (result.omitted) lines.push(`... and ${result.omitted} more conflicts not listed`);
  for (const k of kinds) lines.push(`  to fix ${k}: ${FIX[k]}`);
  for (const w of result.warnings ?? []) lines.push(`warning (${w.scope}): ${w.message}`);
  return lines;
}

/** The distinct owners named in conflicts, for a one-line summary. */
export function conflictOwners(conflicts: readonly Conflict[]): string[] {
  return [...new Set(conflicts.flatMap((c) => c.owners.map((o) => o.uuid)))];
}
