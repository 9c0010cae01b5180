// ap-persist install: the package's post-install step. Puts the shipped rules,
// units and mdevctl callout in place with the tool's path filled in, runs
// generate, and reloads udev and systemd once for both.

import { accessSync, chmodSync, constants, realpathSync, statSync } from 'node:fs';
import { untrustedOnTheWay } from '../fsio/trust.js';
import type { Context } from '../cli/context.js';
import { InputError, RuntimeError } from '../errors.js';
import { defaultBin, defaultNode, packageAssets } from '../generate/assets.js';
import type { FileEntry, RootPath } from '../generate/host-files.js';
import { reloadCommands, reloadLines } from '../generate/reload.js';
import { generateJson, stepLines } from '../generate/report.js';
import { checkBin, checkNode, staticEntries, SYSTEMCTL_CANDIDATES, type InstalledPrograms } from '../generate/static-files.js';
import { fileConflictError, generateFiles, generateWarnings, planGenerate, putEntry, reload, reportStoreRefusal } from './generate.js';
import { observe } from '../fsio/observe.js';
import { setApCheckAside, type MoveResult } from '../host/callouts.js';

export interface InstallOptions {
  bin?: string;
  /** The node binary the installed files run; default: the one running us. */
  node?: string;
  /** commander's --no-reload sets this false. */
  reload?: boolean;
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
  const unsafe = untrustedOnTheWay(real, ctx.paths.root);
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

export async function install(ctx: Context, opts: InstallOptions): Promise<number> {
  const programs: InstalledPrograms = {
    bin: checkBin(opts.bin ?? defaultBin()),
    node: checkNode(opts.node ?? defaultNode()),
    systemctl: findSystemctl(ctx),
  };
  // Reads and validates the store and the record of generated files before
  // anything is written: bad input (exit 2) changes no file. The plan itself
  // is made again below, once the static units it links to are in place.
  planGenerate(ctx);
  refuseUntrusted(ctx, programs.bin, '--bin');
  refuseUntrusted(ctx, programs.node, '--node');
  const statics = installStatic(ctx, staticEntries(packageAssets(), programs, ctx.paths));
  warnIfMissing(ctx, programs.bin, '--bin');
  warnIfMissing(ctx, programs.node, '--node');

  // Only now that ours is in place: mdevctl is never without a vfio_ap callout.
  const aside = setApCheckAside(ctx.paths);
  const g = generateFiles(ctx, { dryRun: false, force: false });
  const generated = g.status === 'done' ? g.changed : [];
  const commands = opts.reload === false ? [] : reloadCommands([...statics.written, ...generated], ctx.paths);
  const reloads = await reload(ctx, commands);
  asideErrors(ctx, aside);

  const staticLines = [...statics.written.map((p) => `installed ${ctx.paths.at(p)}`), ...asideLines(aside)];
  if (g.status === 'store-conflicts') {
    for (const line of staticLines) ctx.info(line);
    return reportStoreRefusal(ctx, g.plan);
  }
  if (g.status === 'file-conflicts') {
    for (const line of staticLines) ctx.info(line);
    throw fileConflictError(ctx, g.plan);
  }
  if (ctx.json) {
    ctx.printJson({
      installed: statics.written.map((p) => ctx.paths.at(p)),
      unchanged: statics.unchanged.map((p) => ctx.paths.at(p)),
      bin: programs.bin,
      node: programs.node,
      systemctl: programs.systemctl,
      generate: generateJson(ctx.paths, g.plan),
      reload: reloads,
      ap_check_set_aside: aside.moved,
      ap_check_not_set_aside: aside.failed,
    });
    return aside.failed.length ? 1 : 0;
  }
  for (const line of staticLines) ctx.info(line);
  for (const line of stepLines(ctx.paths, g.plan.steps, { dryRun: false, verbose: ctx.verbose })) ctx.info(line);
  if (statics.written.length === 0 && generated.length === 0 && aside.moved.length === 0) ctx.info('nothing to change: installed and generated files are up to date');
  for (const line of reloadLines(reloads)) ctx.info(line);
  generateWarnings(ctx, g.plan);
  return aside.failed.length ? 1 : 0;
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
