// ap-persist import: take over what chzdev (41-ap.rules), mdevctl
// (etc/mdevctl.d/matrix) or the running kernel (sysfs) already hold.
// Precedence for one item from several sources: persistent over active,
// chzdev's masks over sysfs', mdevctl's definitions over sysfs' matrices.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from '../cli/context.js';
import { checkPersistent, newConflicts } from '../checks/check-host.js';
import { conflictKey, type ConflictList } from '../checks/conflicts.js';
import { InputError } from '../errors.js';
import { parseChzdevRules } from '../generate/chzdev-rules.js';
import { rootPath } from '../generate/host-files.js';
import { parseManifest, renderManifest, sha256 } from '../generate/manifest.js';
import { writeFileAtomic } from '../fsio/atomic.js';
import { withLock } from '../host/lock.js';
import type { HostView } from '../host/state.js';
import type { IdSet } from '../model/idset.js';
import { mdevLabel, sameMatrix, type HostMasks, type MdevDefinition, type StartMode } from '../model/mdev.js';
import { putMasks, putMdev, saveStore, type Store } from '../store/store.js';
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
}

interface Found {
  masks: Partial<Record<'apmask' | 'aqmask', { mask: IdSet; source: ImportSource }>>;
  mdevs: Map<string, { mdev: MdevDefinition; source: ImportSource }>;
}

function sources(from: string | undefined): ImportSource[] {
  if (from === undefined || from === 'all') return SOURCES;
  if ((SOURCES as string[]).includes(from)) return [from as ImportSource];
  throw new InputError(`--from '${from}' is not chzdev, mdevctl, sysfs or all`, { where: '--from' });
}

/** Reads each source; later sources fill only what earlier ones left open. */
function gather(ctx: Context, view: HostView, from: ImportSource[], startForSysfs: StartMode): Found {
  const found: Found = { masks: {}, mdevs: new Map() };
  for (const source of from) {
    if (source === 'chzdev') {
      const file = ctx.paths.chzdevRules;
      if (!existsSync(file)) continue;
      const parsed = parseChzdevRules(readFileSync(file, 'utf8'));
      const problem = parsed.problems[0];
      if (problem) {
        throw new InputError(problem.message, { where: `${file}:${problem.line}`, hint: 'fix the line (chzdev -t ap rewrites the file), or import --from mdevctl,sysfs' });
      }
      for (const key of ['apmask', 'aqmask'] as const) {
        const mask = parsed[key];
        if (mask && !found.masks[key]) found.masks[key] = { mask, source };
      }
    } else if (source === 'mdevctl') {
      for (const u of view.mdevctl.unreadable) ctx.warn(`warning: skipped ${u.path}: ${u.reason}`);
      for (const mdev of view.mdevctl.definitions) if (!found.mdevs.has(mdev.uuid)) found.mdevs.set(mdev.uuid, { mdev, source });
    } else {
      const live = view.live;
      for (const key of ['apmask', 'aqmask'] as const) {
        const mask = live.masks?.[key];
        if (mask && !found.masks[key]) found.masks[key] = { mask, source };
      }
      for (const a of live.mdevs) {
        if (found.mdevs.has(a.uuid)) continue;
        found.mdevs.set(a.uuid, { mdev: { uuid: a.uuid, adapters: a.adapters, domains: a.domains, controlDomains: a.controlDomains, start: startForSysfs }, source });
      }
    }
  }
  return found;
}

interface Plan {
  masks: HostMasks;
  mdevs: MdevDefinition[];
  /** UUIDs whose definition came from the import (new or replaced). */
  imported: Set<string>;
  /** Store mdevs the import would replace with another matrix. */
  differing: { uuid: string; text: string }[];
}

function plan(store: Store, found: Found): Plan {
  const p: Plan = { masks: { ...store.masks }, mdevs: [...store.mdevs], imported: new Set(), differing: [] };
  for (const key of ['apmask', 'aqmask'] as const) {
    const f = found.masks[key];
    if (f) p.masks[key] = f.mask;
  }
  for (const { mdev, source } of found.mdevs.values()) {
    const i = p.mdevs.findIndex((m) => m.uuid === mdev.uuid);
    if (i < 0) {
      p.mdevs.push(mdev);
      p.imported.add(mdev.uuid);
    } else if (!sameMatrix(p.mdevs[i]!, mdev)) {
      // Same UUID, other matrix: the store's stays unless the import is preferred.
      p.differing.push({ uuid: mdev.uuid, text: `mdev ${mdev.uuid}: store has ${describeMdev(p.mdevs[i]!)}; ${source} has ${describeMdev(mdev)}` });
      p.mdevs[i] = { ...mdev, name: p.mdevs[i]!.name, start: p.mdevs[i]!.start };
      p.imported.add(mdev.uuid);
    }
  }
  return p;
}

/**
 * What the final plan changes in the store, read off the plan itself (after
 * --prefer and the resolution) so that nothing is reported that was not done.
 */
function changesOf(store: Store, found: Found, p: Plan): { imports: string[]; demoted: string[] } {
  const imports: string[] = [];
  const demoted: string[] = [];
  for (const key of ['apmask', 'aqmask'] as const) {
    const now = p.masks[key];
    const was = store.masks[key];
    if (!now || was?.equals(now)) continue;
    imports.push(`${key} "${now.toRanges()}" from ${found.masks[key]!.source} (store: ${was ? `"${was.toRanges()}"` : 'not set'})`);
  }
  for (const m of p.mdevs) {
    const was = store.mdevs.find((s) => s.uuid === m.uuid);
    const source = found.mdevs.get(m.uuid)?.source;
    if (!was) imports.push(`mdev ${describeMdev(m)} from ${source}`);
    else if (!sameMatrix(was, m)) imports.push(`mdev ${describeMdev(m)} from ${source} (replaces the store's)`);
    else if (was.start !== m.start) demoted.push(`mdev ${mdevLabel(m)}: start ${m.start} (was ${was.start})`);
  }
  return { imports, demoted };
}

function conflictsOf(view: HostView, masks: HostMasks, mdevs: MdevDefinition[]): ConflictList {
  return checkPersistent({ ...view, store: { ...view.store, store: { masks, mdevs } } });
}

/**
 * The conflicts the host had before the import. mdevctl's definitions count
 * only when the import leaves them where they are; imported, they become the
 * store's, and a conflict with them is the import's doing.
 */
function baseline(view: HostView, from: ImportSource[]): ConflictList {
  return checkPersistent(from.includes('mdevctl') ? { ...view, mdevctl: { definitions: [], unreadable: [] } } : view);
}

function sameMasks(a: HostMasks, b: HostMasks): boolean {
  const same = (x: IdSet | undefined, y: IdSet | undefined): boolean => (x && y ? x.equals(y) : x === y);
  return same(a.apmask, b.apmask) && same(a.aqmask, b.aqmask);
}

/**
 * Resolves what the import introduces by making the losing side's mdevs
 * manual (defined, never started at boot), or, when the store wins over
 * imported masks, by keeping the store's masks. Each conflict is handled at
 * most once; what is left the caller refuses.
 */
function resolve(view: HostView, before: ConflictList, p: Plan, prefer: 'store' | 'imported'): string[] {
  const notes: string[] = [];
  const handled = new Set<string>();
  for (;;) {
    const c = newConflicts(before, conflictsOf(view, p.masks, p.mdevs)).conflicts.find((x) => !handled.has(conflictKey(x)));
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

export function importCommand(ctx: Context, opts: ImportOptions): number {
  const from = sources(opts.from);
  if (opts.prefer && opts.prefer !== 'store' && opts.prefer !== 'imported') {
    throw new InputError(`--prefer '${opts.prefer}' is neither store nor imported`, { where: '--prefer' });
  }
  return withLock(ctx.paths.lock, () => {
    const view = readHostView(ctx);
    const found = gather(ctx, view, from, opts.start ?? 'auto');
    const p = plan(view.store.store, found);
    if (p.differing.length && !opts.prefer) {
      if (ctx.json) {
        ctx.printJson({ ok: false, refused: 'differing', differing: p.differing.map((d) => ({ uuid: d.uuid, message: d.text })) });
        return 3;
      }
      ctx.warn('refused: the import would replace mdevs that the store defines differently; nothing was changed');
      for (const d of p.differing) ctx.warn(`  ${d.text}`);
      ctx.warn('  say which side wins: --prefer store (keep the store) or --prefer imported');
      return 3;
    }
    if (opts.prefer === 'store') {
      // The store's definitions stay as they are.
      for (const { uuid } of p.differing) {
        const i = p.mdevs.findIndex((m) => m.uuid === uuid);
        p.mdevs[i] = view.store.store.mdevs.find((m) => m.uuid === uuid)!;
        p.imported.delete(uuid);
      }
    }
    let notes: string[] = [];
    const before = baseline(view, from);
    const introduced = newConflicts(before, conflictsOf(view, p.masks, p.mdevs));
    if (introduced.conflicts.length) {
      if (!opts.prefer) {
        const code = reportRefusal(ctx, 'this import', introduced);
        if (!ctx.json) ctx.warn('  say which side wins: --prefer store or --prefer imported (the losing mdevs become start = manual)');
        return code;
      }
      notes = resolve(view, before, p, opts.prefer);
      const left = newConflicts(before, conflictsOf(view, p.masks, p.mdevs));
      if (left.conflicts.length) {
        const code = reportRefusal(ctx, `this import, even with --prefer ${opts.prefer},`, left);
        if (!ctx.json) ctx.warn('  no start = manual or kept mask resolves these; fix the store or the imported source first');
        return code;
      }
    }
    const { imports, demoted } = changesOf(view.store.store, found, p);
    if (!opts.dryRun) {
      for (const m of p.mdevs) {
        const previous = view.store.store.mdevs.find((s) => s.uuid === m.uuid);
        if (!previous || !sameMatrix(previous, m) || previous.start !== m.start) putMdev(view.store.doc, m, previous);
      }
      putMasks(view.store.doc, p.masks, view.store.store.masks);
      saveStore(view.store);
      // Taken over: the next generate may replace these files with its own.
      const adopted = [
        ...(from.includes('chzdev') && existsSync(ctx.paths.chzdevRules) ? [ctx.paths.chzdevRules] : []),
        ...(from.includes('mdevctl') ? view.mdevctl.definitions.map((m) => join(ctx.paths.mdevctlMatrixDir, m.uuid)) : []),
      ];
      adoptFiles(ctx, adopted);
    }
    if (ctx.json) ctx.printJson({ dry_run: Boolean(opts.dryRun), changes: [...imports, ...demoted], resolved: notes });
    else {
      // The notes say which mdevs were made manual and why; the demotions need no line of their own.
      const verb = opts.dryRun ? 'would import' : 'imported';
      if (imports.length + demoted.length === 0) ctx.info('nothing to import: the store already holds it');
      for (const c of imports) ctx.info(`${verb} ${c}`);
      for (const n of notes) ctx.info(`${opts.dryRun ? 'would have ' : ''}${n}`);
    }
    return 0;
  });
}

/**
 * Records chzdev's 41-ap.rules and mdevctl's definitions as taken over, so
 * that the next generate may replace them: what they hold is in the store now.
 */
function adoptFiles(ctx: Context, files: string[]): void {
  if (files.length === 0) return;
  const manifestPath = ctx.paths.generatedManifest;
  const entries = existsSync(manifestPath) ? parseManifest(readFileSync(manifestPath, 'utf8'), manifestPath) : [];
  const adopted = files.map((file) => ({ path: rootPath(ctx.paths, file), sha256: sha256(readFileSync(file, 'utf8')) }));
  const paths = new Set(adopted.map((a) => a.path));
  writeFileAtomic(manifestPath, renderManifest([...entries.filter((e) => !paths.has(e.path)), ...adopted]));
}
