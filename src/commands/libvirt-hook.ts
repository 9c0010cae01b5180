// ap-persist libvirt-hook: libvirt's qemu hook (installed as
// /etc/libvirt/hooks/qemu.d/ap-persist), run as libvirt runs it:
//   <guest name> <operation> <sub-operation> <extra>, the domain XML on stdin.
// prepare begin: make the guest's `guest` mdevs (and auto ones that are not
//   up, after a failed boot), checked against what runs now; a refusal is one
//   line on stderr naming the APQN and the running guest that holds it, which
//   libvirt shows to whoever ran `virsh start`, and exit 1 stops the start.
// release end: remove the `guest` mdevs made for this guest.
// reconnect begin (the daemon restarted): learn which guest holds which; never
//   fails, since libvirt kills a running guest whose reconnect hook fails.
// Everything else: nothing. Never calls libvirt (it waits for us: deadlock),
// never prints on stdout (for migrate and restore libvirt would take it for
// the domain XML), always bounded (libvirt waits for ever).

import type { Context } from '../cli/context.js';
import { HOST, type Conflict } from '../checks/conflicts.js';
import { describeFailure, InputError } from '../errors.js';
import { writeFileAtomic } from '../fsio/atomic.js';
import { readRegularFile } from '../fsio/read.js';
import { guestsUsing, runningGuests, type Guest } from '../host/libvirt.js';
import { readLiveState, readPeerFiles } from '../host/state.js';
import { effectiveMdev } from '../checks/drift.js';
import { formatApqn } from '../model/apqn.js';
import { domainDevices } from '../model/libvirt-domain.js';
import { mdevLabel, type MdevDefinition } from '../model/mdev.js';
import type { Uuid } from '../model/uuid.js';
import { boundBy, giveUpAfter } from '../runtime/commands.js';
import { stopMdev } from '../runtime/mdev-lifecycle.js';
import { lifecycle, startChecked, underApLock } from './lifecycle.js';
import { loadStore } from '../store/store.js';
import { rmSync } from 'node:fs';

export interface HookCall {
  guest: string;
  operation: string;
  subOperation: string;
}

/** libvirt's call, as its argv: name, operation, sub-operation, extra (`-` when none). */
export function parseHookCall(args: readonly string[]): HookCall {
  if (args.length < 3 || args.length > 4 || args.some((a) => a === '')) {
    throw new InputError(`libvirt-hook takes the guest's name, the operation, the sub-operation and an extra argument, as libvirt passes them; got ${args.length} argument(s)`, {
      hint: 'libvirt runs it from /etc/libvirt/hooks/qemu.d/ap-persist; by hand: ap-persist libvirt-hook GUEST prepare begin - < domain.xml',
    });
  }
  return { guest: args[0]!, operation: args[1]!, subOperation: args[2]! };
}

/** The whole run's bound: libvirt waits for its hooks without a timeout, holding the guest's lock. */
export const LIBVIRT_HOOK_BUDGET_MS = 60_000;
/** How long one mdev waits for the AP lock, well inside that bound. */
const LOCK_WAIT_MS = 20_000;

export async function libvirtHook(ctx: Context, call: HookCall): Promise<number> {
  const op = `${call.operation} ${call.subOperation}`;
  if (op !== 'prepare begin' && op !== 'release end' && op !== 'reconnect begin') return 0;
  // Where the steps must end: a second before the budget, whose timer the lock waits would block.
  const stepsEnd = Date.now() + LIBVIRT_HOOK_BUDGET_MS - 1_000;
  const budget = giveUpAfter(
    LIBVIRT_HOOK_BUDGET_MS,
    () => ctx.io.stderr(`ap-persist: gave up on the vfio_ap mdevs of guest ${call.guest} after ${LIBVIRT_HOOK_BUDGET_MS / 1000} s\n`),
    op === 'reconnect begin' ? 0 : 1,
  );
  try {
    const mdevs = domainDevices(ctx.io.stdin?.() ?? '').mdevs;
    if (mdevs.length === 0) return 0;
    if (op === 'prepare begin') return await prepare(ctx, call.guest, mdevs, stepsEnd);
    if (op === 'release end') await release(ctx, call.guest, mdevs, stepsEnd);
    else learn(ctx, call.guest, mdevs);
    return 0;
  } catch (err) {
    // Reconnect must not fail (libvirt would kill the guest), release cannot (libvirt ignores it).
    if (op !== 'prepare begin') {
      ctx.io.stderr(`ap-persist: guest ${call.guest}: ${describeFailure(err).message}\n`);
      return 0;
    }
    throw err;
  } finally {
    clearTimeout(budget);
  }
}

/** The store's mdevs among `uuids`, as the boot would make them (mdevctl's changes in place), and every store mdev's name. */
function storeMdevs(ctx: Context, uuids: readonly Uuid[]): { mdevs: MdevDefinition[]; names: Map<string, string | undefined> } {
  // Only the guest's own definitions: the hook runs as the guest starts.
  const { boot } = readPeerFiles(ctx.paths, uuids);
  const store = loadStore(ctx.paths.store, boot.storeSnapshot).store;
  const mdevs: MdevDefinition[] = [];
  for (const uuid of uuids) {
    const stored = store.mdevs.find((m) => m.uuid === uuid);
    const mdev = stored && effectiveMdev(stored, boot);
    if (mdev) mdevs.push(mdev);
  }
  return { mdevs, names: new Map(store.mdevs.map((m) => [m.uuid as string, m.name])) };
}

const recordPath = (ctx: Context, uuid: string): string => `${ctx.paths.guestRecordsDir}/${uuid}`;

/** The guest a `guest` mdev was made for, by our record. */
export function madeFor(ctx: Context, uuid: string): string | undefined {
  try {
    return readRegularFile(recordPath(ctx, uuid), 'the record of the guest an mdev was made for')?.trim() || undefined;
  } catch {
    return undefined;
  }
}

function record(ctx: Context, uuid: string, guest: string): void {
  writeFileAtomic(recordPath(ctx, uuid), `${guest}\n`, { durable: false });
}

/** Who holds an APQN another mdev claims, in words: the mdev and, if one runs with it, its guest. */
function holderText(conflict: Conflict, running: readonly Guest[], self: string, names: ReadonlyMap<string, string | undefined>): string {
  const other = conflict.owners[0];
  if (other.uuid === HOST) return 'the host (by the active masks)';
  const guests = guestsUsing(running, other.uuid).filter((g) => g !== self);
  return `mdev ${mdevLabel({ uuid: other.uuid, name: other.name ?? names.get(other.uuid) })}${guests.length ? ` of running guest ${guests.join(', ')}` : ''}`;
}

async function prepare(ctx: Context, guest: string, uuids: readonly Uuid[], end: number): Promise<number> {
  const { mdevs: used, names } = storeMdevs(ctx, uuids);
  const mdevs = used.filter((m) => m.start === 'guest' || m.start === 'auto');
  if (mdevs.length === 0) return 0;
  const running = runningGuests(ctx.paths).filter((g) => g.name !== guest);
  for (const mdev of mdevs) {
    // Already up: ours to use unless another running guest has it.
    const users = guestsUsing(running, mdev.uuid);
    if (users.length) return refuse(ctx, guest, `its mdev ${mdevLabel(mdev)} is in use by running guest ${users.join(', ')}`);
    // As `mdev start` makes it (mdevctl or sysfs, the AP lock), within the hook's bound.
    const started = await startChecked(ctx, mdev, LOCK_WAIT_MS, end);
    if ('conflicts' in started) {
      const byHolder = new Map<string, string[]>();
      for (const c of started.conflicts.conflicts) {
        const who = holderText(c, running, guest, names);
        byHolder.set(who, [...(byHolder.get(who) ?? []), formatApqn(c.apqn)]);
      }
      const parts = [...byHolder].map(([who, apqns]) => `APQN ${apqns.slice(0, 8).join(', ')}${apqns.length > 8 ? `, ... (${apqns.length})` : ''} is in use by ${who}`);
      return refuse(ctx, guest, `its mdev ${mdevLabel(mdev)} cannot be made: ${parts.join('; ')}`);
    }
    // The guest that made it owns it; one that finds it up (a guest sharing it, started at the same
    // time) does not take that over: its release, after its QEMU could not have the device, would
    // then be skipped by the maker's, and the mdev outlive both.
    if (mdev.start === 'guest' && (started.outcome === 'started' || madeFor(ctx, mdev.uuid) === undefined)) record(ctx, mdev.uuid, guest);
    if (ctx.verbose) ctx.io.stderr(`ap-persist: guest ${guest}: mdev ${mdevLabel(mdev)} ${started.outcome === 'started' ? 'made' : 'already up'}\n`);
  }
  return 0;
}

function refuse(ctx: Context, guest: string, why: string): number {
  // One line: libvirt appends it to its own error, which virsh prints.
  ctx.io.stderr(`ap-persist: guest ${guest} not started: ${why}\n`);
  return 1;
}

async function release(ctx: Context, guest: string, uuids: readonly Uuid[], end: number): Promise<void> {
  const mdevs = storeMdevs(ctx, uuids).mdevs.filter((m) => m.start === 'guest');
  if (mdevs.length === 0) return;
  const lc = lifecycle(ctx);
  const running = runningGuests(ctx.paths).filter((g) => g.name !== guest);
  for (const mdev of mdevs) {
    const owner = madeFor(ctx, mdev.uuid);
    // Made for another guest that runs (this one was refused, or shares the UUID), or another running guest uses it:
    // not ours to remove. Made for one that runs no more (it never got the device): the last to let it go removes it.
    if ((owner !== undefined && owner !== guest && running.some((g) => g.name === owner)) || guestsUsing(running, mdev.uuid).length) continue;
    await underApLock(ctx, lc, () => stopMdev(lc, mdev.uuid, guest), boundBy(LOCK_WAIT_MS, end));
    rmSync(recordPath(ctx, mdev.uuid), { force: true });
  }
}

/** After a daemon restart: the running guest holds its `guest` mdevs that are up. */
function learn(ctx: Context, guest: string, uuids: readonly Uuid[]): void {
  const active = new Set<string>(readLiveState(ctx.sysfs).mdevs.map((m) => m.uuid));
  for (const mdev of storeMdevs(ctx, uuids).mdevs) {
    if (mdev.start === 'guest' && active.has(mdev.uuid) && madeFor(ctx, mdev.uuid) === undefined) record(ctx, mdev.uuid, guest);
  }
}
