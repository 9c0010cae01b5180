// status --matrix: who owns each present APQN, drawn to fit the screen.
// Each active mdev gets its own mark (a-z; past 26, ga-zz, never a hex ID), in the
// order status lists the mdevs (name, then UUID). The widest view that fits
// is taken: adapters down and domains across, else domains down and adapters
// across, else one line per adapter listing its domains by owner; the
// caption says which.

import { formatAdapter, formatApqn, formatDomain, hexRanges } from '../model/apqn.js';
import { compareMdevs, mdevLabel } from '../model/mdev.js';
import type { HostView } from '../host/state.js';

/** The host, as an owner. */
const HOST = 'host';

export interface MatrixModel {
  adapters: number[];
  domains: number[];
  /** Present APQNs (adapter * 256 + domain) and who holds them: mdev UUIDs and/or `host`; none is free. */
  owners: Map<number, string[]>;
  /** The active mdevs in listing order, each with its mark. */
  mdevs: { uuid: string; name: string | undefined; mark: string }[];
  /** Whether the active masks could be read (else no APQN shows as the host's). */
  masksKnown: boolean;
}

/** Letters that are no hex digit: a mark of two or more letters starts with one, so it never reads as an ID. */
const NOT_HEX = 'ghijklmnopqrstuvwxyz';

/**
 * `count` distinct marks of one width: a-z for up to 26 mdevs (a single
 * letter never reads as a two- or four-digit ID); past that two letters
 * (ga, gb ... zz: 520), then three, the first letter never a hex digit.
 */
export function mdevMarks(count: number): string[] {
  const letter = (n: number): string => String.fromCharCode(97 + n);
  if (count <= 26) return Array.from({ length: count }, (_, i) => letter(i));
  let width = 2;
  while (NOT_HEX.length * 26 ** (width - 1) < count) width++;
  const marks: string[] = [];
  for (let i = 0; i < count; i++) {
    let n = i;
    let tail = '';
    for (let k = 1; k < width; k++) {
      tail = letter(n % 26) + tail;
      n = Math.floor(n / 26);
    }
    marks.push(NOT_HEX[n]! + tail);
  }
  return marks;
}

export function matrixModel(view: Pick<HostView, 'live' | 'store'>): MatrixModel {
  const queues = view.live.queues;
  const adapters = [...new Set(queues.map((q) => q.adapter))].sort((a, b) => a - b);
  const domains = [...new Set(queues.map((q) => q.domain))].sort((a, b) => a - b);
  const names = new Map(view.store.store.mdevs.map((m) => [m.uuid as string, m.name]));
  const active = view.live.mdevs.map((m) => ({ ...m, name: names.get(m.uuid) })).sort(compareMdevs);
  const marks = mdevMarks(active.length);
  const masks = view.live.masks;
  const owners = new Map<number, string[]>();
  for (const q of queues) owners.set(q.adapter * 256 + q.domain, []);
  // Each mdev's present APQNs, a row of its domains per adapter: no mdev is tried on every queue.
  const present = view.live.present;
  for (const m of active) {
    for (const adapter of m.adapters.ids()) {
      for (const domain of m.domains.intersect(present.row(adapter)).ids()) owners.get(adapter * 256 + domain)?.push(m.uuid);
    }
  }
  if (masks) {
    for (const q of queues) if (masks.apmask.has(q.adapter) && masks.aqmask.has(q.domain)) owners.get(q.adapter * 256 + q.domain)!.push(HOST);
  }
  return { adapters, domains, owners, mdevs: active.map((m, i) => ({ uuid: m.uuid, name: m.name, mark: marks[i]! })), masksKnown: masks !== undefined };
}

/** For --json: every present APQN with its owners (mdev UUIDs, `host`; empty when free for vfio_ap). */
export function matrixJson(model: MatrixModel): { apqn: string; owners: string[] }[] {
  return [...model.owners.entries()]
    .sort(([a], [b]) => a - b)
    .map(([key, owners]) => ({ apqn: formatApqn({ adapter: key >> 8, domain: key & 255 }), owners }));
}

/**
 * Breaks `text` into lines of at most `width` columns, after a comma or at a
 * space (with `onlyAtDoubleSpace`, only where two spaces part the pieces);
 * continuation lines start with `indent` spaces. A piece with no
 * break in it longer than the line is cut.
 */
export function wrapText(text: string, width: number, indent: number, opts: { onlyAtDoubleSpace?: boolean } = {}): string[] {
  const lines: string[] = [];
  let rest = text;
  let pad = '';
  const space = (i: number): boolean => rest[i] === ' ' && (!opts.onlyAtDoubleSpace || rest[i + 1] === ' ');
  while (pad.length + rest.length > width) {
    const room = width - pad.length;
    let cut = -1;
    for (let i = Math.min(room, rest.length - 1); i > 0; i--) {
      if (space(i) || (rest[i - 1] === ',' && i <= room)) {
        cut = i;
        break;
      }
    }
    if (cut <= 0) cut = Math.max(1, room);
    lines.push((pad + rest.slice(0, cut)).trimEnd());
    rest = rest.slice(cut).replace(/^ +/, '');
    pad = ' '.repeat(indent);
    if (!rest) break;
  }
  if (rest) lines.push(pad + rest);
  return lines;
}

/** The matrix as lines of at most `width` columns. */
export function matrixLines(model: MatrixModel, width: number): string[] {
  if (model.owners.size === 0) return ['matrix: no APQNs present'];
  const markOf = new Map(model.mdevs.map((m) => [m.uuid, m.mark]));
  const markWidth = model.mdevs[0]?.mark.length ?? 1;
  const symbol = (owners: string[]): string => (owners.length === 0 ? '.' : owners.length > 1 ? '!' : owners[0] === HOST ? 'H' : markOf.get(owners[0]!)!);
  const cell = (a: number, d: number): string => {
    const owners = model.owners.get(a * 256 + d);
    return owners === undefined ? '' : symbol(owners);
  };
  const { adapters, domains } = model;
  const across = (n: number, cw: number, prefix: number): number => prefix + n * cw + (n - 1);
  const wideCw = Math.max(4, markWidth);
  const tallCw = Math.max(2, markWidth);
  const wide = across(domains.length, wideCw, 6);
  const tall = across(adapters.length, tallCw, 8);
  const lines: string[] = [];
  const caption = (text: string): void => void lines.push(...wrapText(text, width, 4));
  const key = (blank: string): void =>
    caption(`  H host, . free for vfio_ap, ! held by more than one (ap-persist check --active), ${blank}; the active mdevs' marks are below`);
  if (wide <= width) {
    caption('matrix of the present APQNs, adapters down and domains across:');
    key('blank not present');
    lines.push(`      ${domains.map((d) => formatDomain(d).padStart(wideCw)).join(' ')}`.trimEnd());
    for (const a of adapters) lines.push(`  ${formatAdapter(a)}  ${domains.map((d) => cell(a, d).padStart(wideCw)).join(' ')}`.trimEnd());
  } else if (tall <= width) {
    caption(`matrix of the present APQNs, domains down and adapters across (${domains.length} domains across would take ${wide} columns, more than ${width}):`);
    key('blank not present');
    lines.push(`        ${adapters.map((a) => formatAdapter(a).padStart(tallCw)).join(' ')}`.trimEnd());
    for (const d of domains) lines.push(`  ${formatDomain(d)}  ${adapters.map((a) => cell(a, d).padStart(tallCw)).join(' ')}`.trimEnd());
  } else {
    caption(`matrix of the present APQNs, one line per adapter listing its domains by owner (a grid would take ${Math.min(wide, tall)} columns, more than ${width}):`);
    key('a domain not listed is not present');
    for (const a of adapters) {
      const groups = new Map<string, number[]>();
      for (const d of domains) {
        const s = cell(a, d);
        if (!s) continue;
        if (!groups.has(s)) groups.set(s, []);
        groups.get(s)!.push(d);
      }
      const order = (s: string): number => (s === 'H' ? 0 : s === '.' ? 2 : s === '!' ? 3 : 1);
      const parts = [...groups.entries()]
        .sort(([x, dx], [y, dy]) => order(x) - order(y) || dx[0]! - dy[0]!)
        .map(([s, ds]) => `${s} ${hexRanges(ds, 'domain')}`);
      lines.push(...wrapText(`  ${formatAdapter(a)}  ${parts.join('  ')}`, width, 6, { onlyAtDoubleSpace: true }));
    }
  }
  for (const m of model.mdevs) lines.push(...wrapText(`  ${m.mark} = ${mdevLabel(m)}`, width, 5 + markWidth));
  if (!model.masksKnown) lines.push(...wrapText('  (the active masks cannot be read: no APQN is shown as the host\'s)', width, 3));
  const shared = [...model.owners.entries()].filter(([, owners]) => owners.length > 1).sort(([a], [b]) => a - b);
  const byUuid = new Map<string, MatrixModel['mdevs'][number]>();
  for (const m of model.mdevs) if (!byUuid.has(m.uuid)) byUuid.set(m.uuid, m);
  for (const [k, owners] of shared) {
    const who = owners.map((o) => (o === HOST ? 'the host' : mdevLabel(byUuid.get(o)!)));
    lines.push(...wrapText(`  ! ${formatApqn({ adapter: k >> 8, domain: k & 255 })} is held by ${who.join(' and ')}`, width, 4));
  }
  return lines;
}
