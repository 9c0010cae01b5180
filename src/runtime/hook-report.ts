// The hook's report (run/ap-persist/last-hook.json) and how status tells it.

import { readRegularFile } from '../fsio/read.js';
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
  vfio_ap: 'loaded' | 'already-loaded' | 'would-load' | 'failed' | 'not-checked';
  mdevs: HookMdevOutcome[];
  /** What chzdev or mdevctl changed in the boot files since generate: the hook applied theirs. */
  drift?: string[];
  commands: { command: string; ran: boolean; exit_code?: number; error?: string }[];
  /** Set when systemd starts the units after the hook (the boot's first event): the target that does. */
  started_by?: string;
  errors: string[];
  timings_ms: Record<string, number>;
  exit_code: number;
}

/**
 * `date` as toISOString writes it (UTC, milliseconds, `Z`), from the UTC
 * getters: toISOString's first call sets up V8's time zone cache (it reads
 * /etc/localtime), 0.2 ms of every hook for a time that needs no zone.
 */
export function isoTime(date: Date): string {
  const two = (n: number): string => String(n).padStart(2, '0');
  const day = `${String(date.getUTCFullYear()).padStart(4, '0')}-${two(date.getUTCMonth() + 1)}-${two(date.getUTCDate())}`;
  return `${day}T${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())}.${String(date.getUTCMilliseconds()).padStart(3, '0')}Z`;
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
  if (r.started_by) add(`  units: ${r.started_by} starts those to start once this hook has exited; it holds back the others (/run/ap-persist/held)`);
  for (const e of r.errors) add(`  error: ${e}`, 'err');
  return lines;
}

export function describeHookReport(r: HookReport): string[] {
  return hookReportLines(r).map((l) => l.text);
}

export type ReadReport = { report: HookReport } | { damaged: string } | { absent: true };

const isStrings = (v: unknown): boolean => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What is wrong with `doc` as a hook report, for the fields status and wait read; undefined when nothing. */
function reportProblem(doc: unknown): string | undefined {
  if (!isObject(doc)) return 'not a JSON object';
  const masks = doc['masks'];
  const checks: [boolean, string][] = [
    [typeof doc['time'] === 'string', 'time'],
    [isObject(doc['event']), 'event'],
    [isObject(masks) && typeof masks['applied'] === 'boolean' && Array.isArray(masks['writes']) && isStrings(masks['kept_for_active_mdevs']), 'masks'],
    [typeof doc['vfio_ap'] === 'string', 'vfio_ap'],
    [Array.isArray(doc['mdevs']) && doc['mdevs'].every((m) => isObject(m) && typeof m['uuid'] === 'string' && typeof m['outcome'] === 'string'), 'mdevs'],
    [doc['drift'] === undefined || isStrings(doc['drift']), 'drift'],
    [Array.isArray(doc['commands']), 'commands'],
    [isStrings(doc['errors']), 'errors'],
    [isObject(doc['timings_ms']), 'timings_ms'],
    [typeof doc['exit_code'] === 'number', 'exit_code'],
  ];
  const bad = checks.filter(([ok]) => !ok).map(([, field]) => field);
  return bad.length ? `${bad.join(', ')} missing or of the wrong type` : undefined;
}

/** The report at `path`, checked: a damaged one (a crash, another version, a hand edit) is said so, never half-read. */
export function readHookReportFile(path: string): ReadReport {
  let text: string | undefined;
  try {
    text = readRegularFile(path, 'the hook report');
  } catch (err) {
    return { damaged: (err as Error).message };
  }
  if (text === undefined) return { absent: true };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { damaged: `not JSON (${(err as Error).message})` };
  }
  const problem = reportProblem(doc);
  return problem ? { damaged: problem } : { report: doc as HookReport };
}

/** The report at `path`, or undefined when there is none or it is damaged (wait then runs the hook itself). */
export function readHookReport(path: string): HookReport | undefined {
  const r = readHookReportFile(path);
  return 'report' in r ? r.report : undefined;
}
