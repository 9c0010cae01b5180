// mask show / mask set.

import type { Context } from '../cli/context.js';
import { activeGivenAway, autostartMdevs, persistentConfig, persistentMasks } from '../checks/check-host.js';
import { mergeConflicts, newlyHostOwned } from '../checks/conflicts.js';
import { RuntimeError } from '../errors.js';
import { checkWritable } from '../fsio/atomic.js';
import { withLock } from '../host/lock.js';
import type { IdSet } from '../model/idset.js';
import { applyMaskSpec } from '../model/maskspec.js';
import type { HostMasks } from '../model/mdev.js';
import { applyMaskWrites, MASK_ERRNO_MEANING, maskCheckRule, planMaskWrites, protectActiveMdevs, type KeptApqn, type MaskPair } from '../runtime/masks.js';
import { putMasks } from '../store/store.js';
import { conflictsOf } from '../generate/reconcile.js';
import { hasBootFiles, planGenerate, reportPersisted, saveAndGenerate, type Persisted } from './generate.js';
import { isSysfsError } from '../sysfs/sysfs.js';
import { listActiveMatrices, readActiveMasks } from '../sysfs/ap-host.js';
import { parseMaskArgs } from './masks-arg.js';
import { readHostView, reportRefusal } from './view.js';
import type { HostView } from '../host/state.js';

type Side = { apmask: string | null; aqmask: string | null } | null;

/** Both sides as chzdev prints masks; a side (or a persistent mask) that is not there is null. */
/** Persistent: what the next boot applies (41-ap.rules where chzdev changed it), as lszdev shows it. */
export function maskSides(view: HostView): { persistent: Side; active: Side } {
  const { apmask, aqmask } = persistentConfig(view).masks;
  const live = view.live.masks;
  return {
    persistent: { apmask: apmask?.toRanges() ?? null, aqmask: aqmask?.toRanges() ?? null },
    active: live ? { apmask: live.apmask.toRanges(), aqmask: live.aqmask.toRanges() } : null,
  };
}

export function maskShow(ctx: Context): number {
  const { persistent, active } = maskSides(readHostView(ctx));
  if (ctx.json) {
    ctx.printJson({ persistent, active });
    return 0;
  }
  for (const line of maskTable(persistent, active)) ctx.out(line);
  return 0;
}

/** lszdev-style: one row per mask, persistent and active side by side. */
export function maskTable(persistent: Side, active: Side, opts: { persistentNone?: string } = {}): string[] {
  const cell = (side: Side, key: 'apmask' | 'aqmask', none: string): string => {
    if (!side) return none;
    const v = side[key];
    return v === null ? '(not set)' : `"${v}"`;
  };
  const rows = (['apmask', 'aqmask'] as const).map((k) => [k, cell(persistent, k, opts.persistentNone ?? '(no store)'), cell(active, k, '(no AP bus)')]);
  const w1 = Math.max(10, ...rows.map((r) => r[1]!.length)) + 2;
  return [`${'mask'.padEnd(8)}${'persistent'.padEnd(w1)}active`, ...rows.map((r) => `${r[0]!.padEnd(8)}${r[1]!.padEnd(w1)}${r[2]}`)];
}

export interface MaskSetOptions {
  persistent?: boolean;
  active?: boolean;
  dryRun?: boolean;
  /** Persist masks that give the host a running mdev's queues anyway. */
  force?: boolean;
  /** commander's --no-generate sets this false: the store only, no boot files. */
  generate?: boolean;
}

export async function maskSet(ctx: Context, args: string[], opts: MaskSetOptions): Promise<number> {
  const specs = parseMaskArgs(args);
  const both = !opts.persistent && !opts.active;
  const doPersistent = both || Boolean(opts.persistent);
  let doActive = both || Boolean(opts.active);
  const edited = withLock(ctx.paths.lock, (): number | Persisted => {
    const view = readHostView(ctx);
    const live = view.live.masks;
    // The regeneration would stop on a peer's change: refuse before the kernel's masks change.
    if (doPersistent && !opts.dryRun && opts.generate !== false && hasBootFiles(ctx.paths)) {
      const plan = planGenerate(ctx, view);
      if (conflictsOf(plan.steps).length) return { status: 'drift', plan, storeRestored: true };
    }
    if (doActive && !live) {
      if (opts.active) {
        throw new RuntimeError('the active masks cannot be read', {
          where: ctx.paths.at('sys/bus/ap'),
          hint: 'is the ap module loaded on this IBM Z host? use --persistent to change the store only',
        });
      }
      ctx.warn(`warning: no AP bus at ${ctx.paths.at('sys/bus/ap')}; changing the persistent masks only`);
      doActive = false;
    }

    const oldStoreMasks = view.store.store.masks;
    const config = persistentConfig(view);
    const base = persistentMasks(config, view.live);
    const newPersistent: HostMasks = { ...oldStoreMasks };
    const newActive = live ? { ...live } : undefined;
    for (const key of ['apmask', 'aqmask'] as const) {
      const spec = specs[key];
      if (!spec) continue;
      // Relative changes start from the persistent mask, or the active one when the store has none.
      newPersistent[key] = applyMaskSpec(spec, base[key]);
      if (newActive) newActive[key] = applyMaskSpec(spec, newActive[key]);
    }

    // Refuse what the change would introduce, nothing else: an old conflict is check's business.
    let refusal = mergeConflicts();
    let forced = mergeConflicts();
    if (doPersistent) {
      const autos = autostartMdevs(config, view.mdevctl);
      const after = persistentMasks({ masks: newPersistent }, view.live);
      // Guest mdevs too: an APQN of theirs the host owns, they could never be made (check reports it so).
      const guests = config.mdevs.filter((m) => m.start === 'guest');
      refusal = mergeConflicts(refusal, newlyHostOwned([...autos, ...guests], base, after, 'persistent', 'mdev-host'));
      // A running mdev's queues the persistent masks would give the host: it could not be made at the next boot.
      const running = activeGivenAway(view, after, autos, base);
      if (opts.force) forced = running;
      else refusal = mergeConflicts(refusal, running);
    }
    if (doActive && live && newActive) {
      refusal = mergeConflicts(refusal, newlyHostOwned(view.live.mdevs, live, newActive, 'active', 'active-mdev-host'));
    }
    if (refusal.conflicts.length) {
      const code = reportRefusal(ctx, 'this mask change', refusal);
      const onlyForcible = refusal.conflicts.every((c) => c.scope === 'persistent' && c.kind === 'active-mdev-host');
      if (!ctx.json && onlyForcible) {
        ctx.warn('  to persist these masks anyway (the running guests keep their queues until they stop): add --force');
      }
      return code;
    }
    for (const c of forced.conflicts) ctx.warn(`warning: --force: ${c.message}`);

    const changes: { scope: string; key: string; from: string | null; to: string }[] = [];
    const unchanged: { scope: string; key: string; value: string }[] = [];
    const note = (scope: string, key: 'apmask' | 'aqmask', from: IdSet | undefined, to: IdSet | undefined): void => {
      if (!to) return;
      if (from && from.equals(to)) unchanged.push({ scope, key, value: to.toRanges() });
      else changes.push({ scope, key, from: from?.toRanges() ?? null, to: to.toRanges() });
    };
    for (const key of ['apmask', 'aqmask'] as const) {
      if (!specs[key]) continue;
      if (doPersistent) note('persistent', key, oldStoreMasks[key], newPersistent[key]);
      if (doActive) note('active', key, live?.[key], newActive?.[key]);
    }

    // The store must be able to take the change before the kernel gets it: a refusal then changes nothing.
    if (!opts.dryRun && doPersistent) checkWritable(view.store.path, { throughLink: true });
    let activeApplied = false;
    if (!opts.dryRun) {
      if (doActive && live && newActive) {
        try {
          applyMaskWrites(ctx.sysfs, planMaskWrites(live, newActive));
          activeApplied = true;
        } catch (err) {
          if (!isSysfsError(err)) throw err;
          // No half-applied change: the writes the kernel took are undone, or what is in effect is said.
          const { now, kept, failure } = restoreActiveMasks(ctx.sysfs, live);
          const same = now && now.apmask.equals(live.apmask) && now.aqmask.equals(live.aqmask);
          const outcome = same
            ? ' the active masks are as they were;'
            : now
              ? ` now in effect: ${inEffect(now)}${failure ? ' (undoing the first write failed too)' : ''}${kept.length ? ` (kept out for mdevs that took them meanwhile: ${kept.join(', ')})` : ''};`
              : ' the active masks cannot be read now;';
          throw new RuntimeError(`the kernel refused the mask write: ${err.message}`, {
            where: ctx.paths.at(`sys/${err.path}`),
            hint: `${MASK_ERRNO_MEANING[err.code] ?? 'see the kernel log'};${outcome} nothing was written to the store`,
          });
        }
      }
    }
    let persisted: Persisted | undefined;
    if (!opts.dryRun && doPersistent) {
      putMasks(view.store.doc, newPersistent, oldStoreMasks);
      try {
        persisted = saveAndGenerate(ctx, view.store, opts);
      } catch (err) {
        // Not half-applied: the kernel goes back to the masks it had, and is told so; its own failure is said, not thrown.
        if (activeApplied && live) {
          const { now, kept, failure } = restoreActiveMasks(ctx.sysfs, live);
          const why = failure ?? (kept.length ? kept.join(', ') : undefined);
          if (why) ctx.warn(`warning: the store could not take the change, so the active masks were to go back: ${why}; now in effect: ${now ? inEffect(now) : 'unknown (they cannot be read)'}`);
        }
        throw err;
      }
    }
    if (ctx.json) ctx.printJson({ dry_run: Boolean(opts.dryRun), changes, unchanged });
    else {
      const verb = opts.dryRun ? 'would set' : 'set';
      for (const key of ['apmask', 'aqmask'] as const) {
        const same = unchanged.filter((u) => u.key === key);
        // One line when both sides have it already, else one per side.
        const both = same.length === 2 && same[0]!.value === same[1]!.value;
        const holder = (scope: string): string => (scope === 'persistent' ? 'the store' : 'the kernel');
        if (both) ctx.info(`unchanged: the store and the kernel already have ${key} "${same[0]!.value}"`);
        else for (const u of same) ctx.info(`unchanged: ${holder(u.scope)} already has ${key} "${u.value}"`);
        for (const c of changes.filter((c) => c.key === key)) ctx.info(`${verb} ${c.scope} ${c.key} "${c.to}" (was ${c.from === null ? 'not set' : `"${c.from}"`})`);
      }
    }
    return persisted ?? 0;
  });
  return typeof edited === 'number' ? edited : reportPersisted(ctx, edited);
}

/** What putting the active masks back left: the masks in effect (undefined: unreadable), what it kept out, its failure. */
interface Restored {
  now: MaskPair | undefined;
  kept: string[];
  failure?: string;
}

/**
 * Puts the active masks back to `was` after a change that cannot stand (the
 * kernel refused part of it, or the store could not take it), less any APQN
 * an mdev took meanwhile (an assign that did not wait for the AP lock):
 * going back gives the host queues, and none of a guest's.
 */
function restoreActiveMasks(sysfs: Context['sysfs'], was: MaskPair): Restored {
  const taken = readActiveMasks(sysfs);
  if (!taken) return { now: undefined, kept: [], failure: 'the active masks cannot be read' };
  let kept: KeptApqn[] = [];
  let failure: string | undefined;
  try {
    const protectedTarget = protectActiveMdevs(was, taken, listActiveMatrices(sysfs), maskCheckRule(sysfs));
    kept = protectedTarget.kept;
    applyMaskWrites(sysfs, planMaskWrites(taken, protectedTarget.target));
  } catch (err) {
    failure = (err as Error).message;
  }
  return { now: readActiveMasks(sysfs), kept: kept.map((k) => `${k.apqn} of ${k.mdev}: ${k.kept}`), ...(failure ? { failure } : {}) };
}

const inEffect = (m: MaskPair): string => `apmask "${m.apmask.toRanges()}", aqmask "${m.aqmask.toRanges()}"`;
