// ap-persist generate: the store turned into the boot files (41-ap.rules in
// chzdev's format, the systemd wants links), written only where they changed,
// never over a file someone else wrote, then udev and systemd reloaded.
// The decisions and the words are pure (src/generate); this module reads and
// writes the disk and runs the daemons' reloads.

import { existsSync, readdirSync, rmdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from '../cli/context.js';
import { checkPersistent, persistentConfig, storeConfig } from '../checks/check-host.js';
import { HOST } from '../checks/conflicts.js';
import { conflictOwners } from '../checks/report.js';
import { ApPersistError, ConflictError, RuntimeError } from '../errors.js';
import { symlinkAtomic, writeFileAtomic, WriteBatch } from '../fsio/atomic.js';
import { PARALLEL_FROM } from '../fsio/fsync-files.js';
import { withLock } from '../host/lock.js';
import { saveStore, type LoadedStore } from '../store/store.js';
import { storeSnapshot } from '../store/snapshot.js';
import { codeVersion } from '../package-info.js';
import type { HostPaths } from '../host/paths.js';
import { readPending, type HostView } from '../host/state.js';
import { mdevLabel } from '../model/mdev.js';
import { chzdevRulesTemplate } from '../generate/assets.js';
import { MDEV_TEMPLATE } from '../generate/unit-names.js';
import { ownedDirs, rootPath, storeLabel, type HostEntry, type RootPath } from '../generate/host-files.js';
import { parseManifest, renderManifest, type ManifestEntry } from '../generate/manifest.js';
import { makePlan, type GeneratePlan } from '../generate/plan.js';
import { conflictsOf, stepPath, type Observed, type Step } from '../generate/reconcile.js';
import { readRegularFile } from '../fsio/read.js';
import { observe } from '../fsio/observe.js';
import { commandText, reloadCommands, reloadLines, type ReloadCommand, type ReloadOutcome } from '../generate/reload.js';
import { FILE_CONFLICT_HINT, fileConflictLines, generateJson, stepDiff, stepLines } from '../generate/report.js';
import { readHostView, reportRefusal } from './view.js';

export interface GenerateOptions {
  dryRun?: boolean;
  diff?: boolean;
  force?: boolean;
  /** commander's --no-reload sets this false. */
  reload?: boolean;
}

// ---- the disk

/**
 * Writes a file or a symlink so that a crash leaves the old one or the new one.
 * In a `batch` its directory is synced by the batch's sync(), not here.
 */
export function putEntry(paths: HostPaths, entry: HostEntry, batch?: WriteBatch): void {
  const path = paths.confined(entry.path);
  writing(path, () => {
    if (entry.kind === 'file') writeFileAtomic(path, entry.content, { mode: entry.mode, batch });
    else symlinkAtomic(path, entry.target, batch);
  });
}

/** `write` of `path`, its failure said as putEntry says it. */
function writing(path: string, write: () => void): void {
  try {
    write();
  } catch (err) {
    throw new RuntimeError(`cannot write: ${(err as Error).message}`, { where: path });
  }
}

function removeEntry(paths: HostPaths, path: RootPath, batch: WriteBatch): void {
  const abs = paths.confined(path);
  try {
    unlinkSync(abs);
  } catch (err) {
    throw new RuntimeError(`cannot remove: ${(err as Error).message}`, { where: paths.at(path) });
  }
  batch.changed(abs);
}

export function readManifest(paths: HostPaths): { text: string | undefined; entries: ManifestEntry[] } {
  if (!existsSync(paths.generatedManifest)) return { text: undefined, entries: [] };
  const text = readRegularFile(paths.generatedManifest, 'the record of generated files') ?? '';
  return { text, entries: parseManifest(text, paths.generatedManifest) };
}

/** Where the record and the pending list are written or removed: refused (thrown) where a link leads one out of the root. */
export function listPaths(paths: HostPaths): { record: string; pending: string } {
  const confined = (abs: string): string => paths.confined(rootPath(paths, abs));
  return { record: confined(paths.generatedManifest), pending: confined(paths.generatedPending) };
}

/** The record's entries; undefined when generate never ran here (no record at all). */
const recordOf = (m: { text: string | undefined; entries: ManifestEntry[] }): ManifestEntry[] | undefined => (m.text === undefined ? undefined : m.entries);

/** `view`: the host as the caller already read it, so it is not read twice. */
export function planGenerate(ctx: Context, view: HostView = readHostView(ctx)): GeneratePlan {
  const recorded = recordOf(readManifest(ctx.paths));
  const plan = makePlan({
    store: view.store.store,
    // Generate writes the store over any drift: check the store as it will be.
    check: checkPersistent(view, storeConfig(view.store.store)),
    drift: persistentConfig(view).drift,
    paths: ctx.paths,
    storeLabel: storeLabel(ctx.paths),
    renderChzdevRules: chzdevRulesTemplate(),
    recorded,
    pending: readPending(ctx.paths),
    observe: (p) => observe(ctx.paths.at(p)),
    exists: (p) => existsSync(ctx.paths.at(p)),
  });
  // The record is readable by all (0644): a store its admin made readable by root alone is not copied there.
  const readableByAll = ((statSync(ctx.paths.store, { throwIfNoEntry: false })?.mode ?? 0) & 0o004) !== 0;
  return view.store.exists && readableByAll ? { ...plan, storeSnapshot: storeSnapshot(codeVersion(), view.store.text, view.store.store) } : plan;
}

/** Does the steps, then records them; returns the paths that changed. */
/** A failure while applying a plan; `undone` when every file already changed was put back. */
class ApplyError extends RuntimeError {
  constructor(
    cause: ApPersistError,
    readonly undone: boolean,
    undoFailure?: string,
  ) {
    super(`${cause.message}${undone ? '' : `; and putting back what was already written failed: ${undoFailure}`}`, { where: cause.where, hint: cause.hint });
  }
}

/** Puts a path back as it was observed before the plan changed it. */
function restoreObserved(paths: HostPaths, path: RootPath, was: Observed, batch: WriteBatch): void {
  if (was.kind === 'absent') removeEntry(paths, path, batch);
  else if (was.kind === 'file') putEntry(paths, { kind: 'file', path, content: was.content, mode: 0o644 }, batch);
  else if (was.kind === 'symlink') putEntry(paths, { kind: 'symlink', path, target: was.target }, batch);
}

function applyPlan(ctx: Context, plan: GeneratePlan): RootPath[] {
  // Where the record and the list go, checked before anything changes: a link out of the root stops the run here.
  const lists = listPaths(ctx.paths);
  const changed: RootPath[] = [];
  const done: Exclude<Step, { op: 'keep' }>[] = [];
  // This run's alone: each directory listed once for leftovers and synced once (see WriteBatch).
  const batch = new WriteBatch();
  /** What the pending list named before this run wrote it (see namePending); undefined when it did not. */
  let earlierPending: ManifestEntry[] | undefined;
  try {
    // Every file's new content beside its place first, all made durable in one round (generate of
    // a thousand mdevs: a thousand fsyncs in parallel, not one after another); a failure here (a
    // full disk) has changed nothing yet.
    const staged = new Map<Step, string>();
    const files = plan.steps.flatMap((step) => (step.op === 'write' && step.entry.kind === 'file' ? [{ step, entry: step.entry }] : []));
    // A few (an edit's) synced as written, through their own descriptors; many in one round.
    const deferSync = files.length >= PARALLEL_FROM;
    for (const { step, entry } of files) {
      const path = ctx.paths.confined(entry.path);
      writing(path, () => batch.stage(path, entry.content, entry.mode, deferSync));
      staged.set(step, path);
    }
    batch.flush();
    earlierPending = namePending(ctx.paths, plan, lists.pending);
    for (const step of plan.steps) {
      if (step.op === 'keep') continue;
      const path = staged.get(step);
      if (path !== undefined) {
        writing(path, () => batch.commit(path));
      } else if (step.op === 'write') putEntry(ctx.paths, step.entry, batch);
      else removeEntry(ctx.paths, step.path, batch);
      done.push(step);
      changed.push(stepPath(step));
    }
  } catch (err) {
    batch.discard();
    if (!(err instanceof ApPersistError)) throw err;
    // All or nothing (a full disk half-way): what was changed goes back, newest first.
    try {
      for (const step of done.reverse()) restoreObserved(ctx.paths, stepPath(step), step.observed, batch);
    } catch (undo) {
      throw new ApplyError(err, false, undo instanceof ApPersistError ? undo.describe() : String(undo));
    } finally {
      batch.sync();
    }
    // Every file this run made is gone again: the list names no more than it did before.
    if (earlierPending) {
      if (earlierPending.length) writeFileAtomic(lists.pending, renderManifest(earlierPending), { mode: 0o644 });
      else rmSync(lists.pending, { force: true });
    }
    throw new ApplyError(err, true);
  }
  // Before the record: it must never name a file whose rename the disk could still lose.
  batch.sync();
  for (const dir of ownedDirs(ctx.paths)) {
    const abs = ctx.paths.at(dir);
    if (existsSync(abs) && readdirSync(abs).length === 0) rmdirSync(abs);
  }
  // Last: after a crash the old record still holds, and a rerun finds the new files already in place.
  const text = renderManifest(plan.manifest, plan.storeSnapshot);
  if (readManifest(ctx.paths).text !== text) writeFileAtomic(lists.record, text, { mode: 0o644 });
  // The record names them now.
  rmSync(lists.pending, { force: true });
  return changed;
}

/**
 * Names what this run writes as generate's, beside all that an earlier run
 * killed before its record named (a path may hold either run's content when
 * this one is killed too), durably and before any file is moved into place:
 * see paths.generatedPending. On a first run (no record) not what it adopts:
 * a file found in place stays chzdev's or mdevctl's. Returns what the list
 * named before; undefined when there is nothing to name.
 */
function namePending(paths: HostPaths, plan: GeneratePlan, list: string): ManifestEntry[] | undefined {
  const firstRun = !existsSync(paths.generatedManifest);
  const adopted = new Set(plan.manifest.flatMap((e) => (firstRun && e.adopted ? [e.path] : [])));
  const ours = new Set(plan.steps.flatMap((step) => (step.op === 'write' && !adopted.has(step.entry.path) ? [step.entry.path] : [])));
  if (ours.size === 0) return undefined;
  // As the plan read it, under the same lock.
  const earlier = [...plan.pending];
  const named = new Set(earlier.map((e) => JSON.stringify(e)));
  const entries = [...earlier, ...plan.manifest.filter((e) => ours.has(e.path) && !named.has(JSON.stringify(e)))];
  writeFileAtomic(list, renderManifest(entries), { mode: 0o644 });
  return earlier;
}

export type Generated =
  /** The store has persistent conflicts: nothing was written. */
  | { status: 'store-conflicts'; plan: GeneratePlan }
  /** Files someone else wrote or changed are in the way: nothing was written. */
  | { status: 'file-conflicts'; plan: GeneratePlan }
  /** Done (nothing `changed` in a dry run). */
  | { status: 'done'; plan: GeneratePlan; changed: RootPath[] };

/**
 * Plans and, unless `dryRun`, applies, holding the configuration lock that
 * chzdev takes when it writes 41-ap.rules. `force` overrides both refusals.
 */
export function generateFiles(ctx: Context, opts: { dryRun: boolean; force: boolean }): Generated {
  return withLock(ctx.paths.lock, (): Generated => {
    const plan = planGenerate(ctx);
    if (!opts.force && plan.check.conflicts.length) return { status: 'store-conflicts', plan };
    if (!opts.force && conflictsOf(plan.steps).length) return { status: 'file-conflicts', plan };
    return { status: 'done', plan, changed: opts.dryRun ? [] : applyPlan(ctx, plan) };
  });
}

// ---- edits persist at once

/** A host where generate has run (or install has): there an edit regenerates the boot files at once. */
export function hasBootFiles(paths: HostPaths): boolean {
  return existsSync(paths.generatedManifest) || existsSync(paths.generatedPending) || existsSync(join(paths.staticUnitsDir, MDEV_TEMPLATE));
}

export type Persisted =
  /** Only the store was written (--no-generate, or no boot files on this host). */
  | { status: 'store-only' }
  /** The store and the boot files it needs. */
  | { status: 'generated'; plan: GeneratePlan; changed: RootPath[] }
  /** The store was written; the boot files were not, for conflicts the store had before this edit. */
  | { status: 'store-conflicts'; plan: GeneratePlan }
  /** A peer changed boot files the regeneration would overwrite; `storeRestored`: the edit was undone. */
  | { status: 'drift'; plan: GeneratePlan; storeRestored: boolean };

/** Regenerates after the store was written, inside the caller's lock. */
export function persistGenerated(ctx: Context): Persisted {
  const g = generateFiles(ctx, { dryRun: false, force: false });
  if (g.status === 'file-conflicts') return { status: 'drift', plan: g.plan, storeRestored: false };
  return g.status === 'done' ? { status: 'generated', plan: g.plan, changed: g.changed } : { status: 'store-conflicts', plan: g.plan };
}

function restoreStore(loaded: LoadedStore, before: string | undefined): void {
  if (before === undefined) unlinkSync(loaded.path);
  else writeFileAtomic(loaded.path, before, { mode: 0o644, throughLink: true });
}

/**
 * Saves an edited store and, where the host has boot files, regenerates them
 * in the same lock, as chzdev persists at once. A peer's change in the way
 * (drift) puts the store back as it was: nothing is changed.
 */
export function saveAndGenerate(ctx: Context, loaded: LoadedStore, opts: { generate?: boolean }): Persisted {
  return withLock(ctx.paths.lock, (): Persisted => {
    const before = loaded.exists ? readRegularFile(loaded.path, 'the store') : undefined;
    const generates = opts.generate !== false && hasBootFiles(ctx.paths);
    // Where the record and the list will go, before the store changes: a link out of the root stops the edit here, whole.
    if (generates) listPaths(ctx.paths);
    saveStore(loaded);
    if (!generates) return { status: 'store-only' };
    let p: Persisted;
    try {
      p = persistGenerated(ctx);
    } catch (err) {
      if (!(err instanceof ApplyError)) throw err;
      // The boot files are as they were: so is the store, and nothing was changed.
      if (err.undone) {
        restoreStore(loaded, before);
        throw new RuntimeError(`${err.message}; nothing was changed (the store was put back)`, { where: err.where, hint: err.hint });
      }
      // Some boot files could not go back: the store keeps the change, and the admin is told.
      throw new RuntimeError(`the store has the change, but the boot files could not all be written: ${err.describe()}`, {
        where: loaded.path,
        hint: "the next boot would not have it: run 'ap-persist generate' once the cause is fixed",
      });
    }
    if (p.status === 'drift') {
      restoreStore(loaded, before);
      return { ...p, storeRestored: true };
    }
    return p;
  });
}

/**
 * What the admin hears after an edit: the files regenerated and reloaded, or
 * why not. Returns the exit code the edit ends with (3: refused for drift).
 */
export async function reportPersisted(ctx: Context, p: Persisted): Promise<number> {
  if (p.status === 'store-only') return 0;
  if (p.status === 'drift') {
    const lines = fileConflictLines(ctx.paths, p.plan).join('\n  ');
    if (!p.storeRestored) {
      ctx.warn(`warning: the store is updated, but the boot files were not regenerated: another tool changed some since ap-persist wrote them\n  ${lines}\n  ${FILE_CONFLICT_HINT}`);
      return 0;
    }
    ctx.warn(`refused: the edit would regenerate boot files that another tool changed; the store is unchanged\n  ${lines}`);
    ctx.warn(`  ${FILE_CONFLICT_HINT}; or edit the store alone with --no-generate`);
    return 3;
  }
  if (p.status === 'store-conflicts') {
    ctx.warn(`warning: the boot files were not regenerated: the store has ${p.plan.check.conflicts.length} conflict(s) from before this edit ('ap-persist check' lists them); 'ap-persist generate' writes them once they are fixed`);
    return 0;
  }
  generateWarnings(ctx, p.plan);
  const commands = reloadCommands(p.changed, ctx.paths);
  const reloads = await reload(ctx, commands);
  if (!ctx.json) {
    for (const line of stepLines(ctx.paths, p.plan.steps, { dryRun: false, verbose: ctx.verbose })) ctx.info(line);
    for (const line of reloadLines(reloads)) ctx.info(line);
  }
  return 0;
}

// ---- the daemons

/** Runs the reloads through `ctx.runner`, which only records them unless host commands run. */
export async function reload(ctx: Context, commands: readonly ReloadCommand[]): Promise<ReloadOutcome[]> {
  const out: ReloadOutcome[] = [];
  for (const c of commands) {
    const command = commandText(c);
    // A daemon that is not running has nothing to reload, and its command would fail.
    if (ctx.exec && !existsSync(ctx.paths.at(c.runningIf))) {
      out.push({ command, ran: false, skipped: `${c.file === 'udevadm' ? 'udev' : 'systemd'} is not running` });
      continue;
    }
    const r = await ctx.runner.run(c.file, c.args);
    if (!r.ran) {
      out.push({ command, ran: false, skipped: `not run under --root ${ctx.paths.root} (--exec runs it)` });
      continue;
    }
    if (r.exitCode !== 0) {
      throw new RuntimeError(`${command} failed: ${r.stderr.trim() || `exit ${r.exitCode}`}`, {
        hint: `the files are written; run '${command}' once the problem is fixed`,
      });
    }
    out.push({ command, ran: true });
  }
  return out;
}

// ---- refusals

/** `changed`: what was done all the same (install's package files), for the admin to know. */
export function fileConflictError(ctx: Context, plan: GeneratePlan, changed = 'nothing was changed'): ConflictError {
  const lines = fileConflictLines(ctx.paths, plan);
  return new ConflictError(`refused: ${lines.length} file(s) in the way that another tool wrote, changed or removed; ${changed}\n  ${lines.join('\n  ')}`, {
    hint: FILE_CONFLICT_HINT,
  });
}

/** The check report, then which auto mdevs would not start at boot. */
export function reportStoreRefusal(ctx: Context, plan: GeneratePlan, changed?: string): number {
  const code = reportRefusal(ctx, 'booting with this store', plan.check, changed);
  // The first store mdev of each UUID, as a search of the list would find it: one lookup per owner.
  const byUuid = new Map<string, (typeof plan.store.mdevs)[number]>();
  for (const d of plan.store.mdevs) if (!byUuid.has(d.uuid)) byUuid.set(d.uuid, d);
  const failing = conflictOwners(plan.check.conflicts)
    .filter((o) => o !== HOST)
    .map((uuid) => {
      const m = byUuid.get(uuid);
      return m ? mdevLabel(m) : uuid;
    });
  if (failing.length) ctx.warn(`at boot these mdevs would fail to start: ${failing.join(', ')}`);
  ctx.warn("fix the store ('ap-persist check' lists every conflict), or run 'ap-persist generate --force' to generate it anyway");
  return code;
}

/** What the admin must hear after a generate: units not installed, running mdevs the persistent masks give away. */
export function generateWarnings(ctx: Context, plan: GeneratePlan): void {
  for (const w of plan.check.warnings) if (w.kind === 'running-mdev-given-away') ctx.warn(`warning: ${w.message}`);
  if (plan.missingUnits.length === 0) return;
  const units = plan.missingUnits.map((u) => ctx.paths.at(u)).join(', ');
  ctx.warn(`warning: not installed: ${units}; run 'ap-persist install' (the generated links point there)`);
}

// ---- the command

export async function generate(ctx: Context, opts: GenerateOptions): Promise<number> {
  const dryRun = Boolean(opts.dryRun || opts.diff);
  const g = generateFiles(ctx, { dryRun, force: Boolean(opts.force) });
  if (g.status === 'store-conflicts') return reportStoreRefusal(ctx, g.plan);
  if (g.status === 'file-conflicts' && !dryRun) {
    if (ctx.json) {
      const files = generateJson(ctx.paths, g.plan);
      ctx.printJson({ dry_run: false, refused: true, written: [], unchanged: [], removed: [], file_conflicts: files.file_conflicts, reload: [] });
    }
    throw fileConflictError(ctx, g.plan);
  }
  const { plan } = g;
  if (opts.force && plan.check.conflicts.length) {
    ctx.warn(`warning: --force: generated from a store with ${plan.check.conflicts.length} conflict(s); 'ap-persist check' lists them`);
  }
  generateWarnings(ctx, plan);

  const wouldChange = plan.steps.filter((s) => s.op !== 'keep').map(stepPath);
  const commands = opts.reload === false ? [] : reloadCommands(g.status === 'done' && !dryRun ? g.changed : wouldChange, ctx.paths);
  const reloads = dryRun ? commands.map((c): ReloadOutcome => ({ command: commandText(c), ran: false, skipped: 'dry run' })) : await reload(ctx, commands);

  if (ctx.json) ctx.printJson({ dry_run: dryRun, refused: g.status === 'file-conflicts', ...generateJson(ctx.paths, plan), reload: reloads });
  else if (opts.diff) {
    for (const s of plan.steps) {
      const d = stepDiff(s);
      if (d) ctx.out(d.slice(0, -1));
    }
  } else {
    const say = dryRun ? ctx.out : ctx.info;
    for (const line of stepLines(ctx.paths, plan.steps, { dryRun, verbose: ctx.verbose })) say(line);
    if (wouldChange.length === 0) ctx.info('nothing to change: the generated files match the store');
    for (const line of dryRun ? commands.map((c) => `would run: ${commandText(c)}`) : reloadLines(reloads)) say(line);
  }
  if (g.status === 'file-conflicts') {
    ctx.warn(`generate would refuse: ${fileConflictLines(ctx.paths, plan).join('\n  ')}\n  ${FILE_CONFLICT_HINT}`);
    return 3;
  }
  return 0;
}
