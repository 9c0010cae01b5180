// ap-persist status: masks, mdevs and the last hook report, in that order.

import type { Context } from '../cli/context.js';
import { maskSides, maskTable } from './mask.js';
import { formatAdapter, formatApqn, formatDomain } from '../model/apqn.js';
import { mdevApqns } from '../model/mdev.js';
import { mdevPath, parseMatrix, readAttr } from '../sysfs/ap-host.js';
import { mdevRows, mdevTable } from './mdev.js';
import { readHostView } from './view.js';
import type { HostView } from '../host/state.js';
import { apCheckWarning, persistentConfig } from '../checks/check-host.js';
import type { CalloutsView } from '../host/callouts.js';
import { DRIFT_WAYS_OUT, driftJson, driftLines, type Drift } from '../checks/drift.js';
import { stepPath } from '../generate/reconcile.js';
import { hasBootFiles, planGenerate } from './generate.js';
import { describeHookReport, readHookReportFile } from '../runtime/hook-report.js';

export function status(ctx: Context, opts: { matrix?: boolean }): number {
  const view = readHostView(ctx);
  const { persistent, active } = maskSides(view);
  const mdevs = mdevRows(view);
  const read = readHookReportFile(ctx.paths.lastHook);
  const hook = 'report' in read ? read.report : undefined;
  const shortfalls = guestShortfalls(view, ctx.sysfs);
  const boot = bootFilesState(ctx, view);
  if (ctx.json) {
    ctx.printJson({
      store: view.store.exists ? view.store.path : null,
      masks: { persistent, active },
      vfio_ap_loaded: view.live.vfioAp,
      mdevs,
      guest_shortfalls: shortfalls.map((s) => ({ uuid: s.uuid, assigned: s.assigned, guest_gets: s.guestGets, missing: s.missing })),
      boot_files: { installed: boot.installed, drift: boot.drift.map(driftJson), stale: boot.stale },
      callouts: { ap_persist: view.callouts.ours, ap_check: view.callouts.apCheck, ap_check_set_aside: view.callouts.setAside },
      last_hook: hook ?? null,
      ...('damaged' in read ? { last_hook_damaged: read.damaged } : {}),
    });
    return 0;
  }
  ctx.out(`store: ${view.store.exists ? view.store.path : `${view.store.path} (not created yet)`}`);
  ctx.out(`AP bus: ${view.live.apBus ? `${view.live.cards.length} card(s), ${view.live.queues.length} queue(s)` : 'not found'}; vfio_ap ${view.live.vfioAp ? 'loaded' : 'not loaded'}`);
  ctx.out();
  for (const line of maskTable(persistent, active)) ctx.out(line);
  ctx.out();
  for (const line of mdevTable(mdevs)) ctx.out(line);
  ctx.out();
  for (const s of shortfalls) {
    ctx.out(`mdev ${s.label}: its guest gets ${s.guestGets.length} of ${s.assigned.length} assigned APQN(s); missing ${s.missing.join(' ')} (guest_matrix: an adapter with a queue not bound to vfio_ap, or not present, is left out)`);
  }
  if (shortfalls.length) ctx.out();
  for (const line of bootFilesLines(boot)) ctx.out(line);
  ctx.out(calloutLine(view.callouts));
  ctx.out();
  if (opts.matrix) {
    for (const line of matrixGrid(view)) ctx.out(line);
    ctx.out();
  }
  ctx.out(hook ? describeHookReport(hook).join('\n') : 'damaged' in read ? `last hook: the report ${ctx.paths.lastHook} is damaged: ${read.damaged}; the next hook run writes a new one` : 'last hook: none recorded since boot');
  return 0;
}

interface BootFilesState {
  installed: boolean;
  drift: Drift[];
  /** Files the store would change (the store was edited with --no-generate, or generate refused). */
  stale: string[];
}

/** How the boot files stand against the store: changed by other tools (drift), or behind it (stale). */
function bootFilesState(ctx: Context, view: HostView): BootFilesState {
  const installed = hasBootFiles(ctx.paths);
  if (!installed) return { installed, drift: persistentConfig(view).drift, stale: [] };
  const plan = planGenerate(ctx, view);
  const stale = plan.steps.filter((s) => s.op !== 'keep' && !s.conflict).map((s) => ctx.paths.at(stepPath(s)));
  return { installed, drift: plan.drift, stale };
}

function bootFilesLines(b: BootFilesState): string[] {
  const lines: string[] = [];
  if (b.drift.length) {
    lines.push(`boot files: ${b.drift.length} change(s) by other tools since ap-persist wrote them; the boot uses them:`);
    for (const d of b.drift) {
      const [head, ...diff] = driftLines(d);
      lines.push(`  ${head}`, ...diff.map((l) => `    ${l}`));
    }
    lines.push(`  ${DRIFT_WAYS_OUT}`);
  }
  if (b.stale.length) lines.push(`boot files: stale, ${b.stale.length} file(s) behind the store (${b.stale.join(', ')}); run 'ap-persist generate'`);
  if (!b.installed) lines.push("boot files: not installed ('ap-persist install' writes them)");
  else if (!b.drift.length && !b.stale.length) lines.push('boot files: up to date with the store');
  return lines;
}

function calloutLine(c: CalloutsView): string {
  const warning = apCheckWarning(c);
  if (warning) return `mdevctl callout: warning: ${warning}`;
  if (!c.ours.length) return c.apCheck.length ? `mdevctl callout: s390-tools' ap-check only (${c.apCheck.join(', ')})` : 'mdevctl callout: none installed';
  const aside = c.setAside.length ? `; s390-tools' ap-check set aside (${c.setAside.join(', ')}), 'ap-persist uninstall' puts it back` : '';
  return `mdevctl callout: ap-persist (${c.ours.join(', ')})${aside}`;
}

interface Shortfall {
  uuid: string;
  label: string;
  assigned: string[];
  guestGets: string[];
  missing: string[];
}

/**
 * Started mdevs whose guest gets less than was assigned: vfio_ap's
 * guest_matrix (6.0+) leaves out adapters with a queue not bound to vfio_ap
 * and IDs not present. Kernels without guest_matrix show nothing here.
 */
function guestShortfalls(view: ReturnType<typeof readHostView>, sysfs: Context['sysfs']): Shortfall[] {
  const names = new Map(view.store.store.mdevs.map((m) => [m.uuid as string, m.name]));
  const out: Shortfall[] = [];
  for (const m of view.live.mdevs) {
    const text = readAttr(sysfs, mdevPath(m.uuid, 'guest_matrix'));
    if (text === undefined) continue;
    const guest = parseMatrix(text);
    const assigned = mdevApqns(m).toArray().map(formatApqn);
    const gets = new Set(mdevApqns(guest).toArray().map(formatApqn));
    const missing = assigned.filter((a) => !gets.has(a));
    if (missing.length === 0) continue;
    const name = names.get(m.uuid);
    out.push({ uuid: m.uuid, label: name ? `${m.uuid} (${name})` : m.uuid, assigned, guestGets: [...gets], missing });
  }
  return out;
}

/** Adapter x domain grid of the present APQNs: H host, letters for mdevs, . free. */
function matrixGrid(view: ReturnType<typeof readHostView>): string[] {
  const queues = view.live.queues;
  if (queues.length === 0) return ['matrix: no APQNs present'];
  const adapters = [...new Set(queues.map((q) => q.adapter))].sort((a, b) => a - b);
  const domains = [...new Set(queues.map((q) => q.domain))].sort((a, b) => a - b);
  const present = new Set(queues.map((q) => q.adapter * 256 + q.domain));
  const masks = view.live.masks;
  const mdevs = view.live.mdevs;
  const letter = (i: number): string => String.fromCharCode(97 + (i % 26));
  const lines = ['matrix (H host, a-z active mdevs as listed below, . free for vfio_ap, blank not present):'];
  lines.push(`      ${domains.map(formatDomain).join(' ')}`);
  for (const a of adapters) {
    const cells = domains.map((d) => {
      if (!present.has(a * 256 + d)) return '    ';
      const i = mdevs.findIndex((m) => m.adapters.has(a) && m.domains.has(d));
      if (i >= 0) return `   ${letter(i)}`;
      if (masks && masks.apmask.has(a) && masks.aqmask.has(d)) return '   H';
      return '   .';
    });
    lines.push(`  ${formatAdapter(a)}  ${cells.join(' ')}`);
  }
  const names = new Map(view.store.store.mdevs.map((m) => [m.uuid as string, m.name]));
  mdevs.forEach((m, i) => lines.push(`  ${letter(i)} = ${m.uuid}${names.get(m.uuid) ? ` (${names.get(m.uuid)})` : ''}`));
  return lines;
}
