// mdev start / mdev stop: what the ap-persist-mdev@ units run.

import type { Context } from '../cli/context.js';
import { checkStart, type ConflictList } from '../checks/conflicts.js';
import { InputError } from '../errors.js';
import { acquireLock } from '../host/lock.js';
import { readLiveState, readPeerFiles } from '../host/state.js';
import { effectiveMdev } from '../checks/drift.js';
import { mdevLabel, type MdevDefinition } from '../model/mdev.js';
import { parseUuid, uuidOf } from '../model/uuid.js';
import { boundBy } from '../runtime/commands.js';
import { findMdevctl, mdevctlDefinition, startMdev, stopMdev, type Lifecycle, type StartOutcome } from '../runtime/mdev-lifecycle.js';
import { loadStore } from '../store/store.js';
import { reportRefusal } from './view.js';
import { findMdevByRef, uuidOfRef } from './mdev-ref.js';

/** How an mdev is made and removed: through mdevctl where host commands run, else through sysfs. */
export function lifecycle(ctx: Context): Lifecycle {
  return {
    sysfs: ctx.sysfs,
    paths: ctx.paths,
    runner: ctx.runner,
    // mdevctl only where host commands run; on a plain folder sysfs is all there is.
    mdevctl: ctx.exec ? findMdevctl(ctx.paths, ctx.io.env['PATH']) : undefined,
  };
}

/**
 * Runs `fn` under the AP configuration lock where we write sysfs ourselves;
 * through mdevctl its callout takes the lock for mdevctl, so we must not hold it.
 */
export async function underApLock<T>(ctx: Context, lc: Lifecycle, fn: () => Promise<T>, timeoutMs?: number): Promise<T> {
  const lock = lc.mdevctl ? undefined : acquireLock(ctx.paths.lock, timeoutMs === undefined ? {} : { timeoutMs });
  try {
    return await fn();
  } finally {
    lock?.release();
  }
}

/** The definition the boot uses for a store mdev: mdevctl's where it changed ours since generate; undefined once undefined there. */
export function bootMdev(ctx: Context, stored: MdevDefinition): MdevDefinition | undefined {
  return effectiveMdev(stored, readPeerFiles(ctx.paths, [stored.uuid]).boot);
}

/**
 * Makes `mdev` (as bootMdev gives it), never into a conflict, whatever the
 * kernel would allow: the conflicts, or what became of it. `deadline` (epoch
 * ms) bounds the whole start: the lock wait and each mdevctl run.
 */
export async function startChecked(ctx: Context, mdev: MdevDefinition, timeoutMs?: number, deadline?: number): Promise<{ conflicts: ConflictList } | { outcome: StartOutcome }> {
  const lc = { ...lifecycle(ctx), ...(deadline === undefined ? {} : { deadline }) };
  if (deadline !== undefined) timeoutMs = boundBy(timeoutMs ?? Number.POSITIVE_INFINITY, deadline);
  if (lc.mdevctl && mdevctlDefinition(ctx.paths, mdev) === 'different') {
    ctx.warn(`warning: mdevctl's definition of ${mdevLabel(mdev)} differs from the store; starting it through sysfs (run 'ap-persist generate' to update mdevctl's)`);
    lc.mdevctl = undefined;
  }
  return underApLock(
    ctx,
    lc,
    async () => {
      const found = checkStart(mdev, readLiveState(ctx.sysfs));
      return found.conflicts.length ? { conflicts: found } : { outcome: await startMdev(lc, mdev) };
    },
    timeoutMs,
  );
}

/**
 * The whole of `mdev start`, inside its unit's TimeoutStartSec=60 with room
 * to say why: systemd must never kill it half way through making the mdev
 * (a failed start runs no ExecStop, and a half-made mdev would stay).
 */
const START_BUDGET_MS = 50_000;

export async function mdevStart(ctx: Context, ref: string): Promise<number> {
  // A UUID (the units give one: then only its own definition is read), or the name of one of the store's mdevs.
  const only = uuidOf(ref);
  const { boot } = readPeerFiles(ctx.paths, only && [only]);
  const loaded = loadStore(ctx.paths.store, boot.storeSnapshot);
  const stored = findMdevByRef(loaded.store.mdevs, ref, loaded.path);
  const uuid = stored?.uuid ?? parseUuid(ref);
  // A name that is a UUID (a libvirt domain's) names another mdev, whose definition was not read.
  const mdev = stored && (only === undefined || only === stored.uuid ? effectiveMdev(stored, boot) : bootMdev(ctx, stored));
  if (!mdev) {
    if (stored) {
      throw new InputError(`mdev ${uuid} was undefined in mdevctl since ap-persist generated it; not starting it`, {
        where: ctx.paths.at(`etc/mdevctl.d/matrix/${uuid}`),
        hint: "'ap-persist import' takes the undefine into the store; 'ap-persist generate --force' defines it again",
      });
    }
    throw new InputError(`no mdev ${uuid} in the store`, { where: loaded.path, hint: "define it first: 'ap-persist mdev define'" });
  }
  const started = await startChecked(ctx, mdev, undefined, Date.now() + START_BUDGET_MS);
  if ('conflicts' in started) return reportRefusal(ctx, `starting mdev ${mdevLabel(mdev)}`, started.conflicts);
  const outcome = started.outcome;
  if (ctx.json) ctx.printJson({ uuid, outcome });
  else ctx.info(outcome === 'started' ? `started mdev ${mdevLabel(mdev)}` : `mdev ${mdevLabel(mdev)} is already active`);
  return 0;
}

export async function mdevStop(ctx: Context, ref: string): Promise<number> {
  // A UUID is stopped as it is (the store need not hold it, nor be readable: the units stop by UUID);
  // a name is looked up in the store.
  const uuid = uuidOfRef(ref, () => {
    const loaded = loadStore(ctx.paths.store);
    return { mdevs: loaded.store.mdevs, path: loaded.path };
  });
  const lc = lifecycle(ctx);
  const outcome = await underApLock(ctx, lc, () => stopMdev(lc, uuid));
  if (ctx.json) ctx.printJson({ uuid, outcome });
  else ctx.info(outcome === 'stopped' ? `stopped mdev ${uuid}` : `mdev ${uuid} is not active`);
  return 0;
}
