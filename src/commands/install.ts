// ap-persist install: the package's post-install step. Puts the shipped rules,
// units, preset and mdevctl callout in place with the tool's path filled in,
// runs generate, enables the units through the preset on the first install,
// and reloads udev and systemd once for all. libvirt's qemu hook goes to
// hooks/qemu.d/, or on libvirt older than 6.5 chains hooks/qemu
// (--libvirt-hooks, src/host/libvirt-hooks.ts). With --staged it is the
// package build's step instead: the static files alone, into a staging tree.

import { accessSync, chmodSync, constants, existsSync, realpathSync, statSync, unlinkSync } from 'node:fs';
import { followTrusted } from '../fsio/trust.js';
import { basename, dirname, join, relative } from 'node:path';
import type { Context } from '../cli/context.js';
import { InputError, RuntimeError } from '../errors.js';
import { defaultBin, defaultNode, packageAssets } from '../generate/assets.js';
import { rootPath, type FileEntry, type RootPath } from '../generate/host-files.js';
import { reloadCommands, reloadLines } from '../generate/reload.js';
import { generateJson, stepLines } from '../generate/report.js';
import { checkBin, checkNode, libvirtHookEntryPath, renderLibvirtHook, staticEntries, SYSTEMCTL_CANDIDATES, type InstalledPrograms } from '../generate/static-files.js';
import { fileConflictError, generateFiles, generateWarnings, planGenerate, putEntry, reload, reportStoreRefusal } from './generate.js';
import { observe } from '../fsio/observe.js';
import { setApCheckAside, type MoveResult } from '../host/callouts.js';
import {
  chainQemuHook,
  CHAINED_HOOK,
  checkRequest,
  chooseMode,
  libvirtVersion,
  readHookRecord,
  unchainQemuHook,
  type ChainOutcome,
  type HookRecord,
  type LibvirtHookMode,
  type LibvirtHookRequest,
  type LibvirtVersion,
} from '../host/libvirt-hooks.js';
import { writeFileAtomic } from '../fsio/atomic.js';
import { PRESET_STATE, presetEnables, presetStateText, systemctlArgs } from '../generate/enable.js';
import { hostRunner, type CommandRunner } from '../runtime/commands.js';
import type { PackageAssets } from '../generate/static-files.js';
import { BUNDLES } from '../cli/parts.js';

export interface InstallOptions {
  /** A package build: only the package's static files, into the tree under --root. */
  staged?: boolean;
  bin?: string;
  /** The node binary the installed files run; default: the one running us. */
  node?: string;
  /** commander's --no-reload sets this false. */
  reload?: boolean;
  /** Where libvirt's qemu hook goes: auto (the default), qemu.d, chain or none. */
  libvirtHooks?: string;
}

/** Package files are ours by name: replaced whenever content or mode differ. */
function installStatic(ctx: Context, entries: readonly FileEntry[]): { written: RootPath[]; unchanged: RootPath[] } {
  const written: RootPath[] = [];
  const unchanged: RootPath[] = [];
  for (const entry of entries) {
    const path = ctx.paths.at(entry.path);
    const now = observe(path);
    const sameMode = now.kind === 'file' && (statSync(path).mode & 0o7777) === entry.mode;
    if (now.kind === 'file' && now.content === entry.content && sameMode) {
      unchanged.push(entry.path);
      continue;
    }
    putEntry(ctx.paths, entry);
    try {
      // writeFileAtomic keeps an existing file's mode; the callout must be executable.
      chmodSync(path, entry.mode);
    } catch (err) {
      throw new RuntimeError(`cannot set mode ${entry.mode.toString(8)}: ${(err as Error).message}`, { where: path });
    }
    written.push(entry.path);
  }
  return { written, unchanged };
}

function accessible(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

const executable = (path: string): boolean => accessible(path, constants.X_OK);

/**
 * Rules, units and the callout run these as root: a program (or a directory
 * above it) another user can change would let that user run code as root.
 */
function refuseUntrusted(ctx: Context, path: string, option: '--bin' | '--node'): void {
  const onTarget = ctx.paths.at(path);
  let real: string;
  try {
    real = realpathSync(onTarget);
  } catch {
    return; // not there (a staged install): warnIfMissing says so
  }
  // Every link on the way, and for the tool the bundles it loads beside it (scripts/bundle.ts).
  const sibling = option === '--bin' ? BUNDLES.filter((n) => n !== basename(real)).map((n) => join(dirname(real), n)).filter((p) => existsSync(p)) : [];
  const unsafe = [onTarget, ...sibling].map((p) => followTrusted(p, ctx.paths.root)).find((f): f is { unsafe: string } => 'unsafe' in f)?.unsafe;
  if (unsafe) {
    throw new InputError(`${onTarget}${real !== onTarget ? ` (${real})` : ''} would run as root, but ${unsafe} can be changed by a user other than root`, {
      where: option,
      hint: `install the program where only root can write (e.g. /usr/lib/ap-persist), or make ${unsafe} root's and writable by root only`,
    });
  }
}

/** node must be executable; the tool only readable, node runs it. */
function warnIfMissing(ctx: Context, path: string, option: '--bin' | '--node'): void {
  const onTarget = ctx.paths.at(path);
  const ok = option === '--node' ? executable(onTarget) : accessible(onTarget, constants.R_OK);
  if (!ok) ctx.warn(`warning: ${onTarget} is not ${option === '--node' ? 'an executable' : 'a readable'} file; the units and callout run it (give the right one with ${option})`);
}

/** systemctl as the target system has it; the usual place when the root has none yet (a staged install). */
function findSystemctl(ctx: Context): string {
  return SYSTEMCTL_CANDIDATES.find((p) => executable(ctx.paths.at(p))) ?? SYSTEMCTL_CANDIDATES[0]!;
}

/** What became of enabling the units through the preset. */
export interface EnableOutcome {
  /** The units the preset names. */
  units: string[];
  /** The systemctl command, as run or as it would run. */
  command: string;
  /** applied: run now; done-before: an earlier install applied it (the admin's choices since stand); not-applied: why in `reason`. */
  state: 'applied' | 'done-before' | 'not-applied';
  reason?: string;
}

/**
 * systemctl for enabling and disabling: on `/` the context's runner (the
 * running manager); under any other root `systemctl --root`, which only
 * changes links under that root, so it runs even where host commands are
 * only reported.
 */
export function unitFileRunner(ctx: Context): CommandRunner {
  return ctx.paths.isRealRoot || ctx.exec ? ctx.runner : hostRunner();
}

/** The units the package's preset files enable. */
export function presetUnits(assets: PackageAssets): string[] {
  return [...new Set(assets.presets.flatMap((p) => presetEnables(p.text)))];
}

/**
 * `systemctl preset` on the preset's units, once: on the first install
 * (no record of an earlier one), as the distributions' package scripts do,
 * so an admin's `systemctl disable` survives reinstalls and upgrades.
 */
async function applyPreset(ctx: Context, units: string[]): Promise<EnableOutcome> {
  const args = systemctlArgs(ctx.paths, 'preset', units);
  const command = ['systemctl', ...args].join(' ');
  const state = ctx.paths.at(PRESET_STATE);
  if (units.length === 0) return { units, command, state: 'done-before' };
  if (existsSync(state)) return { units, command, state: 'done-before' };
  const r = await unitFileRunner(ctx).run('systemctl', args);
  if (!r.ran) return { units, command, state: 'not-applied', reason: `not run under --root ${ctx.paths.root} (--exec runs it)` };
  if (r.exitCode === 127) return { units, command, state: 'not-applied', reason: 'systemctl is not installed here' };
  if (r.exitCode !== 0) {
    throw new RuntimeError(`${command} failed: ${r.stderr.trim() || `exit ${r.exitCode}`}`, { hint: `the files are installed; run '${command}' once the problem is fixed` });
  }
  writeFileAtomic(state, presetStateText(units), { mode: 0o644 });
  return { units, command, state: 'applied' };
}

/** --staged: the package's files for a package build, nothing of the host's (no store, record, lock, state, ap-check, systemctl). */
function installStaged(ctx: Context, programs: InstalledPrograms, request: LibvirtHookRequest): number {
  // Chaining moves the target system's own hooks/qemu: only the post-install step can.
  if (request === 'chain') {
    throw new InputError('--staged cannot chain hooks/qemu: it is the target system\'s', {
      where: '--libvirt-hooks',
      hint: "stage with --libvirt-hooks none and let the post-install 'ap-persist install --libvirt-hooks chain' chain it",
    });
  }
  const statics = installStatic(ctx, staticEntries(packageAssets(), programs, ctx.paths, request !== 'none'));
  if (ctx.json) {
    ctx.printJson({
      staged: true,
      installed: statics.written.map((p) => ctx.paths.at(p)),
      unchanged: statics.unchanged.map((p) => ctx.paths.at(p)),
      bin: programs.bin,
      node: programs.node,
      systemctl: programs.systemctl,
    });
    return 0;
  }
  for (const p of statics.written) ctx.info(`installed ${ctx.paths.at(p)}`);
  if (statics.written.length === 0) ctx.info('nothing to change: the package files are up to date');
  ctx.info(`staged: the package's files only; on the target system, 'ap-persist install' (the post-install step) sets s390-tools' ap-check aside, generates the boot files from the store, enables ${presetUnits(packageAssets()).join(', ')} through the preset once, and reloads`);
  return 0;
}

export async function install(ctx: Context, opts: InstallOptions): Promise<number> {
  const programs: InstalledPrograms = {
    bin: checkBin(opts.bin ?? defaultBin()),
    node: checkNode(opts.node ?? defaultNode()),
    systemctl: findSystemctl(ctx),
  };
  const request = checkRequest(opts.libvirtHooks);
  // A package build's tree holds neither node nor the store, and its files are
  // the build user's until the package is made: the post-install step checks them.
  if (opts.staged) return installStaged(ctx, programs, request);
  // Reads and validates the store and the record of generated files before
  // anything is written: bad input (exit 2) changes no file. The plan itself
  // is made again below, once the static units it links to are in place.
  planGenerate(ctx);
  const hookRecord = readHookRecord(ctx.paths);
  refuseUntrusted(ctx, programs.bin, '--bin');
  refuseUntrusted(ctx, programs.node, '--node');
  const assets = packageAssets();
  const libvirt = request === 'auto' ? await libvirtVersion(ctx.runner) : undefined;
  const mode = chooseMode(request, libvirt);
  // The old place goes first: libvirt 6.5 and newer would run a qemu.d hook and a chaining hooks/qemu both.
  const hooks = mode === 'chain' ? emptyHooks() : unchainQemuHook(ctx.paths, hookRecord);
  if (mode !== 'qemu.d') removeQemuDHook(ctx, hooks);
  const statics = installStatic(ctx, staticEntries(assets, programs, ctx.paths, mode === 'qemu.d'));
  if (mode === 'chain') mergeHooks(hooks, chainHook(ctx, hookRecord, assets, programs));
  warnIfMissing(ctx, programs.bin, '--bin');
  warnIfMissing(ctx, programs.node, '--node');
  if (mode !== 'none') warnIfConfined(ctx, programs.node);

  // Only now that ours is in place: mdevctl is never without a vfio_ap callout.
  const aside = setApCheckAside(ctx.paths);
  const g = generateFiles(ctx, { dryRun: false, force: false });
  const generated = g.status === 'done' ? g.changed : [];
  // The units are in place: enable what the preset says (once), whatever generate found.
  const enabled = await applyPreset(ctx, presetUnits(assets));
  // The preset made links under etc/systemd/system (systemctl ran with --no-reload on `/`):
  // counted as a change there, so that systemd is reloaded once with the rest.
  const enabledLinks = enabled.state === 'applied' ? [rootPath(ctx.paths, `${ctx.paths.generatedUnitsDir}/${enabled.units[0]}`)] : [];
  const commands = opts.reload === false ? [] : reloadCommands([...statics.written, ...hooks.changed, ...generated, ...enabledLinks], ctx.paths);
  const reloads = await reload(ctx, commands);
  asideErrors(ctx, aside);
  hookWarnings(ctx, hooks);
  const failed = aside.failed.length + hooks.failed.length ? 1 : 0;

  const staticLines = [...statics.written.map((p) => `installed ${ctx.paths.at(p)}`), ...hookLines(hooks, mode, libvirt), ...asideLines(aside), ...enableLines(enabled)];
  // Refused to generate: the package's files above are in place all the same, and install says so.
  const done = statics.written.length ? `no boot file was generated (the ${statics.written.length} package file(s) above were installed)` : 'no boot file was generated';
  if (g.status === 'store-conflicts') {
    for (const line of staticLines) ctx.info(line);
    enableWarning(ctx, enabled);
    return reportStoreRefusal(ctx, g.plan, done);
  }
  if (g.status === 'file-conflicts') {
    for (const line of staticLines) ctx.info(line);
    enableWarning(ctx, enabled);
    throw fileConflictError(ctx, g.plan, done);
  }
  if (ctx.json) {
    ctx.printJson({
      installed: statics.written.map((p) => ctx.paths.at(p)),
      unchanged: statics.unchanged.map((p) => ctx.paths.at(p)),
      bin: programs.bin,
      node: programs.node,
      systemctl: programs.systemctl,
      generate: generateJson(ctx.paths, g.plan),
      enable: { units: enabled.units, command: enabled.command, state: enabled.state, ...(enabled.reason ? { reason: enabled.reason } : {}) },
      reload: reloads,
      ap_check_set_aside: aside.moved,
      ap_check_not_set_aside: aside.failed,
      libvirt_hooks: hooksJson(mode, request, libvirt, hooks),
    });
    enableWarning(ctx, enabled);
    return failed;
  }
  for (const line of staticLines) ctx.info(line);
  for (const line of stepLines(ctx.paths, g.plan.steps, { dryRun: false, verbose: ctx.verbose })) ctx.info(line);
  if (statics.written.length === 0 && hooks.changed.length === 0 && generated.length === 0 && aside.moved.length === 0 && enabled.state !== 'applied') {
    ctx.info('nothing to change: installed and generated files are up to date');
  }
  for (const line of reloadLines(reloads)) ctx.info(line);
  enableWarning(ctx, enabled);
  generateWarnings(ctx, g.plan);
  return failed;
}

/** Where Debian's AppArmor profile of libvirtd lets its hooks run programs from. */
const LIBVIRT_HOOK_EXEC_DIRS = ['/usr/bin', '/usr/sbin', '/bin', '/sbin'];

/**
 * Debian's libvirtd runs its hooks under its AppArmor profile, which lets them
 * run programs only from the standard bin directories: a node elsewhere
 * (/usr/local, /opt) passes the hook's own test and is then denied, and every
 * vfio-ap guest fails to start with "Permission denied".
 */
function warnIfConfined(ctx: Context, node: string): void {
  if (!existsSync(ctx.paths.at('etc/apparmor.d/usr.sbin.libvirtd'))) return;
  let real = node;
  try {
    // As the target system resolves it (under --root: within the root).
    real = ctx.paths.isRealRoot ? realpathSync(node) : `/${relative(ctx.paths.root, realpathSync(ctx.paths.at(node)))}`;
  } catch {
    // missing: warnIfMissing said so
  }
  if (LIBVIRT_HOOK_EXEC_DIRS.includes(dirname(real))) return;
  ctx.warn(
    `warning: libvirt's AppArmor profile (/etc/apparmor.d/usr.sbin.libvirtd) lets its hooks run programs from ${LIBVIRT_HOOK_EXEC_DIRS.join(', ')} only, and node is ${real}: the qemu hook would be denied and every vfio-ap guest refused; give --node /usr/bin/node, or allow it in /etc/apparmor.d/local/usr.sbin.libvirtd`,
  );
}

// ---- libvirt's qemu hook outside qemu.d/

const emptyHooks = (): ChainOutcome => ({ written: [], removed: [], chained: [], restored: [], kept: [], failed: [], changed: [] });

function mergeHooks(into: ChainOutcome, from: ChainOutcome): void {
  for (const key of Object.keys(into) as (keyof ChainOutcome)[]) (into[key] as unknown[]).push(...from[key]);
}

/** hooks/qemu as ours: alone, or running the admin's one first. */
function chainHook(ctx: Context, record: HookRecord | undefined, assets: PackageAssets, programs: InstalledPrograms): ChainOutcome {
  return chainQemuHook(ctx.paths, record, renderLibvirtHook(assets, programs), renderLibvirtHook(assets, programs, basename(CHAINED_HOOK)));
}

/** The qemu.d hook is ours by name; with the hook elsewhere (or nowhere) it goes. */
function removeQemuDHook(ctx: Context, hooks: ChainOutcome): void {
  const path = libvirtHookEntryPath(ctx.paths);
  if (observe(ctx.paths.at(path)).kind === 'absent') return;
  try {
    unlinkSync(ctx.paths.confined(path));
  } catch (err) {
    throw new RuntimeError(`cannot remove: ${(err as Error).message}`, { where: ctx.paths.at(path) });
  }
  hooks.removed.push(ctx.paths.at(path));
  hooks.changed.push(path);
}

function hookLines(hooks: ChainOutcome, mode: LibvirtHookMode, libvirt: LibvirtVersion | undefined): string[] {
  const why = libvirt && mode === 'chain' ? ` (${libvirt.daemon} is libvirt ${libvirt.version}: before 6.5 libvirt runs no qemu.d/)` : '';
  const chained = new Set(hooks.chained.map((m) => m.from));
  return [
    ...hooks.restored.map((m) => `put back libvirt's qemu hook ${m.to} (ap-persist's hook had chained it)`),
    ...hooks.removed.map((p) => `removed ${p}`),
    ...hooks.chained.map(
      (m) =>
        `chained libvirt's qemu hook ${m.from}${why}: kept unchanged as ${m.to}; ap-persist's ${m.from} runs it first, as libvirt did (same arguments and input), then its own part; 'ap-persist uninstall' puts it back`,
    ),
    ...hooks.written.filter((p) => !chained.has(p)).map((p) => `installed ${p}${why}`),
  ];
}

function hookWarnings(ctx: Context, hooks: ChainOutcome): void {
  for (const k of hooks.kept) ctx.warn(`warning: kept ${k.path}: ${k.reason}`);
  for (const f of hooks.failed) ctx.warn(`error: libvirt's qemu hook ${f.path}: ${f.reason}`);
}

function hooksJson(mode: LibvirtHookMode, request: LibvirtHookRequest, libvirt: LibvirtVersion | undefined, hooks: ChainOutcome): unknown {
  const { changed: _changed, ...rest } = hooks;
  return { mode, requested: request, libvirt: libvirt ?? null, ...rest };
}

function enableLines(e: EnableOutcome): string[] {
  return e.state === 'applied' ? [`enabled ${e.units.join(', ')} as the preset says: ran ${e.command}`] : [];
}

/** Not enabled: the boot would not wait for the mdevs. Said, with the command that does it. */
function enableWarning(ctx: Context, e: EnableOutcome): void {
  if (e.state === 'not-applied') ctx.warn(`warning: ${e.units.join(', ')} not enabled (${e.reason}); run '${e.command}' (an install that runs it does it once)`);
}

function asideLines(aside: MoveResult): string[] {
  return aside.moved.map(
    (m) => `set aside s390-tools' ap-check callout ${m.from} -> ${m.to}: mdevctl takes the answer of the first callout, and ap-persist's refuses everything ap-check refuses; 'ap-persist uninstall' puts it back`,
  );
}

/** A callout left in place is an error (exit 1): mdevctl may still ask it first. */
function asideErrors(ctx: Context, aside: MoveResult): void {
  for (const m of aside.failed) {
    ctx.warn(`error: could not set aside s390-tools' ap-check callout ${m.from}: ${m.reason}; mdevctl may ask it instead of ap-persist (move it out of the callout directory by hand)`);
  }
}
