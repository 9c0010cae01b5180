// Reads what the checks need from a host: the store, mdevctl's definitions and
// the live AP state. The only I/O on the check path; everything after is pure.

import type { CalloutsView } from './callouts.js';
import { constants, existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { readRegularFile } from '../fsio/read.js';
import { ApPersistError } from '../errors.js';
import type { ApqnSet, Apqn } from '../model/apqn.js';
import type { MdevDefinition } from '../model/mdev.js';
import { isUuid, parseUuid } from '../model/uuid.js';
import type { LoadedStore } from '../store/store.js';
import { parseMdevctlJson, PASSTHROUGH_TYPE, toDefinition, type MdevctlDevice } from '../store/mdevctl-defs.js';
import {
  activeMdevNames,
  AP_DEVICES,
  listActiveMatrices,
  listActiveMdevs,
  listCards,
  presentApqns,
  readActiveMasks,
  readMaxIds,
  vfioApLoaded,
  type ActiveMasks,
  type ActiveMatrix,
  type ActiveMdev,
  type Card,
  type MaxIds,
} from '../sysfs/ap-host.js';
import type { Sysfs } from '../sysfs/sysfs.js';
import type { HostPaths } from './paths.js';
import type { BootFiles, DefinitionFile } from '../checks/drift.js';
import type { RootPath } from '../generate/host-files.js';
import { observe, type Observed } from '../fsio/observe.js';
import { rootPath } from '../generate/host-files.js';
import { mdevUnitUuid } from '../generate/unit-names.js';
import { entriesByPath, holdsRecorded, parseManifest, parseRecord, PENDING_RECORD, type ManifestEntry } from '../generate/manifest.js';
import type { StoreSnapshot } from '../store/snapshot.js';

export interface LiveState {
  /** False when the AP bus is not there (not an IBM Z host, or a bare fake root). */
  apBus: boolean;
  masks: ActiveMasks | undefined;
  mdevs: ActiveMdev[];
  cards: Card[];
  /** The queues present, by name (ascending); their drivers are not read. */
  queues: Apqn[];
  /** The same queues as a set, for presence tests. */
  present: ApqnSet;
  maxIds: MaxIds | undefined;
  vfioAp: boolean;
}

export interface MdevctlView {
  definitions: MdevDefinition[];
  /** Files that could not be read, with the reason. */
  unreadable: { path: string; reason: string }[];
  /** Every definition file (readable or not, of any mdev type), by UUID, for the drift checks. */
  files: Map<string, DefinitionFile>;
  /** The readable vfio_ap definitions of UUIDs not in `known`: only those files are parsed. */
  outside(known: ReadonlySet<string>): MdevDefinition[];
}

/**
 * The live AP state. The masks, the bus and vfio_ap are read at once; the
 * rest (the mdevs, the cards, the queues, the limits) when first asked for,
 * and then kept: `mask show` never lists 65,536 queues, and bus/ap/devices
 * is listed once for both the cards and the queues.
 */
export function readLiveState(sysfs: Sysfs): LiveState {
  const masks = readActiveMasks(sysfs);
  const vfioAp = vfioApLoaded(sysfs);
  const apBus = sysfs.exists('bus/ap');
  let devices: string[] | undefined;
  const listing = (): string[] => (devices ??= sysfs.list(AP_DEVICES));
  const once = <T>(read: () => T): (() => T) => {
    let done = false;
    let value: T;
    return () => {
      if (!done) {
        value = read();
        done = true;
      }
      return value;
    };
  };
  const mdevs = once(() => listActiveMdevs(sysfs));
  const cards = once(() => listCards(sysfs, listing()));
  const present = once(() => presentApqns(sysfs, listing()));
  const queues = once(() => present().toArray());
  const maxIds = once(() => readMaxIds(sysfs));
  return {
    apBus,
    masks,
    vfioAp,
    get mdevs() {
      return mdevs();
    },
    get cards() {
      return cards();
    },
    get queues() {
      return queues();
    },
    get present() {
      return present();
    },
    get maxIds() {
      return maxIds();
    },
  };
}

export interface ActiveState {
  masks: ActiveMasks | undefined;
  /** The active mdevs' UUIDs, from the listing alone. */
  uuids: ReadonlySet<string>;
  /** Their matrices, read when first asked (a hook with nothing to change never asks). */
  readonly mdevs: ActiveMatrix[];
  vfioAp: boolean;
}

/** Only what the boot hook needs: masks and active matrices, not every queue. */
export function readActiveState(sysfs: Sysfs): ActiveState {
  let mdevs: ActiveMatrix[] | undefined;
  const names = activeMdevNames(sysfs);
  return {
    masks: readActiveMasks(sysfs),
    uuids: new Set(names.map((u) => u.toLowerCase())),
    get mdevs() {
      return (mdevs ??= listActiveMatrices(sysfs, names));
    },
    vfioAp: vfioApLoaded(sysfs),
  };
}

/**
 * One definition file as read, parsed when first asked: the hook and the
 * callout compare most files with generate's record as text alone.
 */
class ReadDefinition implements DefinitionFile {
  #parsed: { device?: MdevctlDevice; reason?: string } | undefined;
  constructor(
    readonly path: RootPath,
    readonly text: string,
    private readonly where: string,
    /** It holds what generate wrote, by the record: valid by construction, so never parsed for the warnings. */
    readonly generated: boolean,
    private readonly readError?: string,
  ) {}
  private parsed(): { device?: MdevctlDevice; reason?: string } {
    if (this.#parsed) return this.#parsed;
    if (this.readError !== undefined) return (this.#parsed = { reason: this.readError });
    try {
      return (this.#parsed = { device: parseMdevctlJson(this.text, this.where) });
    } catch (err) {
      return (this.#parsed = { reason: err instanceof ApPersistError ? err.message : String(err) });
    }
  }
  get otherType(): boolean {
    const device = this.parsed().device;
    return device !== undefined && device.mdevType !== PASSTHROUGH_TYPE;
  }
  get device(): MdevctlDevice | undefined {
    const device = this.parsed().device;
    return device?.mdevType === PASSTHROUGH_TYPE ? device : undefined;
  }
  get reason(): string | undefined {
    return this.parsed().reason;
  }
}

/** Non-blocking, so a FIFO put there after the directory was listed cannot stop us (node takes numeric flags; its types say string). */
const READ_NONBLOCK = { encoding: 'utf8', flag: (constants.O_RDONLY | constants.O_NONBLOCK) as unknown as string } as const;

/**
 * mdevctl's vfio_ap-passthrough definitions for parent `matrix`; with `only`,
 * just those (an mdev unit at boot needs its own, not all of them).
 * `files` holds every file named by a UUID (another type's too, which drift
 * tells apart); `definitions` and `unreadable` parse them when first asked,
 * never those that hold what `recorded` (generate's record) says generate wrote.
 */
function readMdevctlDefinitions(
  paths: HostPaths,
  recorded: ReadonlyMap<RootPath, ManifestEntry>,
  only?: readonly string[],
  asRecorded?: ReadonlySet<string>,
  pending: ReadonlyMap<RootPath, readonly ManifestEntry[]> = new Map(),
): MdevctlView {
  const dir = paths.mdevctlMatrixDir;
  const files = new Map<string, ReadDefinition>();
  const relDir = rootPath(paths, dir);
  const add = (name: string, read: (path: string) => string | undefined, rel: RootPath = `${relDir}/${name}`): void => {
    const path = `${dir}/${name}`;
    let text = '';
    try {
      text = read(path) ?? '';
    } catch (err) {
      files.set(name, new ReadDefinition(rel, text, path, false, err instanceof ApPersistError ? err.message : String((err as Error).message ?? err)));
      return;
    }
    const observed: Observed = { kind: 'file', content: text };
    const entry = writtenBy(recorded, pending, rel, observed);
    files.set(name, new ReadDefinition(rel, text, path, entry !== undefined && holdsRecorded(observed, entry)));
  };
  const careful = (path: string): string | undefined => readRegularFile(path, "mdevctl's definition");
  if (only !== undefined) {
    // One look each, not a listing: each mdev's unit reads its own at boot.
    for (const name of only) if (isUuid(name) && lstatSync(`${dir}/${name}`, { throwIfNoEntry: false })) add(name, careful);
  } else {
    // A file generate wrote for one of `asRecorded` is taken as the record has it, unread: its content.
    const kept = (name: string, rel: RootPath): string | undefined => {
      // A file a generate in flight may have replaced is read: it holds either run's content.
      if (!asRecorded?.has(name) || pending.has(rel)) return undefined;
      const entry = recorded.get(rel);
      return entry && 'content' in entry ? entry.content : undefined;
    };
    // The listing with the file types, to read plain files quickly. Where definitions may be taken
    // as recorded, first by name alone: node's Dirent objects cost 0.2 ms, for nothing when every
    // one is (the hook with every mdev up).
    const plain = new Set<string>();
    const typed = (): string[] =>
      readdirSync(dir, { withFileTypes: true }).map((entry) => {
        if (entry.isFile()) plain.add(entry.name);
        return entry.name;
      });
    // The definitions' names in name order (the default sort, without a comparison function of ours
    // per pair), their paths, and their content where it is taken as recorded.
    let names: string[] = [];
    let rels: RootPath[] = [];
    let texts: (string | undefined)[] = [];
    const list = (listed: string[]): void => {
      names = listed.filter(isUuid).sort();
      rels = names.map((name) => `${relDir}/${name}`);
      texts = names.map((name, i) => kept(name, rels[i]!));
    };
    try {
      if (asRecorded?.size) list(readdirSync(dir));
      if (!asRecorded?.size || texts.includes(undefined)) list(typed());
    } catch {
      // no directory (or gone meanwhile): no definitions, or each read says so
    }
    // A plain file in one call; anything else, or a failure, through the careful reader, which says what it is.
    const quick = (path: string): string | undefined => {
      try {
        return readFileSync(path, READ_NONBLOCK);
      } catch {
        return careful(path);
      }
    };
    names.forEach((name, i) => {
      const text = texts[i];
      if (text === undefined) add(name, plain.has(name) ? quick : careful, rels[i]!);
      // What generate wrote, by the record.
      else files.set(name, new ReadDefinition(rels[i]!, text, `${dir}/${name}`, true));
    });
  }
  const definition = (name: string, file: ReadDefinition): MdevDefinition[] => (file.device ? [toDefinition(parseUuid(name), file.device)] : []);
  let definitions: MdevDefinition[] | undefined;
  return {
    get definitions() {
      return (definitions ??= [...files].flatMap(([name, file]) => definition(name, file)));
    },
    get unreadable() {
      return [...files].flatMap(([name, file]) => (file.generated || file.otherType || file.device ? [] : [{ path: `${dir}/${name}`, reason: file.reason ?? 'unreadable' }]));
    },
    outside: (known) => [...files].flatMap(([name, file]) => (known.has(name) ? [] : definition(name, file))),
    files,
  };
}

/** The UUIDs of the mdev units generate linked into ap-persist-mdevs.target's wants: the units the target starts. */
export function readLinkedMdevs(paths: HostPaths): string[] {
  try {
    // A dot file is a temporary link of a generate that was killed, not a unit.
    return readdirSync(paths.mdevsWantsDir).flatMap((n) => mdevUnitUuid(n) ?? []);
  } catch {
    return [];
  }
}

/** The boot's files besides the store, and generate's snapshot of the store from its record. */
export type PeerFiles = BootFiles & { recordError?: string; storeSnapshot?: StoreSnapshot };

/**
 * What the boot reads besides the store: generate's record of what it wrote
 * (read first: it says which of mdevctl's definitions are generate's own, so
 * those are never parsed), mdevctl's definitions (with `only`, just those
 * of these UUIDs) and chzdev's 41-ap.rules. A damaged record counts as none (every file
 * then looks like a peer's), with the reason in `recordError`.
 * `asRecorded`: UUIDs whose definition, where generate wrote it, is taken as
 * the record holds it without being read (the hook's active mdevs: what the
 * file says cannot change what it does with them).
 */
export function readPeerFiles(paths: HostPaths, only?: readonly string[], asRecorded?: ReadonlySet<string>): { mdevctl: MdevctlView; boot: PeerFiles } {
  let recorded = new Map<string, ManifestEntry>();
  let recordError: string | undefined;
  let storeSnapshot: StoreSnapshot | undefined;
  try {
    const text = readRegularFile(paths.generatedManifest, 'the record of generated files');
    if (text !== undefined) {
      const record = parseRecord(text, paths.generatedManifest);
      // One set per entry, not a pair array each for the Map's constructor: the hook reads a record of
      // 129 entries on every event, and each kB it allocates brings node's first collection nearer.
      for (const e of record.files) recorded.set(e.path, e);
      storeSnapshot = record.store;
    }
  } catch (err) {
    recordError = err instanceof ApPersistError ? err.message : String(err);
  }
  let pending = new Map<RootPath, ManifestEntry[]>();
  try {
    pending = entriesByPath(readPending(paths));
  } catch (err) {
    recordError ??= err instanceof ApPersistError ? err.message : String(err);
  }
  const mdevctl = readMdevctlDefinitions(paths, recorded, only, asRecorded, pending);
  const rulesPath = rootPath(paths, paths.chzdevRules);
  const rules = observe(paths.chzdevRules);
  if (pending.size) {
    // Where a file holds what a generate killed before its record wrote there, that run's entry is the record's.
    const effective = new Map(recorded);
    const put = (path: RootPath, observed: Observed): void => {
      const entry = writtenBy(recorded, pending, path, observed);
      if (entry) effective.set(path, entry);
    };
    put(rulesPath, rules);
    for (const file of mdevctl.files.values()) if (pending.has(file.path)) put(file.path, { kind: 'file', content: file.text });
    recorded = effective;
  }
  return {
    mdevctl,
    boot: {
      recorded,
      rulesPath,
      rules,
      mdevctlDir: rootPath(paths, paths.mdevctlMatrixDir),
      definitions: mdevctl.files,
      ...(recordError ? { recordError } : {}),
      ...(storeSnapshot ? { storeSnapshot } : {}),
    },
  };
}

/**
 * What a generate that was killed before its record was putting in place
 * (paths.generatedPending): named by it before it moved any file, removed
 * once its record was written. [] when there is no such list.
 */
export function readPending(paths: HostPaths): ManifestEntry[] {
  // Almost always absent: asked without an exception (one costs a millisecond without the JIT, in the callout).
  if (!existsSync(paths.generatedPending)) return [];
  const text = readRegularFile(paths.generatedPending, PENDING_RECORD.what);
  return text === undefined ? [] : parseManifest(text, paths.generatedPending, PENDING_RECORD);
}

/**
 * The entry that says generate wrote what `observed` holds at `path`: the
 * pending list's where the file holds what a killed run wrote there, else
 * the record's.
 */
function writtenBy(recorded: ReadonlyMap<RootPath, ManifestEntry>, pending: ReadonlyMap<RootPath, readonly ManifestEntry[]>, path: RootPath, observed: Observed): ManifestEntry | undefined {
  return pending.get(path)?.find((e) => holdsRecorded(observed, e)) ?? recorded.get(path);
}

export interface HostView {
  store: LoadedStore;
  mdevctl: MdevctlView;
  live: LiveState;
  boot: PeerFiles;
  callouts: CalloutsView;
}
