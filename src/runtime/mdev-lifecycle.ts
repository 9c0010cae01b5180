// Starting and stopping one mdev: through mdevctl where the host has it (so
// mdevctl and libvirt see the device), else straight through sysfs, rolling
// back a half-made mdev when an assignment fails.

import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { RuntimeError } from '../errors.js';
import type { HostPaths } from '../host/paths.js';
import type { IdSet } from '../model/idset.js';
import { mdevLabel, runsAs, sameMatrix, type MdevDefinition } from '../model/mdev.js';
import { parseMdevctlJson, renderMdevctlJson } from '../store/mdevctl-defs.js';
import { listActiveMdevs, mdevPath, PASSTHROUGH_CREATE, vfioApLoaded } from '../sysfs/ap-host.js';
import { isSysfsError, type Sysfs, type SysfsError } from '../sysfs/sysfs.js';
import { boundBy, type CommandRunner } from './commands.js';
import { describeHolder, mdevHolders } from './in-use.js';

/** What each errno of vfio_ap's sysfs means for the admin. */
export const ERRNO_MEANING: Record<string, string> = {
  EADDRNOTAVAIL: 'an APQN is not free for vfio_ap: check the masks (ap-persist mask show) and that the queue is bound to vfio_ap',
  EBUSY: 'another mdev holds one of its APQNs, or a guest still uses it (ap-persist check --active)',
  EADDRINUSE: 'another mdev holds one of its APQNs (ap-persist check --active)',
  ENODEV: 'an ID is above ap_max_adapter_id/ap_max_domain_id of this machine',
  EINVAL: 'the kernel did not accept the value',
  ENOENT: 'vfio_ap is not loaded or the mdev does not exist (modprobe vfio_ap)',
  EEXIST: 'an mdev with this UUID exists already',
};

function sysfsFailure(err: SysfsError, what: string): RuntimeError {
  return new RuntimeError(`${what}: the kernel refused with ${err.code}`, {
    where: `/sys/${err.path}`,
    hint: ERRNO_MEANING[err.code] ?? 'see the kernel log (dmesg)',
  });
}

/** Creates the mdev and assigns its matrix; on any refusal removes what was made. */
export function createViaSysfs(sysfs: Sysfs, mdev: MdevDefinition): void {
  if (!vfioApLoaded(sysfs)) {
    throw new RuntimeError(`cannot create mdev ${mdevLabel(mdev)}: vfio_ap is not loaded`, { hint: 'modprobe vfio_ap, or let the boot hook do it' });
  }
  try {
    sysfs.write(PASSTHROUGH_CREATE, mdev.uuid);
  } catch (err) {
    if (isSysfsError(err)) throw sysfsFailure(err, `creating mdev ${mdevLabel(mdev)}`);
    throw err;
  }
  const assign = (attr: string, ids: IdSet): void => {
    for (const id of ids.ids()) sysfs.write(mdevPath(mdev.uuid, attr), `0x${id.toString(16)}`);
  };
  try {
    assign('assign_adapter', mdev.adapters);
    assign('assign_domain', mdev.domains);
    assign('assign_control_domain', mdev.controlDomains);
  } catch (err) {
    try {
      sysfs.write(mdevPath(mdev.uuid, 'remove'), '1');
    } catch {
      // Reported below; the admin sees the mdev in 'status'.
    }
    if (isSysfsError(err)) throw sysfsFailure(err, `assigning mdev ${mdevLabel(mdev)}`);
    throw err;
  }
}

export function removeViaSysfs(sysfs: Sysfs, uuid: string): void {
  try {
    sysfs.write(mdevPath(uuid, 'remove'), '1');
  } catch (err) {
    if (isSysfsError(err)) {
      throw sysfsFailure(err, `removing mdev ${uuid}`);
    }
    throw err;
  }
}

/** The mdevctl binary on PATH (under the root), if any. */
export function findMdevctl(paths: HostPaths, pathEnv: string | undefined): string | undefined {
  for (const dir of (pathEnv ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    if (!dir) continue;
    const file = paths.isRealRoot ? join(dir, 'mdevctl') : paths.at(join(dir, 'mdevctl'));
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface Lifecycle {
  sysfs: Sysfs;
  paths: HostPaths;
  runner: CommandRunner;
  /** The mdevctl to drive, or undefined to use sysfs directly. */
  mdevctl: string | undefined;
  /** Epoch ms by which a start must be done (its unit's TimeoutStartSec, the libvirt hook's bound): each wait is cut to fit. */
  deadline?: number;
}

/** The errno name of mdevctl's "(os error N)", the kernel's answer to a sysfs write. */
function mdevctlErrno(stderr: string): string | undefined {
  const n = /\(os error (\d+)\)/.exec(stderr)?.[1];
  return n === undefined ? undefined : Object.entries(osConstants.errno).find(([, v]) => v === Number(n))?.[0];
}

async function mdevctlRun(lc: Lifecycle, args: string[], what: string): Promise<void> {
  const r = await lc.runner.run(lc.mdevctl!, args, { timeoutMs: boundBy(30_000, lc.deadline) });
  if (r.exitCode !== 0 || r.timedOut) {
    const errno = mdevctlErrno(r.stderr);
    throw new RuntimeError(`${what}: mdevctl ${args[0]} failed${r.timedOut ? ' (timed out)' : ''}: ${r.stderr.trim() || `exit ${r.exitCode}`}`, {
      hint: (errno && ERRNO_MEANING[errno]) ?? 'mdevctl ran its callouts; their messages are above',
    });
  }
}

/** How mdevctl's definition of the mdev compares with the store's. */
export function mdevctlDefinition(paths: HostPaths, mdev: MdevDefinition): 'absent' | 'same' | 'different' {
  const file = join(paths.mdevctlMatrixDir, mdev.uuid);
  if (!existsSync(file)) return 'absent';
  try {
    return sameMatrix(parseMdevctlJson(readFileSync(file, 'utf8'), file), mdev) ? 'same' : 'different';
  } catch {
    return 'different';
  }
}

/**
 * Makes mdevctl know the device, with the store's start mode, when it does
 * not yet; `ap-persist generate` writes the same file.
 * A definition that differs is generate's to update, never ours: the caller
 * starts such an mdev through sysfs.
 */
async function defineInMdevctl(lc: Lifecycle, mdev: MdevDefinition): Promise<void> {
  if (mdevctlDefinition(lc.paths, mdev) !== 'absent') return;
  const dir = mkdtempSync(join(tmpdir(), 'ap-persist-'));
  try {
    const json = join(dir, `${mdev.uuid}.json`);
    writeFileSync(json, renderMdevctlJson(mdev, mdev.start));
    await mdevctlRun(lc, ['define', '-u', mdev.uuid, '-p', 'matrix', '--jsonfile', json], `defining mdev ${mdevLabel(mdev)} in mdevctl`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export type StartOutcome = 'started' | 'already-active';

export async function startMdev(lc: Lifecycle, mdev: MdevDefinition): Promise<StartOutcome> {
  const active = listActiveMdevs(lc.sysfs).find((m) => m.uuid === mdev.uuid);
  if (active) {
    // mdevctl's own autostart may be making it right now (without mdevctl we hold the lock: no one is).
    if (runsAs(active, mdev) || (lc.mdevctl && (await becomesActive(lc, mdev)))) return 'already-active';
    throw new RuntimeError(`mdev ${mdevLabel(mdev)} is active with another matrix than the store's`, {
      hint: `stop it (ap-persist mdev stop ${mdev.uuid}) once its guest is down, then start it again`,
    });
  }
  if (lc.mdevctl) {
    await defineInMdevctl(lc, mdev);
    try {
      await mdevctlRun(lc, ['start', '-u', mdev.uuid], `starting mdev ${mdevLabel(mdev)}`);
    } catch (err) {
      // mdevctl's own autostart made it meanwhile: up with our matrix is what we wanted. It may
      // still be assigning (it holds the AP lock until its post callout): give it a moment.
      if (await becomesActive(lc, mdev)) return 'already-active';
      throw err;
    }
  } else {
    createViaSysfs(lc.sysfs, mdev);
  }
  return 'started';
}

/** How long a start that lost the race waits for the winner to finish the mdev. */
const RACE_WAIT_MS = 10_000;

/**
 * Whether the mdev exists with the store's matrix now, or does within
 * RACE_WAIT_MS while someone makes it: mdevctl holds the AP configuration
 * lock from its pre callout (before create) to its post callout (after the
 * last assignment), so a half-made mdev under the lock is still being made.
 */
async function becomesActive(lc: Lifecycle, mdev: MdevDefinition): Promise<boolean> {
  const deadline = Date.now() + boundBy(RACE_WAIT_MS, lc.deadline);
  for (;;) {
    const now = listActiveMdevs(lc.sysfs).find((m) => m.uuid === mdev.uuid);
    if (now && runsAs(now, mdev)) return true;
    // Gone, or finished with another matrix (no one holds the lock): no use waiting.
    if (!now || !existsSync(lc.paths.lock) || Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * `released`: the libvirt guest whose release hook asks, which libvirt may
 * still list as running while it tears it down (its QEMU is gone by then).
 */
export async function stopMdev(lc: Lifecycle, uuid: string, released?: string): Promise<'stopped' | 'not-active'> {
  if (!listActiveMdevs(lc.sysfs).some((m) => m.uuid === uuid)) return 'not-active';
  // The kernel would not refuse the remove: it would block, unkillably, until the guest lets go.
  const holders = mdevHolders(lc.paths, lc.sysfs, uuid).filter((h) => !(h.kind === 'domain' && h.name === released));
  if (holders.length) {
    const domain = holders.flatMap((h) => (h.kind === 'domain' ? [h.name] : []))[0];
    throw new RuntimeError(`mdev ${uuid} is in use by ${holders.map(describeHolder).join(', ')}; removing it now would block until the guest releases it`, {
      hint: `stop the guest first${domain ? ` (virsh shutdown ${domain})` : ''}, then run 'ap-persist mdev stop ${uuid}' again`,
    });
  }
  if (lc.mdevctl) await mdevctlRun(lc, ['stop', '-u', uuid], `stopping mdev ${uuid}`);
  else removeViaSysfs(lc.sysfs, uuid);
  return 'stopped';
}
