// ap-persist import: take over what chzdev (41-ap.rules), mdevctl
// (etc/mdevctl.d/matrix) or the running kernel (sysfs) already hold.
// Precedence for one item from several sources: persistent over active,
// chzdev's masks over sysfs', mdevctl's definitions over sysfs' matrices.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from '../cli/context.js';
import { checkPersistent, newConflicts, persistentConfig } from '../checks/check-host.js';
import { sameMask } from '../checks/drift.js';
import { conflictKey, type ConflictList } from '../checks/conflicts.js';
import { InputError } from '../errors.js';
import { rootPath } from '../generate/host-files.js';
import { entriesByPath, fileEntry, holdsListed, renderManifest, type ManifestEntry } from '../generate/manifest.js';
import { writeFileAtomic } from '../fsio/atomic.js';
import { withLock } from '../host/lock.js';
import type { IdSet } from '../model/idset.js';
import { mdevLabel, sameMatrix, type HostMasks, type MdevDefinition, type StartMode } from '../model/mdev.js';
import { putMasks, putMdev, removeMdev, saveStore, unsetMask, type Store } from '../store/store.js';
import { hasBootFiles, listPaths, persistGenerated, reportPersisted, type Persisted } from './generate.js';
import { readPending, type HostView } from '../host/state.js';
import { describeMdev } from './mdev.js';
import { readHostView, reportRefusal } from './view.js';

export type ImportSource = 'chzdev' | 'mdevctl' | 'sysfs';
const SOURCES: ImportSource[] = ['chzdev', 'mdevctl', 'sysfs'];

export interface ImportOptions {
  from?: string;
  dryRun?: boolean;
  prefer?: 'store' | 'imported';
  /** Start mode for mdevs taken from sysfs, which has none. */
  start?: StartMode;
  /** commander's --no-generate sets this false. */
  generate?: boolean;
}

function sources(from: string | undefined): ImportSource[] {
  if (from === undefined || from === 'all') return SOURCES;
  const list = from.split(',').map((f) => f.trim());
  const bad = list.find((f) => !(SOURCES as string[]).includes(f));
  if (bad !== undefined) throw new InputError(`--from '${bad}' is not chzdev, mdevctl, sysfs or all`, { where: '--from' });
  return list as ImportSource[];
}

interface Plan {
  masks: HostMasks;
  mdevs: MdevDefinition[];
  /** UUIDs whose definition came from the import (new or replaced). */
  imported: Set<string>;
  /** Store mdevs a source defines differently with no record of which is newer. */
  differing: { uuid: string; text: string; mdev: MdevDefinition }[];
  /** Masks chzdev's file sets otherwise than the store, with no record of which is newer. */
  differingMasks: { key: 'apmask' | 'aqmask'; text: string; mask: IdSet | undefined }[];
  /** Where each imported item came from. */
  source: Map<string, ImportSource>;
  /** Files taken over (recorded as generate's) and records dropped (the peer removed the file). */
  adopt: string[];
  forget: string[];
}

/**
 * What each source says, against the store. A peer's change to a file
 * generate wrote (drift) is taken as it is: at boot it rules already. Where
 * nothing records which side is newer, the import fills only what the store
 * leaves open and asks (--prefer) about the rest. sysfs only ever fills.
 */
function plan(ctx: Context, view: HostView, from: ImportSource[], startForSysfs: StartMode): Plan {
  const store = view.store.store;
  const p: Plan = { masks: { ...store.masks }, mdevs: [...store.mdevs], imported: new Set(), differing: [], differingMasks: [], source: new Map(), adopt: [], forget: [] };
  const drift = persistentConfig(view).drift;
  const rulesFile = ctx.paths.chzdevRules;
  const undefinedByMdevctl = new Set<string>();
  if (from.includes('chzdev')) {
    for (const d of drift) {
      if (d.kind === 'rules-unreadable') {
        const first = d.problems[0]!;
        throw new InputError(first.message, { where: first.line ? `${rulesFile}:${first.line}` : rulesFile, hint: 'fix the file (chzdev -t ap rewrites it), or import --from mdevctl,sysfs' });
      }
      if (d.kind === 'rules-removed') {
        for (const c of d.changes) p.masks[c.key] = undefined;
        p.forget.push(d.path);
      }
      if (d.kind === 'masks') {
        for (const c of d.changes) {
          if (d.generated || !c.store) {
            p.masks[c.key] = c.disk;
            p.source.set(c.key, 'chzdev');
          } else p.differingMasks.push({ key: c.key, mask: c.disk, text: `${c.key}: store ${c.store.toRanges()}; chzdev's 41-ap.rules ${c.disk ? c.disk.toRanges() : 'not set'}` });
        }
      }
    }
    if (view.boot.rules.kind === 'file') p.adopt.push(rulesFile);
  }
  if (from.includes('mdevctl')) {
    for (const u of view.mdevctl.unreadable) ctx.warn(`warning: skipped ${u.path}: ${u.reason}`);
    for (const d of drift) {
      if (d.kind === 'mdev-unreadable') throw new InputError(`mdevctl's definition of ${d.label} cannot be read: ${d.reason}`, { where: ctx.paths.at(d.path) });
      if (d.kind === 'mdev-undefined') {
        undefinedByMdevctl.add(d.uuid);
        p.mdevs = p.mdevs.filter((m) => m.uuid !== d.uuid);
        p.source.set(d.uuid, 'mdevctl');
        p.forget.push(d.path);
      }
      if (d.kind === 'mdev-changed') {
        if (d.otherAttrs.length) {
          throw new InputError(
            `mdevctl's definition of mdev ${d.label} sets ${d.otherAttrs.map((a) => JSON.stringify(a)).join(', ')}, which the store cannot hold; importing it would change what the definition means`,
            { where: ctx.paths.at(d.path), hint: `remove the attribute (mdevctl modify -u ${d.uuid} --delattr --index N), or leave the mdev to mdevctl alone ('ap-persist mdev undefine ${d.uuid} --no-generate')` },
          );
        }
        const i = p.mdevs.findIndex((m) => m.uuid === d.uuid);
        if (d.generated) {
          p.mdevs[i] = d.disk;
          p.imported.add(d.uuid);
          p.source.set(d.uuid, 'mdevctl');
        } else p.differing.push({ uuid: d.uuid, mdev: d.disk, text: `mdev ${d.uuid}: store has ${describeMdev(p.mdevs[i]!)}; mdevctl has ${describeMdev(d.disk)}` });
      }
    }
    const known = new Set(store.mdevs.map((m) => m.uuid as string));
    for (const m of view.mdevctl.definitions) {
      const file = view.mdevctl.files.get(m.uuid);
      if (file?.device?.otherAttrs.length) {
        throw new InputError(`mdevctl's definition of mdev ${m.uuid} sets ${file.device.otherAttrs.map((a) => JSON.stringify(a)).join(', ')}, which the store cannot hold`, {
          where: ctx.paths.at(file.path),
          hint: `remove the attribute with mdevctl modify --delattr, or import --from chzdev,sysfs to leave mdevctl's definitions alone`,
        });
      }
      if (!known.has(m.uuid)) {
        p.mdevs.push(m);
        p.imported.add(m.uuid);
        p.source.set(m.uuid, 'mdevctl');
      }
      if (p.mdevs.some((x) => x.uuid === m.uuid)) p.adopt.push(join(ctx.paths.mdevctlMatrixDir, m.uuid));
    }
  }
  if (from.includes('sysfs')) {
    const live = view.live;
    for (const key of ['apmask', 'aqmask'] as const) {
      const mask = live.masks?.[key];
      // Only what neither the store nor a persistent source sets: the running masks never replace those.
      if (mask && !p.masks[key] && !p.differingMasks.some((d) => d.key === key)) {
        p.masks[key] = mask;
        p.source.set(key, 'sysfs');
      }
    }
    // An mdev mdevctl undefined stays up (undefine does not stop it): that undefine is what is taken, not the running mdev.
    const defined = new Set([...p.mdevs.map((m) => m.uuid as string), ...view.mdevctl.definitions.map((m) => m.uuid as string), ...undefinedByMdevctl]);
    for (const a of live.mdevs) {
      if (defined.has(a.uuid)) continue;
      p.mdevs.push({ uuid: a.uuid, adapters: a.adapters, domains: a.domains, controlDomains: a.controlDomains, start: startForSysfs });
      p.imported.add(a.uuid);
      p.source.set(a.uuid, 'sysfs');
    }
  }
  return p;
}

/**
 * What the final plan changes in the store, read off the plan itself (after
 * --prefer and the resolution) so that nothing is reported that was not done.
 */
function changesOf(store: Store, p: Plan): { imports: string[]; demoted: string[] } {
  const imports: string[] = [];
  const demoted: string[] = [];
  for (const key of ['apmask', 'aqmask'] as const) {
    const now = p.masks[key];
    const was = store.masks[key];
    if (sameMask(now, was)) continue;
    const from = p.source.get(key) ?? 'chzdev';
    if (!now) imports.push(`removal of ${key} from ${from} (store: "${was!.toRanges()}"; now not set: the kernel's value stays)`);
    else imports.push(`${key} "${now.toRanges()}" from ${from} (store: ${was ? `"${was.toRanges()}"` : 'not set'})`);
  }
  for (const m of p.mdevs) {
    const was = store.mdevs.find((s) => s.uuid === m.uuid);
    const source = p.source.get(m.uuid);
    if (!was) imports.push(`mdev ${describeMdev(m)} from ${source}`);
    else if (!sameMatrix(was, m)) imports.push(`mdev ${describeMdev(m)} from ${source} (replaces the store's)`);
    else if (was.start !== m.start) (p.imported.has(m.uuid) ? imports : demoted).push(`mdev ${mdevLabel(m)}: start ${m.start} (was ${was.start})${p.imported.has(m.uuid) ? ` from ${source}` : ''}`);
  }
  for (const was of store.mdevs) {
    if (!p.mdevs.some((m) => m.uuid === was.uuid)) imports.push(`undefine of mdev ${mdevLabel(was)} from mdevctl`);
  }
  return { imports, demoted };
}

/** The generate record once the import has taken over (or dropped) the files it read. */
function recordAfter(ctx: Context, view: HostView, p: Plan): Map<string, ManifestEntry> {
  const recorded = new Map(view.boot.recorded);
  for (const path of p.forget) recorded.delete(path);
  // What a generate killed before its record made is generate's, not a peer's.
  const pending = entriesByPath(readPending(ctx.paths));
  for (const file of p.adopt) {
    const path = rootPath(ctx.paths, file);
    const text = path === view.boot.rulesPath ? (view.boot.rules.kind === 'file' ? view.boot.rules.content : undefined) : view.mdevctl.files.get(path.split('/').pop()!)?.text;
    if (text === undefined) continue;
    // Taken in from chzdev or mdevctl: adopted, unless generate wrote it first.
    const before = view.boot.recorded.get(path);
    const generates = before ? !before.adopted : holdsListed(pending, path, { kind: 'file', content: text });
    recorded.set(path, { ...fileEntry(path, text), ...(generates ? {} : { adopted: true as const }) });
  }
  return recorded;
}

/** The persistent conflicts of the host as the import leaves it. */
function conflictsAfter(ctx: Context, view: HostView, p: Plan): ConflictList {
  const boot = { ...view.boot, recorded: recordAfter(ctx, view, p) };
  return checkPersistent({ ...view, store: { ...view.store, store: { masks: p.masks, mdevs: p.mdevs } }, boot });
}

/**
 * The conflicts the host had before the import. mdevctl's definitions count
 * only when the import leaves them where they are; imported, they become the
 * store's, and a conflict with them is the import's doing.
 */
function baseline(view: HostView, from: ImportSource[]): ConflictList {
  return checkPersistent(from.includes('mdevctl') ? { ...view, mdevctl: { files: view.mdevctl.files, definitions: [], unreadable: view.mdevctl.unreadable, outside: () => [] } } : view);
}

function sameMasks(a: HostMasks, b: HostMasks): boolean {
  return sameMask(a.apmask, b.apmask) && sameMask(a.aqmask, b.aqmask);
}

/**
 * Resolves what the import introduces by making the losing side's mdevs
 * manual (defined, never started at boot), or, when the store wins over
 * imported masks, by keeping the store's masks. Each conflict is handled at
 * most once; what is left the caller refuses.
 */
function resolve(ctx: Context, view: HostView, before: ConflictList, p: Plan, prefer: 'store' | 'imported'): string[] {
  const notes: string[] = [];
  const handled = new Set<string>();
  for (;;) {
    const c = newConflicts(before, conflictsAfter(ctx, view, p)).conflicts.find((x) => !handled.has(conflictKey(x)));
    if (!c) return notes;
    handled.add(conflictKey(c));
    const [a, b] = c.owners;
    if (c.kind === 'mdev-host' && prefer === 'store' && !p.imported.has(b.uuid)) {
      // The store's mdev wins over imported masks: keep the store's masks
      // (already kept, they cannot resolve it: the caller refuses).
      if (sameMasks(p.masks, view.store.store.masks)) return notes;
      p.masks = { ...view.store.store.masks };
      notes.push(`kept the store's masks: the imported ones would take APQN ${c.apqn.adapter}.${c.apqn.domain} from ${mdevLabel(b)}`);
      continue;
    }
    // The losing side's mdev becomes manual; if it cannot (the host, or already manual), the other one.
    const loser = (o: typeof a): boolean => (prefer === 'store' ? p.imported.has(o.uuid) : !p.imported.has(o.uuid));
    const first = c.kind === 'mdev-mdev' ? [a, b].find(loser) ?? b : b;
    const j = [first, first === a ? b : a]
      .map((o) => p.mdevs.findIndex((m) => m.uuid === o.uuid && m.start === 'auto'))
      .find((i) => i >= 0);
    if (j === undefined) return notes;
    p.mdevs[j] = { ...p.mdevs[j]!, start: 'manual' };
    notes.push(`made mdev ${mdevLabel(p.mdevs[j]!)} manual: ${c.message}`);
  }
}

export async function importCommand(ctx: Context, opts: ImportOptions): Promise<number> {
  const from = sources(opts.from);
  if (opts.prefer && opts.prefer !== 'store' && opts.prefer !== 'imported') {
    throw new InputError(`--prefer '${opts.prefer}' is neither store nor imported`, { where: '--prefer' });
  }
  const outcome = withLock(ctx.paths.lock, (): number | Persisted => {
    const view = readHostView(ctx);
    // Before the import records the files it takes over: only a host that had boot files gets them regenerated.
    const installed = hasBootFiles(ctx.paths);
    const p = plan(ctx, view, from, opts.start ?? 'auto');
    const differing = [...p.differingMasks.map((d) => ({ uuid: d.key, text: d.text })), ...p.differing];
    if (differing.length && !opts.prefer) {
      if (ctx.json) {
        ctx.printJson({ ok: false, refused: 'differing', differing: differing.map((d) => ({ uuid: d.uuid, message: d.text })) });
        return 3;
      }
      ctx.warn('refused: the store and the imported files differ, and nothing records which is newer; nothing was changed');
      for (const d of differing) ctx.warn(`  ${d.text}`);
      ctx.warn('  say which side wins: --prefer store (keep the store) or --prefer imported');
      return 3;
    }
    let notes: string[] = [];
    if (opts.prefer === 'store') {
      for (const d of p.differingMasks) notes.push(`kept the store's ${d.key} over chzdev's (--prefer store): ${d.text}`);
      for (const d of p.differing) notes.push(`kept the store's definition over mdevctl's (--prefer store): ${d.text}`);
    }
    if (opts.prefer === 'imported') {
      for (const d of p.differing) {
        p.mdevs[p.mdevs.findIndex((m) => m.uuid === d.uuid)] = d.mdev;
        p.imported.add(d.uuid);
        p.source.set(d.uuid, 'mdevctl');
      }
      for (const d of p.differingMasks) {
        p.masks[d.key] = d.mask;
        p.source.set(d.key, 'chzdev');
      }
    }
    const before = baseline(view, from);
    const introduced = newConflicts(before, conflictsAfter(ctx, view, p));
    if (introduced.conflicts.length) {
      if (!opts.prefer) {
        const code = reportRefusal(ctx, 'this import', introduced);
        if (!ctx.json) ctx.warn('  say which side wins: --prefer store or --prefer imported (the losing mdevs become start = manual)');
        return code;
      }
      notes.push(...resolve(ctx, view, before, p, opts.prefer));
      const left = newConflicts(before, conflictsAfter(ctx, view, p));
      if (left.conflicts.length) {
        const code = reportRefusal(ctx, `this import, even with --prefer ${opts.prefer},`, left);
        if (!ctx.json) ctx.warn('  no start = manual or kept mask resolves these; fix the store or the imported source first');
        return code;
      }
    }
    const { imports, demoted } = changesOf(view.store.store, p);
    if (ctx.json) ctx.printJson({ dry_run: Boolean(opts.dryRun), changes: [...imports, ...demoted], resolved: notes });
    else {
      // The notes say which mdevs were made manual and why; the demotions need no line of their own.
      const verb = opts.dryRun ? 'would import' : 'imported';
      if (imports.length + demoted.length === 0) ctx.info('nothing to import: the store already holds it');
      for (const c of imports) ctx.info(`${verb} ${c}`);
      for (const n of notes) ctx.info(`${opts.dryRun ? 'would have ' : ''}${n}`);
    }
    if (opts.dryRun) return 0;
    for (const was of view.store.store.mdevs) if (!p.mdevs.some((m) => m.uuid === was.uuid)) removeMdev(view.store.doc, was.uuid);
    for (const m of p.mdevs) {
      const previous = view.store.store.mdevs.find((s) => s.uuid === m.uuid);
      if (!previous || !sameMatrix(previous, m) || previous.start !== m.start) putMdev(view.store.doc, m, previous);
    }
    putMasks(view.store.doc, p.masks, view.store.store.masks);
    for (const key of ['apmask', 'aqmask'] as const) if (!p.masks[key]) unsetMask(view.store.doc, key);
    // Where the record goes, before the store changes: a link out of the root stops the import here, whole.
    const manifestPath = listPaths(ctx.paths).record;
    saveStore(view.store);
    // Taken over: the next generate may replace these files with its own; removed ones are no longer ours.
    // The record's snapshot of the store stays: a store import changed no longer matches it, and is read as always.
    const after = renderManifest([...recordAfter(ctx, view, p).values()], view.boot.storeSnapshot);
    if (after !== renderManifest([...view.boot.recorded.values()], view.boot.storeSnapshot) || (p.adopt.length && !existsSync(manifestPath))) writeFileAtomic(manifestPath, after, { mode: 0o644 });
    // The boot files follow at once where the host has them (the guard line back in 41-ap.rules, say).
    return opts.generate === false || !installed ? 0 : persistGenerated(ctx);
  });
  if (typeof outcome === 'number') return outcome;
  return reportPersisted(ctx, outcome);
}

