// ap-persist uninstall: the package's removal step. Takes away what install
// and generate wrote and nothing else: first disables the units install
// enabled through the preset (systemctl disable, while their files are still
// there to say where the links are), then the package's rules, units, preset
// and callout by name, the generated files the record names while they still hold what
// generate wrote (a file chzdev or mdevctl changed since is the admin's now,
// and stays), then puts back s390-tools' ap-check, and the admin's libvirt
// qemu hook install chained (libvirt older than 6.5). The store stays (Debian
// policy: configuration goes on purge); --purge deletes it too. Running mdevs
// are left alone: their guests keep their queues.

import { existsSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from '../cli/context.js';
import { RuntimeError } from '../errors.js';
import { observe } from '../fsio/observe.js';
import { packageAssets } from '../generate/assets.js';
import { ownedDirs, rootPath, type RootPath } from '../generate/host-files.js';
import { reconcile } from '../generate/reconcile.js';
import type { ManifestEntry } from '../generate/manifest.js';
import { reloadCommands, reloadLines } from '../generate/reload.js';
import { CALLOUT_NAME, staticEntries, SYSTEMCTL_CANDIDATES } from '../generate/static-files.js';
import { restoreApCheck } from '../host/callouts.js';
import { readHookRecord, unchainQemuHook } from '../host/libvirt-hooks.js';
import { withLock } from '../host/lock.js';
import { readManifest, reload } from './generate.js';
import { readPending } from '../host/state.js';
import { PRESET_STATE, releasedLinks, systemctlArgs } from '../generate/enable.js';
import { presetUnits, unitFileRunner } from './install.js';

export interface UninstallOptions {
  purge?: boolean;
  /** commander's --no-reload sets this false. */
  reload?: boolean;
}

interface Outcome {
  removed: RootPath[];
  /** Generated files changed since generate wrote them: not ours to delete. */
  kept: RootPath[];
  /** chzdev's or mdevctl's files from before ap-persist took them over: theirs again. */
  adopted: RootPath[];
}

function remove(ctx: Context, path: RootPath): void {
  const abs = ctx.paths.confined(path);
  try {
    unlinkSync(abs);
  } catch (err) {
    throw new RuntimeError(`cannot remove: ${(err as Error).message}`, { where: ctx.paths.at(path) });
  }
}

function removeIfEmpty(dir: string): void {
  if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
}

/** The package's files are ours by name, whatever --bin they were installed with. */
function staticPaths(ctx: Context): RootPath[] {
  const programs = { bin: '/', node: '/', systemctl: SYSTEMCTL_CANDIDATES[0]! };
  return staticEntries(packageAssets(), programs, ctx.paths).map((e) => e.path);
}

function removeGenerated(ctx: Context, outcome: Outcome): void {
  // A link generate made before the preset is systemctl's: disable took it.
  const released = new Set(releasedLinks(ctx.paths));
  // What a generate killed before its record wrote (the pending list) is generate's too, where it holds that.
  const record = readManifest(ctx.paths).entries.filter((e) => !released.has(e.path));
  const pending = readPending(ctx.paths).filter((e) => !released.has(e.path));
  const adopted = new Set([...record, ...pending].flatMap((e) => (e.adopted ? [e.path] : [])));
  for (const path of adopted) if (observe(ctx.paths.at(path)).kind !== 'absent') outcome.adopted.push(path);
  const ours = (e: ManifestEntry): boolean => !adopted.has(e.path);
  withLock(ctx.paths.lock, () => {
    // Generate's own rule with nothing wanted: remove what holds the record (or what the pending list names), keep what changed.
    for (const step of reconcile([], record.filter(ours), (p) => observe(ctx.paths.at(p)), { pending: pending.filter(ours) }).steps) {
      if (step.op !== 'remove') continue;
      if (step.conflict) outcome.kept.push(step.path);
      else {
        remove(ctx, step.path);
        outcome.removed.push(step.path);
      }
    }
    for (const dir of ownedDirs(ctx.paths)) removeIfEmpty(ctx.paths.at(dir));
    for (const list of [ctx.paths.generatedManifest, ctx.paths.generatedPending]) if (existsSync(list)) remove(ctx, rootPath(ctx.paths, list));
  });
}

/**
 * `systemctl disable` of the units the preset enables, while their files are
 * there (systemctl reads their [Install] sections to find the links). Done
 * whether install enabled them or the admin did: their files go away.
 */
async function disableUnits(ctx: Context): Promise<{ units: string[]; command: string; ran: boolean; reason?: string }> {
  const units = presetUnits(packageAssets()).filter((u) => observe(`${ctx.paths.staticUnitsDir}/${u}`).kind !== 'absent');
  const args = systemctlArgs(ctx.paths, 'disable', units);
  const command = ['systemctl', ...args].join(' ');
  if (units.length === 0) return { units, command, ran: false };
  const r = await unitFileRunner(ctx).run('systemctl', args);
  if (!r.ran) return { units, command, ran: false, reason: `not run under --root ${ctx.paths.root} (--exec runs it)` };
  if (r.exitCode === 127) return { units, command, ran: false, reason: 'systemctl is not installed here' };
  if (r.exitCode !== 0) {
    throw new RuntimeError(`${command} failed: ${r.stderr.trim() || `exit ${r.exitCode}`}`, { hint: `nothing was changed; run '${command}' once the problem is fixed, then uninstall again` });
  }
  return { units, command, ran: true };
}

export async function uninstall(ctx: Context, opts: UninstallOptions): Promise<number> {
  // A damaged record (or list of a killed generate's files) stops uninstall (exit 2) before any file is touched.
  readManifest(ctx.paths);
  readPending(ctx.paths);
  const hookRecord = readHookRecord(ctx.paths);
  const outcome: Outcome = { removed: [], kept: [], adopted: [] };
  // Before anything is removed: a disable that fails leaves everything as it was.
  const disabled = await disableUnits(ctx);
  if (existsSync(ctx.paths.at(PRESET_STATE))) remove(ctx, PRESET_STATE);
  // ap-check first: mdevctl is never without a vfio_ap callout.
  const restored = restoreApCheck(ctx.paths);
  // The admin's hooks/qemu back in its place, by rename over ours: libvirt never finds none.
  const hooks = unchainQemuHook(ctx.paths, hookRecord);
  // If ap-check could not go back, ours stays: mdevctl is never left without a vfio_ap check.
  const ours = new Set(ctx.paths.calloutDirs.map((d) => rootPath(ctx.paths, join(d, CALLOUT_NAME))));
  for (const path of staticPaths(ctx)) {
    if (observe(ctx.paths.at(path)).kind === 'absent') continue;
    if (restored.failed.length && ours.has(path)) {
      ctx.warn(`warning: kept ${ctx.paths.at(path)}: s390-tools' ap-check could not be put back, and mdevctl must not be left without a vfio_ap callout`);
      continue;
    }
    remove(ctx, path);
    outcome.removed.push(path);
  }
  removeGenerated(ctx, outcome);
  const purged: string[] = [];
  if (opts.purge) {
    for (const path of [ctx.paths.store, ctx.paths.lastHook]) {
      if (observe(path).kind === 'absent') continue;
      unlinkSync(path);
      purged.push(path);
    }
    for (const dir of [ctx.paths.at('etc/ap-persist'), ctx.paths.at('run/ap-persist')]) removeIfEmpty(dir);
  }
  removeIfEmpty(ctx.paths.at('var/lib/ap-persist'));
  const commands = opts.reload === false ? [] : reloadCommands([...outcome.removed, ...hooks.changed], ctx.paths);
  const reloads = await reload(ctx, commands);

  if (ctx.json) {
    ctx.printJson({
      removed: outcome.removed.map((p) => ctx.paths.at(p)),
      kept: outcome.kept.map((p) => ctx.paths.at(p)),
      left_to_peers: outcome.adopted.map((p) => ctx.paths.at(p)),
      ap_check_restored: restored.moved,
      ap_check_not_restored: restored.failed,
      ap_check_copies_dropped: restored.dropped.map((d) => d.path),
      libvirt_hooks: { removed: hooks.removed, restored: hooks.restored, kept: hooks.kept, failed: hooks.failed },
      disable: disabled.units.length ? { units: disabled.units, command: disabled.command, ran: disabled.ran, ...(disabled.reason ? { reason: disabled.reason } : {}) } : null,
      store: opts.purge ? null : ctx.paths.store,
      purged,
      reload: reloads,
    });
  } else {
    if (disabled.ran) ctx.info(`disabled ${disabled.units.join(', ')}: ran ${disabled.command}`);
    for (const p of outcome.removed) ctx.info(`removed ${ctx.paths.at(p)}`);
    for (const p of hooks.removed) ctx.info(`removed ${p}`);
    for (const m of hooks.restored) ctx.info(`put back libvirt's qemu hook ${m.to} from ${m.from}, as it was before ap-persist chained it`);
    for (const p of outcome.adopted) ctx.info(`left ${ctx.paths.at(p)}: it was there before ap-persist took it over (chzdev's or mdevctl's), and the host goes on using it`);
    for (const p of outcome.kept) ctx.warn(`warning: kept ${ctx.paths.at(p)}: changed by another tool since ap-persist wrote it, so it is the admin's now; the next boot still uses it (remove it by hand if it should not)`);
    for (const m of restored.moved) ctx.info(`put back s390-tools' ap-check callout ${m.to}`);
    for (const d of restored.dropped) {
      ctx.info(`dropped ${d.path}: ${d.why === 'newer' ? 's390-tools has installed a newer ap-check in its place' : 'its callout directory is gone (s390-tools removed)'}`);
    }
    for (const p of purged) ctx.info(`deleted ${p}`);
    if (!opts.purge && existsSync(ctx.paths.store)) ctx.info(`kept the store ${ctx.paths.store} ('uninstall --purge' deletes it)`);
    if (!outcome.removed.length && !restored.moved.length && !hooks.changed.length && !purged.length) ctx.info('nothing to remove: ap-persist is not installed here');
    for (const line of reloadLines(reloads)) ctx.info(line);
  }
  if (disabled.reason) ctx.warn(`warning: ${disabled.units.join(', ')} not disabled (${disabled.reason}); links to the removed unit may be left in ${ctx.paths.generatedUnitsDir}: run '${disabled.command}' before removing the unit, or remove them by hand`);
  for (const m of restored.failed) ctx.warn(`error: could not put back s390-tools' ap-check callout ${m.to} from ${m.from}: ${m.reason}`);
  for (const k of hooks.kept) ctx.warn(`warning: kept ${k.path}: ${k.reason}`);
  for (const f of hooks.failed) ctx.warn(`error: libvirt's qemu hook ${f.path}: ${f.reason}`);
  return restored.failed.length || hooks.failed.length ? 1 : 0;
}
