// The hook's marks of the mdev units it holds back (run/ap-persist/held/):
// ap-persist-mdev@.service is skipped by systemd while its UUID, or `all`,
// is there. This is what lets systemd start the auto mdevs' units itself
// after the boot's first hook (the udev rule queues ap-persist-mdevs.target
// with it), yet never one the hook refused, nor any before it has judged.

import { existsSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describeFailure, RuntimeError } from '../errors.js';
import { tryWriteMark } from '../fsio/mark.js';
import { readRegularFile } from '../fsio/read.js';
import type { HostPaths } from '../host/paths.js';
import { mdevUnit } from '../generate/unit-names.js';

/** The mark that holds back every unit: a UUID is never this. */
export const HOLD_ALL = 'all';

/** Every unit held: a boot hook's hold not yet released (it runs, failed or was killed). */
export function holdsAll(paths: HostPaths): boolean {
  return existsSync(join(paths.heldDir, HOLD_ALL));
}

/** The marks there are now; empty when the directory is not there (the usual case). */
export function readHeldMarks(paths: HostPaths): Set<string> {
  try {
    return new Set(readdirSync(paths.heldDir));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return new Set();
    // Unknown marks are no verdict to go on: the hook fails, saying where.
    throw new RuntimeError(`cannot list the hook's marks: ${code ?? String(err)}`, { where: paths.heldDir, hint: 'it must be a directory root can read; remove what is there and run ap-persist hook' });
  }
}

/** Removes one mark (gone already is as good); the failure in words, or undefined. */
function release(paths: HostPaths, name: string): string | undefined {
  const path = join(paths.heldDir, name);
  try {
    unlinkSync(path);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? undefined : `cannot remove ${path} (${code}): systemd skips ${name === HOLD_ALL ? "every mdev unit's" : "that unit's"} start`;
  }
}

/** Removes `all` (another hook's, whose verdict stands); a failure goes to the report's errors. */
export function releaseHoldAll(paths: HostPaths, report: { errors: string[] }): void {
  const failed = release(paths, HOLD_ALL);
  if (failed) report.errors.push(failed);
}

/** Writes one mark with its reason; the failure in words, or undefined. */
export function hold(paths: HostPaths, name: string, reason: string): string | undefined {
  return tryWriteMark(join(paths.heldDir, name), `${reason}\n`);
}

/**
 * Makes the marks say `held` (UUID -> reason) and nothing else: the others,
 * `all` included, are removed once every one of `held` is written. Returns
 * what could not be done, in words.
 */
export function syncHeldMarks(paths: HostPaths, existing: ReadonlySet<string>, held: ReadonlyMap<string, string>): string[] {
  const problems: string[] = [];
  for (const [uuid, reason] of held) {
    const failed = hold(paths, uuid, reason);
    if (failed) problems.push(`${failed}: systemd may start ${mdevUnit(uuid)}, which the hook holds back`);
  }
  // `all` goes last, and only when every unit's own mark is there.
  const stale = [...existing].filter((name) => !held.has(name) && name !== HOLD_ALL);
  if (problems.length === 0 && existing.has(HOLD_ALL)) stale.push(HOLD_ALL);
  for (const name of stale) {
    const failed = release(paths, name);
    if (failed) problems.push(failed);
  }
  return problems;
}

/** Each mark with the reason written in it (`all` first), for status; none when there are none or they cannot be listed. */
export function readHeldReasons(paths: HostPaths): { name: string; reason: string }[] {
  let names: string[];
  try {
    names = [...readHeldMarks(paths)];
  } catch {
    return [];
  }
  const order = (n: string): string => (n === HOLD_ALL ? '' : n);
  return names
    .sort((a, b) => order(a).localeCompare(order(b)))
    .map((name) => {
      let reason = '(no reason written)';
      try {
        reason = readRegularFile(join(paths.heldDir, name), "the hook's mark")?.trim() || reason;
      } catch (err) {
        reason = `(${describeFailure(err).message})`;
      }
      return { name, reason };
    });
}
