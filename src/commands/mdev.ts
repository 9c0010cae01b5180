// mdev define / modify / undefine / list: edits of the store, checked first.

import { randomUUID } from 'node:crypto';
import type { Context } from '../cli/context.js';
import { autostartMdevs, guestFindings, mdevWarnings, persistentConfig, persistentMasks, type CheckWarning } from '../checks/check-host.js';
import { checkClaim } from '../checks/conflicts.js';
import { InputError } from '../errors.js';
import { guestsUsing, libvirtGuests, type Guest } from '../host/libvirt.js';
import { withLock } from '../host/lock.js';
import type { HostPaths } from '../host/paths.js';
import type { HostView } from '../host/state.js';
import { parseIdList } from '../model/idlist.js';
import { IdSet } from '../model/idset.js';
import { compareMdevs, compareNames, isStartMode, mdevLabel, type MdevDefinition, type StartMode } from '../model/mdev.js';
import { hexRanges } from '../model/apqn.js';
import { parseUuid, type Uuid } from '../model/uuid.js';
import { putMdev, removeMdev } from '../store/store.js';
import { findMdevByRef } from './mdev-ref.js';
import { reportPersisted, saveAndGenerate, type Persisted } from './generate.js';
import type { ActiveMdev } from '../sysfs/ap-host.js';
import { printWarnings, readHostView, reportRefusal } from './view.js';

/** Edits regenerate the boot files at once; commander's --no-generate sets `generate` false. */
export interface EditOptions {
  generate?: boolean;
}

export interface MdevOptions extends EditOptions {
  adapters?: string;
  domains?: string;
  controlDomains?: string;
  name?: string;
  start?: string;
}

function ids(text: string | undefined, option: string, what: string, allowEmpty: boolean): IdSet | undefined {
  if (text === undefined) return undefined;
  try {
    return parseIdList(text, what, allowEmpty);
  } catch (err) {
    if (err instanceof InputError) throw new InputError(err.message, { where: option, hint: err.hint });
    throw err;
  }
}

function startMode(text: string | undefined): StartMode | undefined {
  if (text === undefined || isStartMode(text)) return text;
  throw new InputError(`'${text}' is not auto, manual or guest`, { where: '--start', hint: 'use --start auto, --start manual or --start guest' });
}

function mdevName(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  // Quotes and backslashes too: the store's INI reading would take them for quoting and escapes, another name.
  if (/[;#\n\r"'\\]/.test(text)) throw new InputError(`the name '${text}' contains ; # a quote, a backslash or a line break`, { where: '--name', hint: 'choose a name without them' });
  // Empty: modify takes the name away.
  return text.trim();
}

function findDefined(view: HostView, ref: string): { uuid: Uuid; mdev: MdevDefinition } {
  const mdev = findMdevByRef(view.store.store.mdevs, ref, view.store.path);
  if (!mdev) {
    throw new InputError(`no mdev ${parseUuid(ref)} in the store`, {
      where: view.store.path,
      hint: "'ap-persist mdev list' shows the defined mdevs; 'ap-persist mdev define' adds one",
    });
  }
  return { uuid: mdev.uuid, mdev };
}

/** A name another mdev of the store has already: allowed (the store may be edited by hand), but said. */
function warnSharedName(ctx: Context, view: HostView, mdev: MdevDefinition): void {
  if (!mdev.name) return;
  const others = view.store.store.mdevs.filter((m) => m.uuid !== mdev.uuid && m.name === mdev.name);
  if (others.length && !ctx.quiet) {
    ctx.warn(`warning: the name '${mdev.name}' is also that of mdev ${others.map((m) => m.uuid).join(', ')}; commands given this name will ask for the UUID`);
  }
}

/** Whether an edit went through: an exit code when it was refused, else how it was persisted. */
type Edited = number | Persisted;

function refusedForDrift(p: Edited): boolean {
  return typeof p !== 'number' && p.status === 'drift' && p.storeRestored;
}

/** After the lock: the boot files' report, or the refusal's code. */
async function finish(ctx: Context, edited: Edited): Promise<number> {
  return typeof edited === 'number' ? edited : reportPersisted(ctx, edited);
}

/** Checks the edited store; conflicts that involve `uuid` refuse the edit. Then saves and regenerates. */
function commit(ctx: Context, view: HostView, mdev: MdevDefinition, previous: MdevDefinition | undefined, what: string, opts: EditOptions): Edited {
  putMdev(view.store.doc, mdev, previous);
  let guestWarnings: CheckWarning[] = [];
  if (mdev.start === 'auto') {
    // Only what this mdev meets: other auto mdevs (ours and mdevctl's) and the persistent masks.
    const config = persistentConfig(view);
    const others = autostartMdevs(config, view.mdevctl).filter((m) => m.uuid !== mdev.uuid);
    const found = checkClaim(mdev, others, persistentMasks(config, view.live), 'persistent');
    if (found.conflicts.length) return reportRefusal(ctx, what, found);
  } else if (mdev.start === 'guest') {
    // The persistent masks refuse it; an auto mdev on the same APQNs is said.
    const config = persistentConfig(view);
    const found = guestFindings([mdev], autostartMdevs(config, view.mdevctl), persistentMasks(config, view.live));
    if (found.conflicts.conflicts.length) return reportRefusal(ctx, what, found.conflicts);
    guestWarnings = found.warnings;
  }
  const persisted = saveAndGenerate(ctx, view.store, opts);
  if (refusedForDrift(persisted)) return persisted;
  if (ctx.json) ctx.printJson(mdevJson(mdev, 'store', view.live.mdevs.some((a) => a.uuid === mdev.uuid)));
  printWarnings(ctx, [...guestWarnings, ...mdevWarnings([mdev], view.live, 'persistent')]);
  warnSharedName(ctx, view, mdev);
  return persisted;
}

export async function mdevDefine(ctx: Context, uuidText: string | undefined, opts: MdevOptions): Promise<number> {
  const adapters = ids(opts.adapters, '--adapters', 'adapter', false);
  const domains = ids(opts.domains, '--domains', 'domain', false);
  if (!adapters || !domains) {
    throw new InputError('mdev define needs --adapters and --domains', { hint: 'e.g. ap-persist mdev define --adapters 5,6 --domains 4,0xab' });
  }
  const generated = uuidText === undefined;
  const uuid = generated ? (randomUUID() as Uuid) : parseUuid(uuidText);
  const mdev: MdevDefinition = {
    uuid,
    name: mdevName(opts.name) || undefined,
    adapters,
    domains,
    controlDomains: ids(opts.controlDomains, '--control-domains', 'control domain', true) ?? IdSet.empty(),
    start: startMode(opts.start) ?? 'auto',
  };
  const edited = withLock(ctx.paths.lock, (): Edited => {
    const view = readHostView(ctx);
    if (view.store.store.mdevs.some((m) => m.uuid === uuid)) {
      throw new InputError(`mdev ${uuid} is already defined`, { where: view.store.path, hint: `use 'ap-persist mdev modify ${uuid}' to change it` });
    }
    const result = commit(ctx, view, mdev, undefined, `defining mdev ${mdevLabel(mdev)}`, opts);
    if (typeof result !== 'number' && !refusedForDrift(result) && !ctx.json) {
      if (generated) ctx.out(uuid);
      ctx.info(`defined mdev ${describeMdev(mdev)}`);
    }
    return result;
  });
  return finish(ctx, edited);
}

export async function mdevModify(ctx: Context, uuidText: string, opts: MdevOptions): Promise<number> {
  const changes = {
    adapters: ids(opts.adapters, '--adapters', 'adapter', false),
    domains: ids(opts.domains, '--domains', 'domain', false),
    controlDomains: ids(opts.controlDomains, '--control-domains', 'control domain', true),
    name: mdevName(opts.name),
    start: startMode(opts.start),
  };
  if (Object.values(changes).every((v) => v === undefined)) {
    throw new InputError('mdev modify needs at least one of --adapters, --domains, --control-domains, --name, --start');
  }
  const edited = withLock(ctx.paths.lock, (): Edited => {
    const view = readHostView(ctx);
    const { mdev: previous } = findDefined(view, uuidText);
    const mdev: MdevDefinition = {
      ...previous,
      adapters: changes.adapters ?? previous.adapters,
      domains: changes.domains ?? previous.domains,
      controlDomains: changes.controlDomains ?? previous.controlDomains,
      name: changes.name === undefined ? previous.name : changes.name || undefined,
      start: changes.start ?? previous.start,
    };
    const result = commit(ctx, view, mdev, previous, `modifying mdev ${mdevLabel(mdev)}`, opts);
    if (typeof result !== 'number' && !refusedForDrift(result) && !ctx.json) {
      ctx.info(`modified mdev ${describeMdev(mdev)}`);
      if (view.live.mdevs.some((a) => a.uuid === mdev.uuid)) {
        ctx.info('  it is active: the change takes effect when it is next started');
      }
    }
    return result;
  });
  return finish(ctx, edited);
}

export async function mdevUndefine(ctx: Context, uuidText: string, opts: EditOptions = {}): Promise<number> {
  const edited = withLock(ctx.paths.lock, (): Edited => {
    const view = readHostView(ctx);
    const { uuid, mdev } = findDefined(view, uuidText);
    removeMdev(view.store.doc, uuid);
    const persisted = saveAndGenerate(ctx, view.store, opts);
    if (refusedForDrift(persisted)) return persisted;
    if (ctx.json) ctx.printJson({ undefined: uuid });
    else ctx.info(`undefined mdev ${mdevLabel(mdev)}`);
    if (view.live.mdevs.some((a) => a.uuid === uuid)) {
      ctx.warn(`note: mdev ${uuid} is still active; 'ap-persist mdev stop ${uuid}' removes it once its guest is down`);
    }
    return persisted;
  });
  return finish(ctx, edited);
}

export interface MdevJson {
  uuid: string;
  name: string | null;
  adapters: number[];
  domains: number[];
  control_domains: number[];
  start: StartMode | null;
  /** In the store. */
  defined: boolean;
  /** Who defines it: the store, mdevctl alone (a definition in /etc/mdevctl.d/matrix/ the store does not hold), or nobody (active only). */
  defined_by: 'store' | 'mdevctl' | null;
  active: boolean;
}

type MdevLike = Pick<MdevDefinition, 'uuid' | 'adapters' | 'domains' | 'controlDomains'> & { name?: string | undefined; start?: StartMode };

function mdevJson(m: MdevLike, definedBy: MdevJson['defined_by'], active: boolean): MdevJson {
  return {
    uuid: m.uuid,
    name: m.name ?? null,
    adapters: m.adapters.ids(),
    domains: m.domains.ids(),
    control_domains: m.controlDomains.ids(),
    start: m.start ?? null,
    defined: definedBy === 'store',
    defined_by: definedBy,
    active,
  };
}

/** libvirt's guests, from its files alone (status and list never call libvirt). */
export interface LibvirtGuests {
  /** Running now: libvirt's status files. */
  running: Guest[];
  /** Defined: libvirt's persistent definitions. */
  defined: Guest[];
  /** libvirt's directories that could not be read, with the reason. */
  unreadable: string[];
}

export function readLibvirtGuests(paths: HostPaths): LibvirtGuests {
  return libvirtGuests(paths);
}

/** An mdev as status and mdev list show it: with the libvirt guests that name it. */
export interface MdevRow extends MdevJson {
  /** The libvirt guests whose domain XML names it, defined or running, by name. */
  guests: string[];
  /** Those of them that run now while it is active: who holds it now. */
  held_by: string[];
}

const byName = (names: Iterable<string>): string[] => [...new Set(names)].sort(compareNames);

function withGuests(row: MdevJson, guests: LibvirtGuests): MdevRow {
  const running = guestsUsing(guests.running, row.uuid);
  return {
    ...row,
    guests: byName([...guestsUsing(guests.defined, row.uuid), ...running]),
    held_by: row.active ? byName(running) : [],
  };
}

/**
 * Every mdev of the host, by name then UUID: the store's, mdevctl's own
 * definitions the store does not hold (their auto ones start at boot too, and
 * check counts them), and the active ones nobody defines (with their live
 * matrix). A broken store (status) comes as an empty one: no store rows.
 */
export function mdevRows(view: Pick<HostView, 'store' | 'mdevctl' | 'live'>, guests: LibvirtGuests): MdevRow[] {
  const active = new Map<string, ActiveMdev>(view.live.mdevs.map((m) => [m.uuid, m]));
  const rows = view.store.store.mdevs.map((m) => mdevJson(m, 'store', active.has(m.uuid)));
  const seen = new Set(rows.map((r) => r.uuid));
  for (const d of view.mdevctl.definitions) {
    if (seen.has(d.uuid)) continue;
    seen.add(d.uuid);
    rows.push(mdevJson({ ...d, name: undefined }, 'mdevctl', active.has(d.uuid)));
  }
  for (const a of view.live.mdevs) if (!seen.has(a.uuid)) rows.push(mdevJson(a, null, true));
  return rows.sort(compareMdevs).map((r) => withGuests(r, guests));
}

export function mdevList(ctx: Context, opts: { defined?: boolean; active?: boolean }): number {
  const view = readHostView(ctx);
  const rows = mdevRows(view, readLibvirtGuests(ctx.paths)).filter((r) => (!opts.defined || r.defined) && (!opts.active || r.active));
  if (ctx.json) {
    ctx.printJson(rows);
    return 0;
  }
  for (const line of mdevTable(rows)) ctx.out(line);
  return 0;
}

/** Who defines an mdev, in the STATE column. */
function source(m: MdevJson, storeKnown: boolean): string {
  if (m.defined_by === 'store') return 'defined';
  if (m.defined_by === 'mdevctl') return storeKnown ? 'mdevctl only' : 'in mdevctl';
  return storeKnown ? 'not defined' : 'store unreadable';
}

/**
 * The mdevs as a table, IDs in the kernel's hex notation (as lszcrypt and
 * vfio_ap's `matrix` show them: adapters `05`, domains `00ab`). GUESTS comes
 * only when libvirt's XML names one of them: a host without libvirt guests
 * keeps the table it had.
 */
export function mdevTable(rows: readonly MdevRow[], opts: { storeKnown?: boolean } = {}): string[] {
  if (rows.length === 0) return ['no mdevs defined or active'];
  const storeKnown = opts.storeKnown ?? true;
  const guestColumn = rows.some((m) => m.guests.length > 0);
  const r = (ids: number[], kind: 'adapter' | 'domain'): string => hexRanges(ids, kind) || '-';
  const guestsCell = (m: MdevRow): string => m.guests.map((g) => (m.held_by.includes(g) ? `${g} (running)` : g)).join(', ') || '-';
  const table = rows.map((m) => [
    m.uuid,
    m.name ?? '-',
    r(m.adapters, 'adapter'),
    r(m.domains, 'domain'),
    r(m.control_domains, 'domain'),
    m.start ?? '-',
    [source(m, storeKnown), m.active ? 'active' : 'inactive'].join(', '),
    ...(guestColumn ? [guestsCell(m)] : []),
  ]);
  const head = ['UUID', 'NAME', 'ADAPTERS', 'DOMAINS', 'CONTROL', 'START', 'STATE', ...(guestColumn ? ['GUESTS'] : [])];
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const fmt = (row: string[]): string => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]! + 2))).join('');
  return [fmt(head), ...table.map(fmt)];
}

export function describeMdev(m: MdevDefinition): string {
  const cd = m.controlDomains.isEmpty() ? '' : `, control domains ${m.controlDomains.toRanges()}`;
  return `${mdevLabel(m)}: adapters ${m.adapters.toRanges() || '-'}, domains ${m.domains.toRanges() || '-'}${cd}, start ${m.start}`;
}
