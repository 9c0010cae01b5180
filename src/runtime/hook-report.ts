// The hook's report (run/ap-persist/last-hook.json) and how status tells it.

import { readFileSync } from 'node:fs';
import type { MaskWrite } from './masks.js';

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
  masks: { applied: boolean; writes: MaskWrite[]; kept_for_active_mdevs: string[] };
  vfio_ap: 'loaded' | 'already-loaded' | 'would-load' | 'failed';
  mdevs: HookMdevOutcome[];
  /** What chzdev or mdevctl changed in the boot files since generate: the hook applied theirs. */
  drift?: string[];
  commands: { command: string; ran: boolean; exit_code?: number; error?: string }[];
  errors: string[];
  timings_ms: Record<string, number>;
  exit_code: number;
}

/** How much a line needs the admin (the journal's priorities). */
export type Priority = 'err' | 'warning' | 'info';

export interface ReportLine {
  text: string;
  priority: Priority;
}

/** The report in words, each line with how much it needs the admin: refusals are errors. */
export function hookReportLines(r: HookReport): ReportLine[] {
  const lines: ReportLine[] = [];
  const add = (text: string, priority: Priority = 'info'): void => void lines.push({ text, priority });
  add(`last hook: ${r.time}, ${r.event.action ?? '?'} ${r.event.devpath ?? ''}${r.event.bindings ? ` BINDINGS=${r.event.bindings}` : ''}, exit ${r.exit_code}, ${Math.round(r.timings_ms['total'] ?? 0)} ms`);
  const writes = r.masks.writes.length;
  // `writes` are the ones the kernel took: after a refusal they say what is in effect.
  const masks = r.masks.applied ? (writes ? `${writes} write(s)` : 'already right') : `not applied${writes ? ` after ${writes} write(s) the kernel took` : ''} (see errors)`;
  add(`  masks: ${masks}`);
  if (r.masks.kept_for_active_mdevs.length) {
    add(`  kept out of the host pool because active mdevs hold them: ${r.masks.kept_for_active_mdevs.join(', ')}`, 'warning');
  }
  for (const d of r.drift ?? []) add(`  drift (applied as on disk; 'ap-persist import' keeps it, 'ap-persist generate --force' undoes it): ${d}`, 'warning');
  add(`  vfio_ap: ${r.vfio_ap}`);
  for (const m of r.mdevs) {
    const refused = m.outcome === 'skipped' || m.outcome === 'failed';
    add(`  mdev ${m.uuid}${m.name ? ` (${m.name})` : ''}: ${m.outcome}${m.reason ? ` - ${m.reason}` : ''}`, refused ? 'err' : 'info');
  }
  for (const e of r.errors) add(`  error: ${e}`, 'err');
  return lines;
}

export function describeHookReport(r: HookReport): string[] {
  return hookReportLines(r).map((l) => l.text);
}

/** The report at `path`, or undefined when there is none (or it is unreadable). */
export function readHookReport(path: string): HookReport | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as HookReport;
  } catch {
    return undefined;
  }
}
