// The hook's report (run/ap-persist/last-hook.json) and how status tells it.

import { readFileSync } from 'node:fs';

export interface HookMdevOutcome {
  uuid: string;
  name?: string;
  outcome: 'started' | 'already-active' | 'skipped' | 'failed' | 'would-start';
  reason?: string;
  apqns?: string[];
}

export interface HookReport {
  time: string;
  event: { action?: string; devpath?: string; bindings?: string; completecount?: string };
  masks: { applied: boolean; writes: { file: string; value: string }[]; kept_for_active_mdevs: string[] };
  vfio_ap: 'loaded' | 'already-loaded' | 'would-load' | 'failed';
  mdevs: HookMdevOutcome[];
  commands: { command: string; ran: boolean; exit_code?: number; error?: string }[];
  errors: string[];
  timings_ms: Record<string, number>;
  exit_code: number;
}

export function describeHookReport(r: HookReport): string[] {
  const lines = [`last hook: ${r.time}, ${r.event.action ?? '?'} ${r.event.devpath ?? ''}${r.event.bindings ? ` BINDINGS=${r.event.bindings}` : ''}, exit ${r.exit_code}, ${Math.round(r.timings_ms['total'] ?? 0)} ms`];
  const writes = r.masks.writes.length;
  // `writes` are the ones the kernel took: after a refusal they say what is in effect.
  const masks = r.masks.applied ? (writes ? `${writes} write(s)` : 'already right') : `not applied${writes ? ` after ${writes} write(s) the kernel took` : ''} (see errors)`;
  lines.push(`  masks: ${masks}`);
  if (r.masks.kept_for_active_mdevs.length) {
    lines.push(`  kept out of the host pool because active mdevs hold them: ${r.masks.kept_for_active_mdevs.join(', ')}`);
  }
  lines.push(`  vfio_ap: ${r.vfio_ap}`);
  for (const m of r.mdevs) {
    lines.push(`  mdev ${m.uuid}${m.name ? ` (${m.name})` : ''}: ${m.outcome}${m.reason ? ` - ${m.reason}` : ''}`);
  }
  for (const e of r.errors) lines.push(`  error: ${e}`);
  return lines;
}

/** The report at `path`, or undefined when there is none (or it is unreadable). */
export function readHookReport(path: string): HookReport | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as HookReport;
  } catch {
    return undefined;
  }
}
