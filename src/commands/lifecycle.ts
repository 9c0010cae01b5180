// mdev start / mdev stop: what the ap-persist-mdev@ units run.

import type { Context } from '../cli/context.js';
import { checkStart } from '../checks/conflicts.js';
import { InputError } from '../errors.js';
import { acquireLock } from '../host/lock.js';
import { readBootFiles, readLiveState, readMdevctlDefinitions } from '../host/state.js';
import { effectiveMdev } from '../checks/drift.js';
import { mdevLabel } from '../model/mdev.js';
import { parseUuid } from '../model/uuid.js';
import { findMdevctl, mdevctlDefinition, startMdev, stopMdev, type Lifecycle } from '../runtime/mdev-lifecycle.js';
import { loadStore } from '../store/store.js';
import { reportRefusal } from './view.js';
import { findMdevByRef, uuidOfRef } from './mdev-ref.js';

function lifecycle(ctx: Context): Lifecycle {
  return {
    sysfs: ctx.sysfs,
    paths: ctx.paths,
    runner: ctx.runner,
    // mdevctl only where host commands run; on a plain folder sysfs is all there is.
    mdevctl: ctx.exec ? findMdevctl(ctx.paths, ctx.io.env['PATH']) : undefined,
  };
}

export async function mdevStart(ctx: Context, ref: string): Promise<number> {
  const loaded = loadStore(ctx.paths.store);
  // A UUID, or the name of one of the store's mdevs.
  const stored = findMdevByRef(loaded.store.mdevs, ref, loaded.path);
  const uuid = stored?.uuid ?? parseUuid(ref);
  // The definition the boot uses: mdevctl's where it changed one of ours since generate.
  const mdev = stored && effectiveMdev(stored, readBootFiles(ctx.paths, readMdevctlDefinitions(ctx.paths, uuid)));
  if (!mdev) {
    if (stored) {
      throw new InputError(`mdev ${uuid} was undefined in mdevctl since ap-persist generated it; not starting it`, {
        where: ctx.paths.at(`etc/mdevctl.d/matrix/${uuid}`),
        hint: "'ap-persist import' takes the undefine into the store; 'ap-persist generate --force' defines it again",
      });
    }
    throw new InputError(`no mdev ${uuid} in the store`, { where: loaded.path, hint: "define it first: 'ap-persist mdev define'" });
  }
  const lc = lifecycle(ctx);
  if (lc.mdevctl && mdevctlDefinition(ctx.paths, mdev) === 'different') {
    ctx.warn(`warning: mdevctl's definition of ${mdevLabel(mdev)} differs from the store; starting it through sysfs (run 'ap-persist generate' to update mdevctl's)`);
    lc.mdevctl = undefined;
  }
  // Through sysfs we check and write under the AP configuration lock; through
  // mdevctl its callout takes the lock for mdevctl, so we must not hold it.
  const lock = lc.mdevctl ? undefined : acquireLock(ctx.paths.lock);
  let outcome: Awaited<ReturnType<typeof startMdev>>;
  try {
    // Never start into a conflict, whatever the kernel would allow.
    const found = checkStart(mdev, readLiveState(ctx.sysfs));
    if (found.conflicts.length) return reportRefusal(ctx, `starting mdev ${mdevLabel(mdev)}`, found);
    outcome = await startMdev(lc, mdev);
  } finally {
    lock?.release();
  }
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
  const lock = lc.mdevctl ? undefined : acquireLock(ctx.paths.lock);
  let outcome: Awaited<ReturnType<typeof stopMdev>>;
  try {
    outcome = await stopMdev(lc, uuid);
  } finally {
    lock?.release();
  }
  if (ctx.json) ctx.printJson({ uuid, outcome });
  else ctx.info(outcome === 'stopped' ? `stopped mdev ${uuid}` : `mdev ${uuid} is not active`);
  return 0;
}
