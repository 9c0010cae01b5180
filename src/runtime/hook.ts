// The udev hook, run on the AP bus's BINDINGS=complete (and the coldplug add
// of /bus/ap): masks -> vfio_ap -> checks -> auto mdevs, then a report.
// It is bounded in time, never waits on systemd (--no-block), and never gives
// the host an APQN that an active mdev holds, whatever the kernel allows.

import { ClaimIndex, type Claim, type Conflict } from '../checks/conflicts.js';
import { describeFailure } from '../errors.js';
import { writeFileAtomic } from '../fsio/atomic.js';
import { tryWriteMark } from '../fsio/mark.js';
import { acquireLock } from '../host/lock.js';
import type { HostPaths } from '../host/paths.js';
import { readActiveState, readLinkedMdevs, readPeerFiles, type ActiveState } from '../host/state.js';
import { changesBoot, driftLines, effectiveConfig } from '../checks/drift.js';
import { existsSync, readdirSync } from 'node:fs';
import { formatApqn, formatApqnDecimal, type Apqn } from '../model/apqn.js';
import { IdSet } from '../model/idset.js';
import { isDecimalDigits } from '../model/chars.js';
import { mdevLabel, type HostMasks } from '../model/mdev.js';
import { loadStore, type Store } from '../store/store.js';
import { MDEVS_TARGET, mdevUnit } from '../generate/unit-names.js';
import { HOLD_ALL, hold, holdsAll, readHeldMarks, releaseHoldAll, syncHeldMarks } from './held-marks.js';
import { listQueueApqns, readAttr, vfioApLoaded } from '../sysfs/ap-host.js';
import { isSysfsError, type Sysfs, type SysfsError } from '../sysfs/sysfs.js';
import { boundBy, type CommandRunner } from './commands.js';
import { unitStates } from './units.js';
import { isoTime, type HookMdevOutcome, type HookReport } from './hook-report.js';
import { applyMaskWrites, MASK_ERRNO_MEANING, maskCheckRule, planMaskWrites, protectActiveMdevs, type MaskPair } from './masks.js';

export interface HookDeps {
  paths: HostPaths;
  sysfs: Sysfs;
  runner: CommandRunner;
  env: Record<string, string | undefined>;
  /** Epoch ms by which the hook must be done (wait's own timeout); each step's bound shrinks to fit. */
  deadline?: number;
  /**
   * systemd runs this hook with ap-persist-mdevs.target queued behind it
   * (TARGET_EVENTS): unless the target was started before, systemd starts it,
   * and every unit it wants that the hook does not hold back, once the hook
   * has exited. The hook then asks systemd for nothing it would do anyway.
   */
  targetQueued?: boolean;
}

/**
 * The AP bus event a hook unit was queued for, from its instance name
 * (42-ap-persist.rules): `change-<COMPLETECOUNT>`, `change` (5.11-5.13 send
 * no count) or `add`, as the udev properties the hook would have had if udev
 * had run it.
 */
export function eventProperties(instance: string): Record<string, string> | undefined {
  if (instance === 'add') return { ACTION: 'add', DEVPATH: '/bus/ap' };
  const change = { ACTION: 'change', DEVPATH: '/devices/ap', BINDINGS: 'complete' };
  if (instance === 'change') return change;
  // change-<COMPLETECOUNT>
  return instance.startsWith('change-') && isDecimalDigits(instance, 7) ? { ...change, COMPLETECOUNT: instance.slice(7) } : undefined;
}

/** The events the hook acts on; anything else (a plain change) is ignored. */
export function isHookEvent(env: Record<string, string | undefined>): boolean {
  const action = env['ACTION'];
  if (action === undefined) return true; // run by hand or by `wait`
  if (action === 'change') return env['BINDINGS'] === 'complete';
  if (action === 'add') return env['DEVPATH'] === '/bus/ap';
  return false;
}

/**
 * Queues with a driver_override set: on 6.19+ every mask write is then
 * refused (EINVAL, ap_bus.c apmask_store), so the hook says which to clear.
 */
function overriddenQueues(sysfs: Sysfs): string[] {
  const out: string[] = [];
  const queues = listQueueApqns(sysfs);
  // Only 6.19 has the attribute: one look, not one per queue, on older kernels.
  if (!queues[0] || !sysfs.exists(`bus/ap/devices/${formatApqn(queues[0])}/driver_override`)) return out;
  for (const q of queues) {
    const name = formatApqn(q);
    const override = readAttr(sysfs, `bus/ap/devices/${name}/driver_override`)?.trim();
    if (override && override !== '(null)') out.push(`${name} (${override})`);
  }
  return out;
}

function emptyReport(env: Record<string, string | undefined>): HookReport {
  return {
    time: isoTime(new Date()),
    event: { action: env['ACTION'], devpath: env['DEVPATH'], bindings: env['BINDINGS'], completecount: env['COMPLETECOUNT'] },
    masks: { applied: false, writes: [], kept_for_active_mdevs: [] },
    vfio_ap: 'not-checked',
    mdevs: [],
    commands: [],
    errors: [],
    timings_ms: {},
    exit_code: 0,
  };
}

/**
 * Converges the active masks on the store's without giving the host an
 * active mdev's APQN, by the rule of the kernel at hand (6.19's whole-ID rule
 * when the bus shows it, or after an EBUSY from a backport). Records in the
 * report the writes the kernel took, what was kept out, and any refusal.
 */
function applyStoreMasks(sysfs: Sysfs, store: Pick<Store, 'masks' | 'mdevs'>, live: ActiveState, report: HookReport, beforeChange: () => void): void {
  if (!live.masks) {
    report.errors.push('no AP bus masks in sysfs (bus/ap/apmask): masks not applied');
    return;
  }
  const wanted: MaskPair = { apmask: store.masks.apmask ?? live.masks.apmask, aqmask: store.masks.aqmask ?? live.masks.aqmask };
  // The store's names, so the report says guest2, not only a UUID.
  const names = new Map(store.mdevs.map((m) => [m.uuid as string, m.name]));
  const named = (mdevs: ActiveState['mdevs']): Claim[] => mdevs.map((m) => ({ ...m, name: names.get(m.uuid) }));
  const rule = maskCheckRule(sysfs);
  // Masks that give the host nothing new need no look at the active matrices (protectActiveMdevs says the same).
  const givesMore = !wanted.apmask.minus(live.masks.apmask).isEmpty() || !wanted.aqmask.minus(live.masks.aqmask).isEmpty();
  let { target, kept } = protectActiveMdevs(wanted, live.masks, givesMore ? named(live.mdevs) : [], rule);
  const planned = planMaskWrites(live.masks, target);
  const refused = (err: SysfsError): void => void report.errors.push(`mask write refused: ${err.message}: ${MASK_ERRNO_MEANING[err.code] ?? 'see the kernel log'}`);
  if (planned.length) beforeChange();
  const overridden = planned.length ? overriddenQueues(sysfs) : [];
  if (overridden.length) {
    report.errors.push(
      `mask writes skipped: queue(s) ${overridden.join(', ')} have driver_override set, and the kernel refuses every mask write then (EINVAL); clear it with: echo > /sys/bus/ap/devices/<queue>/driver_override`,
    );
  } else {
    try {
      applyMaskWrites(sysfs, planned, report.masks.writes);
      report.masks.applied = true;
    } catch (err) {
      if (!isSysfsError(err)) throw err;
      if (err.code === 'EBUSY' && rule === 'apqn') {
        // A kernel with 6.19's whole-ID check but without its other signs (a backport): plan again with it.
        const now = readActiveState(sysfs);
        const current = now.masks ?? live.masks;
        ({ target, kept } = protectActiveMdevs(wanted, current, named(now.mdevs), 'id'));
        try {
          applyMaskWrites(sysfs, planMaskWrites(current, target), report.masks.writes);
          report.masks.applied = true;
        } catch (again) {
          if (!isSysfsError(again)) throw again;
          refused(again);
        }
      } else {
        refused(err);
      }
    }
  }
  report.masks.kept_for_active_mdevs = kept.map((k) => `${k.apqn} of ${k.mdev}: ${k.kept}`);
}

/** Monotonic milliseconds: process.hrtime, since node:perf_hooks costs a millisecond to load. */
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Thrown where a hook that looked without the lock would change something: it then takes the lock and looks again. */
const NEEDS_LOCK = Symbol('the hook needs the lock');

/**
 * Runs the hook. An event that changes nothing (every auto mdev up and its
 * unit marked, the masks right, vfio_ap loaded, no mark to change) needs no
 * lock: the hook first looks without it. At the first thing it would change
 * (a mask, the module, a mark, a question to or a job for systemd) it takes
 * the lock and looks again from the start: what it saw may have been half of
 * a change another process made under the lock. Nothing is written before.
 */
export async function runHook(deps: HookDeps): Promise<HookReport> {
  // The target follows only the boot's first hook: not once a hook of this boot marked it queued,
  // nor when one left every unit held (it failed or was killed: this is a run by hand, or a second
  // event's, which nothing follows). A boot hook the target follows writes its hold on every unit
  // first: it takes the lock at once.
  const follows = deps.targetQueued === true && !existsSync(deps.paths.targetStarted) && !holdsAll(deps.paths);
  if (!follows) {
    try {
      return await runOnce(deps, false, false);
    } catch (err) {
      if (err !== NEEDS_LOCK) throw err;
    }
  }
  return runOnce(deps, true, follows);
}

async function runOnce(deps: HookDeps, locking: boolean, follows: boolean): Promise<HookReport> {
  const t0 = nowMs();
  const report = emptyReport(deps.env);
  const lap = (name: string, since: number): number => {
    const now = nowMs();
    report.timings_ms[name] = Math.round((now - since) * 10) / 10;
    return now;
  };
  // Each bounded step, never past the caller's deadline.
  const within = (capMs: number): number => boundBy(capMs, deps.deadline);
  let lock: ReturnType<typeof acquireLock> | undefined;
  /** Before each change: a look without the lock ends here (runHook looks again, with it). */
  const change = (): void => {
    if (!locking) throw NEEDS_LOCK;
  };
  // The target follows this hook: until every unit it wants is judged, all are held back, so that a
  // hook that fails or is killed before then leaves no mdev to start unchecked.
  if (follows) {
    const failed = hold(deps.paths, HOLD_ALL, "the boot's hook has not finished its checks (journalctl -u 'ap-persist-hook@*')");
    if (failed) report.errors.push(`${failed}: the mdev units may start before the hook's checks`);
  }
  try {
    if (locking) lock = acquireLock(deps.paths.lock, { timeoutMs: within(10_000) });
    let t = lap('lock', t0);
    let live = readActiveState(deps.sysfs);
    t = lap('sysfs', t);
    // At boot the files the peers act on rule: chzdev's or mdevctl's change since generate is applied, and reported.
    // Not an active mdev's definition where generate wrote it: the hook neither starts, restarts nor stops an
    // active mdev, so what mdevctl may have changed there cannot change what it does (status reports it).
    const { boot } = readPeerFiles(deps.paths, undefined, live.uuids);
    t = lap('peer_files', t);
    const store = loadStore(deps.paths.store, boot.storeSnapshot).store; // broken: throws, nothing touched
    t = lap('store', t);
    const config = effectiveConfig(store, boot);
    const drift = config.drift.filter(changesBoot);
    if (drift.length) report.drift = drift.map((d) => driftLines(d).join('; '));
    if (boot.recordError) report.errors.push(`${boot.recordError}: drift cannot be told from the store's own files`);
    // Said only now: a hook that stopped before this (the lock, the store) did not look.
    if (live.vfioAp) report.vfio_ap = 'already-loaded';

    // 1. Masks: the boot's (41-ap.rules where chzdev changed them), less what an active mdev holds.
    applyStoreMasks(deps.sysfs, { masks: config.masks, mdevs: store.mdevs }, live, report, change);
    t = lap('masks', t);

    // 2. vfio_ap.
    if (!live.vfioAp) {
      change();
      const r = await deps.runner.run('modprobe', ['vfio_ap'], { timeoutMs: within(15_000) });
      report.commands.push({ command: 'modprobe vfio_ap', ran: r.ran, exit_code: r.exitCode, ...(r.exitCode ? { error: r.stderr.trim() } : {}) });
      if (!r.ran) report.vfio_ap = 'would-load';
      else if (r.exitCode === 0 && vfioApLoaded(deps.sysfs)) report.vfio_ap = 'loaded';
      else {
        report.vfio_ap = 'failed';
        report.errors.push(`modprobe vfio_ap failed${r.timedOut ? ' (timed out)' : ''}: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
      }
    }
    t = lap('vfio_ap', t);

    // 3. Checks, then 4. start what passes, in store order: the first claimant wins.
    // After any write or module load, even a failed one, check against what sysfs shows now.
    if (report.masks.writes.length || report.commands.length) live = readActiveState(deps.sysfs);
    const activeUuids = live.uuids;
    const names = new Map<string, string | undefined>([...store.mdevs, ...config.mdevs].map((m) => [m.uuid as string, m.name]));
    // The active mdevs and, as they pass, the auto mdevs this run starts: each is checked against all before it.
    // Made at the first mdev to check: with every auto mdev up, no matrix is read.
    let index: ClaimIndex | undefined;
    const holders = (): ClaimIndex => (index ??= new ClaimIndex(live.mdevs));
    const claimed = new Set<string>();
    const toStart: string[] = [];
    const alreadyActive: string[] = [];
    for (const mdev of config.mdevs.filter((m) => m.start === 'auto')) {
      const outcome: HookMdevOutcome = { uuid: mdev.uuid, ...(mdev.name ? { name: mdev.name } : {}), outcome: 'started' };
      report.mdevs.push(outcome);
      if (activeUuids.has(mdev.uuid)) {
        outcome.outcome = 'already-active';
        alreadyActive.push(mdev.uuid);
        continue;
      }
      const found = holders().check(mdev, live.masks, 'active');
      if (found.conflicts.length) {
        outcome.outcome = 'skipped';
        outcome.apqns = found.conflicts.map((c) => formatApqn(c.apqn));
        outcome.reason = skipReason(found.conflicts, { active: activeUuids, names, claimed, masks: config.masks, masksApplied: report.masks.applied });
        continue;
      }
      holders().add(mdev);
      claimed.add(mdev.uuid);
      toStart.push(mdev.uuid);
    }
    t = lap('check', t);
    if (report.vfio_ap === 'failed') {
      const why = report.errors.find((e) => e.startsWith('modprobe vfio_ap')) ?? 'modprobe vfio_ap failed';
      for (const m of report.mdevs) if (m.outcome === 'started') Object.assign(m, { outcome: 'failed', reason: `vfio_ap is not loaded (${why}), so no mdev can be made` });
    }
    // Every unit the target wants (generate's links) that this hook neither starts nor adopts is held
    // back with its reason: the refused, and those mdevctl made manual or undefined since generate.
    const linked = readLinkedMdevs(deps.paths);
    const outcomes = new Map(report.mdevs.map((m) => [m.uuid as string, m]));
    const held = new Map<string, string>();
    for (const uuid of linked) {
      const m = outcomes.get(uuid);
      if (m?.outcome === 'started' || m?.outcome === 'already-active') continue;
      held.set(uuid, m ? `refused by the hook: ${m.reason ?? m.outcome}` : "not an auto mdev of the boot's configuration (changed since 'ap-persist generate')");
    }
    const marks = readHeldMarks(deps.paths);
    // The same marks, none holding all: a look without the lock leaves them as the hook that made them worded them.
    const sameMarks = !marks.has(HOLD_ALL) && marks.size === held.size && [...held.keys()].every((u) => marks.has(u));
    if (!sameMarks) change();
    const mark = (path: string, lacking: string): void => {
      const failed = tryWriteMark(path);
      if (failed) report.errors.push(`${failed}: ${lacking}`);
    };
    const markUnitsStarted = (): void => mark(deps.paths.unitsStarted, 'the next hook may take an active unit for never started');
    const markTargetStarted = (): void => mark(deps.paths.targetStarted, 'the next hook asks systemd about the target again');
    const marked = existsSync(deps.paths.unitsStarted);
    if (follows) {
      // (A hook the target follows holds the lock from its start: runHook.)
      // systemd starts the target and its units after this hook: later hooks know they ran. Marked
      // before `all` goes, so that a second boot hook that fails meanwhile leaves this one's verdict be.
      if (!marked) markUnitsStarted();
      markTargetStarted();
    }
    const markProblems = (held.size || marks.size) && locking ? syncHeldMarks(deps.paths, marks, held) : [];
    report.errors.push(...markProblems);
    // A mark missing lets the target start a refused unit; `all` kept holds back every one: say so.
    if (markProblems.length && follows) {
      for (const m of report.mdevs) if (m.outcome === 'started') Object.assign(m, { outcome: 'failed', reason: `held back: the hook could not write the marks that let systemd start only the mdevs that passed (${markProblems[0]}); run 'ap-persist hook' once /run is writable` });
    }
    if ((toStart.length || alreadyActive.length) && report.vfio_ap !== 'failed' && !(follows && markProblems.length)) {
      // What the target brings up after a hook it follows is not asked for again.
      const byTarget = follows ? new Set(linked.map(mdevUnit)) : new Set<string>();
      const units = toStart.map(mdevUnit);
      const adopted = alreadyActive.map(mdevUnit);
      // Before the hook first starts units this boot (its mark in /run is not there yet) no unit
      // of ours has run: no question to systemd, one start for all. Later, systemd says which are up,
      // unless nothing is to start and the unit of every active mdev and the target are marked
      // up in /run: then there is nothing to ask.
      const settled = marked && units.length === 0 && unitsMarkedUp(deps.paths, alreadyActive) && existsSync(deps.paths.targetStarted);
      if (!settled) change();
      const states = marked && !settled ? await unitStates(deps.runner, [...units, ...adopted, MDEVS_TARGET]) : new Map<string, { active: string }>();
      const state = (u: string): string => (settled ? 'active' : (states.get(u)?.active ?? 'inactive'));
      // A unit still active whose mdev is gone (removed by hand) does nothing on start: restart it.
      // One still activating (an earlier event's) is left to finish: start merges with its job.
      const restart = units.filter((u) => state(u) === 'active');
      const restarted = new Set(restart);
      // An mdev mdevctl's own autostart made: its unit starts too (ExecStart finds it up), so
      // that systemd stops it after libvirt at shutdown, as every other. The target in the same
      // call: what it wants beside them is held back by its mark.
      const start = [
        // Not with a mark missing: the target would start the unit it should hold back.
        ...(!follows && markProblems.length === 0 && state(MDEVS_TARGET) !== 'active' ? [MDEVS_TARGET] : []),
        ...units.filter((u) => !restarted.has(u) && !byTarget.has(u)),
        ...adopted.filter((u) => (state(u) === 'inactive' || state(u) === 'failed') && !byTarget.has(u)),
      ];
      const calls: string[][] = [...(restart.length ? [['restart', ...restart]] : []), ...(start.length ? [['start', ...start]] : [])];
      let failure: string | undefined;
      let ran = true;
      // Marked before the first start, so that no later hook takes a unit of ours for never started.
      if (calls.length && !marked && !follows) markUnitsStarted();
      // systemd said the target is up (it was asked: its mark was not there): later hooks need not ask for it.
      if (states.get(MDEVS_TARGET)?.active === 'active') markTargetStarted();
      for (const call of calls) {
        const r = await deps.runner.run('systemctl', ['--no-block', ...call], { timeoutMs: within(15_000) });
        report.commands.push({ command: `systemctl --no-block ${call.join(' ')}`, ran: r.ran, exit_code: r.exitCode });
        ran &&= r.ran;
        if (r.ran && r.exitCode !== 0) failure ??= r.stderr.trim() || `exit ${r.exitCode}`;
        // The target's mark only once systemd took its start: without it, later hooks ask systemd again.
        else if (r.ran && call[0] === 'start' && call.includes(MDEVS_TARGET)) markTargetStarted();
      }
      const askedFor = new Set(calls.flat());
      for (const m of report.mdevs) {
        // What the target starts after this hook is started; what was asked for, as systemctl answered.
        if (m.outcome !== 'started' || !askedFor.has(mdevUnit(m.uuid))) continue;
        if (!ran) m.outcome = 'would-start';
        else if (failure) Object.assign(m, { outcome: 'failed', reason: `systemctl: ${failure}` });
      }
      if (failure) report.errors.push(`systemctl start failed: ${failure}`);
    }
    if (follows) report.started_by = MDEVS_TARGET;
    lap('start', t);
  } catch (err) {
    // A look without the lock that failed (an mdev read while another process changed it under
    // the lock, say) is no verdict: it is made again, with the lock.
    if (err === NEEDS_LOCK || !locking) throw NEEDS_LOCK;
    // A broken store is bad input (2); anything else a runtime failure (1).
    const failure = describeFailure(err);
    report.errors.push(failure.message);
    report.exit_code = failure.exitCode;
    // The target still comes after a failed hook: `all` keeps every unit back, now with the reason,
    // unless another boot hook (add and change-1 both came) has judged them meanwhile.
    if (follows) {
      if (!existsSync(deps.paths.targetStarted)) hold(deps.paths, HOLD_ALL, `the boot's hook failed: ${failure.message}; fix it, then run 'ap-persist hook' (journalctl -u 'ap-persist-hook@*')`);
      // Looked at again after the hold: without the lock, the other hook may have judged (marked the
      // target started, then removed `all`) between the first look and the write.
      if (existsSync(deps.paths.targetStarted)) releaseHoldAll(deps.paths, report);
    }
  } finally {
    lock?.release();
  }
  // A refused auto mdev fails the hook's unit too, so `systemctl --failed` shows it.
  const refused = report.mdevs.some((m) => m.outcome === 'skipped' || m.outcome === 'failed');
  if (!report.exit_code && (report.errors.length || refused)) report.exit_code = 1;
  lap('total', t0);
  writeReport(deps.paths, report);
  return report;
}

interface SkipContext {
  /** The mdevs sysfs shows active. */
  active: ReadonlySet<string>;
  /** Names from the store, for mdevs sysfs knows only by UUID. */
  names: ReadonlyMap<string, string | undefined>;
  /** Auto mdevs this run starts, earlier in the store, by UUID. */
  claimed: ReadonlySet<string>;
  /** The boot's masks (the store's, or 41-ap.rules' where chzdev changed them); undefined: not set. */
  masks: HostMasks;
  /** Whether the hook got the kernel to take them. */
  masksApplied: boolean;
}

const SHOWN_APQNS = 8;

/** `APQN 05.0004 (5.4) is` / `APQNs 05.0004 (5.4), 06.0004 (6.4) are`, at most a few named. */
function apqnsAre(apqns: readonly Apqn[]): string {
  const shown = apqns.slice(0, SHOWN_APQNS).map((a) => `${formatApqn(a)} (${formatApqnDecimal(a)})`);
  const more = apqns.length > SHOWN_APQNS ? ` and ${apqns.length - SHOWN_APQNS} more` : '';
  return apqns.length === 1 ? `APQN ${shown[0]} is` : `APQNs ${shown.join(', ')}${more} are`;
}

/**
 * Why an auto mdev was not started, cause by cause: an active mdev holds its
 * APQNs, another auto mdev this run starts first has them, or the active
 * masks give them to the host (and why those masks are what they are).
 */
export function skipReason(conflicts: readonly Conflict[], ctx: SkipContext): string {
  const groups = new Map<string, { apqns: Apqn[]; say: (apqns: string) => string }>();
  const add = (key: string, apqn: Apqn, say: (apqns: string) => string): void => {
    const g = groups.get(key) ?? { apqns: [], say };
    g.apqns.push(apqn);
    groups.set(key, g);
  };
  for (const c of conflicts) {
    const other = c.owners[0];
    if (c.kind === 'mdev-mdev') {
      const label = mdevLabel({ uuid: other.uuid, name: other.name ?? ctx.names.get(other.uuid) });
      if (ctx.active.has(other.uuid)) {
        add(`active:${other.uuid}`, c.apqn, (apqns) => `${apqns} in use by active mdev ${label}`);
      } else if (ctx.claimed.has(other.uuid)) {
        add(`first:${other.uuid}`, c.apqn, (apqns) => `${apqns} also assigned to auto mdev ${label}, which comes earlier in the store and is started first; only one of them can have it ('ap-persist check' lists every such APQN)`);
      } else {
        add(`other:${other.uuid}`, c.apqn, (apqns) => `${apqns} also held by mdev ${label}`);
      }
    } else {
      add('host', c.apqn, (apqns) => apqns);
    }
  }
  const reasons: string[] = [];
  for (const [key, g] of groups) {
    if (key !== 'host') {
      reasons.push(g.say(apqnsAre(g.apqns)));
      continue;
    }
    const adapters = IdSet.of(g.apqns.map((a) => a.adapter)).toRanges();
    const domains = IdSet.of(g.apqns.map((a) => a.domain)).toRanges();
    const unset = (['apmask', 'aqmask'] as const).filter((k) => !ctx.masks[k]);
    const why = !ctx.masksApplied
      ? "the hook could not apply the boot's masks (see the errors)"
      : unset.length
        ? `the boot sets no ${unset.join(' and no ')}, so the kernel's stays ('ap-persist suggest-masks' shows masks that free it)`
        : "the boot's masks say so ('ap-persist check' reports it; 'ap-persist suggest-masks' shows masks that free it)";
    reasons.push(`${apqnsAre(g.apqns)} the host's: the active apmask holds adapter(s) ${adapters} and aqmask domain(s) ${domains}; ${why}`);
  }
  return reasons.join('; ');
}

/** Whether systemd's mark (the unit's RuntimeDirectory) is there for the unit of each of `uuids`. */
function unitsMarkedUp(paths: HostPaths, uuids: readonly string[]): boolean {
  let up: Set<string>;
  try {
    up = new Set(readdirSync(paths.unitMarksDir));
  } catch {
    return uuids.length === 0;
  }
  return uuids.every((u) => up.has(u));
}


function writeReport(paths: HostPaths, report: HookReport): void {
  try {
    writeFileAtomic(paths.lastHook, `${JSON.stringify(report, null, 2)}\n`, { durable: false });
  } catch {
    // /run not writable: udev logs our stderr instead.
  }
}
