// ap-persist status: masks, mdevs and the last hook report, in that order.

import type { Context } from '../cli/context.js';
import { HOLD_ALL, readHeldReasons } from '../runtime/held-marks.js';
import { maskSides, maskTable } from './mask.js';
import { formatApqn, hexRanges } from '../model/apqn.js';
import { compareNames, mdevApqns, mdevLabel } from '../model/mdev.js';
import { matrixComplete, mdevPath, parseMatrix, readAttr } from '../sysfs/ap-host.js';
import { mdevRows, mdevTable, readLibvirtGuests, type MdevRow } from './mdev.js';
import { madeFor } from './libvirt-hook.js';
import { readHostViewOrStoreError, type readHostView } from './view.js';
import { matrixJson, matrixLines, matrixModel } from './matrix.js';
import type { HostView } from '../host/state.js';
import { apCheckWarning, persistentConfig } from '../checks/check-host.js';
import type { CalloutsView } from '../host/callouts.js';
import { driftJson, driftLines, driftWaysOut, type Drift } from '../checks/drift.js';
import { stepPath } from '../generate/reconcile.js';
import { hasBootFiles, planGenerate } from './generate.js';
import { describeHookReport, readHookReportFile } from '../runtime/hook-report.js';

/** Lines are never wider than this when stdout is no terminal. */
export const STATUS_WIDTH = 160;

/**
 * The live state first (AP bus, active masks and mdevs), then what the
 * store and the boot files say, then the last hook. A store that cannot be
 * read does not hide the rest: its error is named at the end, exit 2.
 */
export function status(ctx: Context, opts: { matrix?: boolean }): number {
  const { view, storeError } = readHostViewOrStoreError(ctx);
  const storeKnown = !storeError;
  const sides = maskSides(view);
  const persistent = storeKnown ? sides.persistent : null;
  const active = sides.active;
  const libvirt = readLibvirtGuests(ctx.paths);
  const mdevs = mdevRows(view, libvirt);
  const guests = guestsState(ctx, mdevs, libvirt.unreadable);
  const read = readHookReportFile(ctx.paths.lastHook);
  const held = readHeldReasons(ctx.paths);
  const hook = 'report' in read ? read.report : undefined;
  const shortfalls = guestShortfalls(view, ctx.sysfs);
  const boot = storeKnown ? bootFilesState(ctx, view) : { installed: hasBootFiles(ctx.paths), drift: [], stale: [] };
  const code = storeError?.exitCode ?? 0;
  const { live } = view;
  if (ctx.json) {
    ctx.printJson({
      store: view.store.exists ? view.store.path : null,
      store_error: storeError ? { where: storeError.where, message: storeError.message, ...(storeError.hint ? { hint: storeError.hint } : {}) } : null,
      ap_bus: { present: live.apBus, cards: live.cards.map((c) => ({ adapter: c.adapter, hwtype: c.hwtype ?? null })), queues: live.present.size },
      masks: { persistent, active },
      vfio_ap_loaded: live.vfioAp,
      mdevs,
      matrix: matrixJson(matrixModel(view)),
      guests_holding: guests.holding,
      guest_mdevs_waiting: guests.waiting,
      guest_mdevs_idle: guests.idle,
      libvirt_unreadable: guests.unreadable,
      guest_shortfalls: shortfalls.map((s) => ({ uuid: s.uuid, assigned: s.assigned, guest_gets: s.guestGets, missing: s.missing })),
      boot_files: { installed: boot.installed, compared: storeKnown, drift: boot.drift.map(driftJson), stale: boot.stale },
      callouts: { ap_persist: view.callouts.ours, ap_check: view.callouts.apCheck, ap_check_set_aside: view.callouts.setAside },
      last_hook: hook ?? null,
      held: held.map((h) => ({ uuid: h.name === HOLD_ALL ? null : h.name, all: h.name === HOLD_ALL, reason: h.reason })),
      ...('damaged' in read ? { last_hook_damaged: read.damaged } : {}),
    });
    return code;
  }
  const storeLine = storeError
    ? `${view.store.path}: cannot be read (the error is at the end); the live state is shown, the store's side is not`
    : view.store.exists
      ? view.store.path
      : `${view.store.path} (not created yet)`;
  ctx.out(`store: ${storeLine}`);
  const cards = live.cards.length ? ` (${hexRanges(live.cards.map((c) => c.adapter), 'adapter')})` : '';
  ctx.out(`AP bus: ${live.apBus ? `${live.cards.length} card(s)${cards}, ${live.present.size} queue(s)` : 'not found'}; vfio_ap ${live.vfioAp ? 'loaded' : 'not loaded'}`);
  ctx.out();
  // Masks keep chzdev's syntax (decimal, as lszdev and 'mask set' take them); everything else is in hex.
  ctx.out('masks, as chzdev shows them (decimal IDs the host owns):');
  for (const line of maskTable(persistent, active, { persistentNone: storeKnown ? '(no store)' : '(store error)' })) ctx.out(line);
  ctx.out();
  ctx.out('mdevs, by name then UUID (IDs in hex, as lszcrypt and the kernel show them):');
  for (const line of mdevTable(mdevs, { storeKnown })) ctx.out(line);
  ctx.out();
  const guestLines = guestsLines(guests);
  for (const line of guestLines) ctx.out(line);
  if (guestLines.length) ctx.out();
  for (const s of shortfalls) {
    ctx.out(`mdev ${s.label}: its guest gets ${s.guestGets.length} of ${s.assigned.length} assigned APQN(s); missing ${s.missing.join(' ')} (guest_matrix: an adapter with a queue not bound to vfio_ap, or not present, is left out)`);
  }
  if (shortfalls.length) ctx.out();
  if (storeKnown) for (const line of bootFilesLines(boot)) ctx.out(line);
  else ctx.out(`boot files: ${boot.installed ? 'installed' : 'not installed'}; not compared with the store, which cannot be read`);
  ctx.out(calloutLine(view.callouts));
  ctx.out();
  if (opts.matrix) {
    const width = Math.max(40, ctx.io.columns ?? STATUS_WIDTH);
    for (const line of matrixLines(matrixModel(view), width)) ctx.out(line);
    ctx.out();
  }
  ctx.out(hook ? describeHookReport(hook).join('\n') : 'damaged' in read ? `last hook: the report ${ctx.paths.lastHook} is damaged: ${read.damaged}; the next hook run writes a new one` : 'last hook: none recorded since boot');
  if (held.length) {
    const name = (uuid: string): string | undefined => mdevs.find((m) => m.uuid === uuid)?.name ?? undefined;
    ctx.out(`held back by the hook (${ctx.paths.heldDir}: systemd skips these units' start; fix the cause, then run 'ap-persist hook'):`);
    for (const h of held) ctx.out(`  ${h.name === HOLD_ALL ? 'every mdev unit' : mdevLabel({ uuid: h.name, name: name(h.name) })}: ${h.reason.replace(/\n/g, '\n    ')}`);
  }
  if (storeError) {
    ctx.warn(`ap-persist: the store cannot be read: ${storeError.described}`);
    ctx.warn("  status showed the live state and everything it could without it; fix the store, then run 'ap-persist check'");
  }
  return code;
}

interface GuestsState {
  /** Running libvirt guests whose status file names an active mdev, by guest. */
  holding: { guest: string; uuid: string; name: string | null }[];
  /** `guest` mdevs not active: made when a guest that names them starts. */
  waiting: { uuid: string; name: string | null; guests: string[] }[];
  /** `guest` mdevs active that no running guest holds (a start under way, or a stop whose release did not run): their queues stay taken. */
  idle: { uuid: string; name: string | null; made_for: string | null }[];
  /** libvirt's directories that could not be read: no guest is known then. */
  unreadable: string[];
}

function guestsState(ctx: Context, rows: readonly MdevRow[], unreadable: string[]): GuestsState {
  const holding = rows
    .flatMap((m) => m.held_by.map((guest) => ({ guest, uuid: m.uuid, name: m.name })))
    .sort((a, b) => compareNames(a.guest, b.guest)); // stable: each guest's mdevs stay in the table's order
  const ofGuestMode = rows.filter((m) => m.start === 'guest');
  return {
    holding,
    waiting: ofGuestMode.filter((m) => !m.active).map((m) => ({ uuid: m.uuid, name: m.name, guests: m.guests })),
    idle: ofGuestMode.filter((m) => m.active && m.held_by.length === 0).map((m) => ({ uuid: m.uuid, name: m.name, made_for: madeFor(ctx, m.uuid) ?? null })),
    unreadable,
  };
}

/** Nothing on a host without guest mdevs and without a running guest that holds one. */
function guestsLines(g: GuestsState): string[] {
  if (!g.holding.length && !g.waiting.length && !g.idle.length && !g.unreadable.length) return [];
  const label = (m: { uuid: string; name: string | null }): string => mdevLabel({ uuid: m.uuid, name: m.name ?? undefined });
  return [
    "guests, as libvirt's domain XML names their mdevs:",
    ...(g.unreadable.length ? [`  libvirt's files could not be read (${g.unreadable.join(', ')}): no guest is shown; run as root to see them`] : []),
    ...g.holding.map((h) => `  ${h.guest} (running) holds mdev ${label(h)}`),
    ...g.idle.flatMap((m) => [
      `  mdev ${label(m)}, start = guest, is up but no running guest holds it${m.made_for ? ` (made for ${m.made_for})` : ''}`,
      `    its queues stay taken until 'ap-persist mdev stop ${m.uuid}'`,
    ]),
    ...g.waiting.map((m) =>
      m.guests.length
        ? `  mdev ${label(m)}, start = guest, waits for ${m.guests.join(' or ')} to start`
        : `  mdev ${label(m)}, start = guest, waits for a guest, but no libvirt guest names it (a <hostdev type='mdev' model='vfio-ap'> with its UUID)`,
    ),
  ];
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
    for (const way of new Set(b.drift.map(driftWaysOut))) lines.push(`  ${way}`);
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
    // Cut by sysfs (512 APQNs or more): what the guest gets cannot be told from it.
    if (text === undefined || !matrixComplete(text)) continue;
    const guest = parseMatrix(text);
    // The guest gets an assigned APQN when its adapter and its domain are both in guest_matrix:
    // nothing is missing when the assigned IDs are, without listing an APQN.
    const covered = m.adapters.minus(guest.adapters).isEmpty() && m.domains.minus(guest.domains).isEmpty();
    if (covered || m.adapters.isEmpty() || m.domains.isEmpty()) continue;
    const assigned = mdevApqns(m).toArray().map(formatApqn);
    const gets = new Set(mdevApqns(guest).toArray().map(formatApqn));
    const missing = assigned.filter((a) => !gets.has(a));
    if (missing.length === 0) continue;
    const name = names.get(m.uuid);
    out.push({ uuid: m.uuid, label: name ? `${m.uuid} (${name})` : m.uuid, assigned, guestGets: [...gets], missing });
  }
  return out;
}
