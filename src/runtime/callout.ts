// The mdevctl callout (`ap-persist callout -t TYPE -e EVENT -a ACTION -s STATE
// -u UUID -p PARENT`). mdevctl runs it around every define, modify, start,
// stop and undefine of an mdev, with the device JSON on stdin, and asks it for
// the attributes of an active mdev. It behaves like s390-tools' ap-check so it
// can replace it, except that a refusal exits 1 (DESIGN.md), not 255.
//
// It runs on every mdevctl call and before every guest start, so it loads no
// commander or handlebars; and the store (with its INI parser) and the
// persistent-scope checks only when a definition has to be checked.

import type { Io } from '../cli/context.js';
import { checkClaim, type ConflictList, type Scope } from '../checks/conflicts.js';
import { ApPersistError, InputError } from '../errors.js';
import { acquireLock, releaseLock } from '../host/lock.js';
import type { HostPaths } from '../host/paths.js';
import { describeApqn } from '../model/apqn.js';
import type { IdSet } from '../model/idset.js';
import { mdevLabel, type MdevDefinition } from '../model/mdev.js';
import { isUuid, parseUuid, type Uuid } from '../model/uuid.js';
import { parseMdevctlJson, PASSTHROUGH_TYPE, toDefinition, type MdevctlDevice } from '../store/mdevctl-defs.js';
import {
  listActiveMatrices,
  mdevPath,
  parseControlDomains,
  readActiveMasks,
  readAttr,
  readMdevMatrix,
  vfioApLoaded,
} from '../sysfs/ap-host.js';
import type { Sysfs } from '../sysfs/sysfs.js';

/** mdevctl's callout protocol: 0 go ahead, 2 "not my type, ask the next script", anything else stops it. */
export const ACCEPT = 0;
export const REJECT = 1;
export const NOT_MY_TYPE = 2;

export const CALLOUT_PARENT = 'matrix';
export const CALLOUT_USAGE = '-t TYPE -e EVENT -a ACTION -s STATE -u UUID -p PARENT';

/** What we answer to mdevctl's version-2 handshake, in ap-check's order. */
const SUPPORTED_ACTIONS = ['define', 'modify', 'start', 'stop', 'undefine', 'attributes', 'capabilities'];
const SUPPORTED_EVENTS = ['pre', 'post', 'get', 'live'];
/** The pre events that take the lock and keep it until the post event. */
const LOCKED_ACTIONS = new Set(['define', 'modify', 'start', 'stop', 'undefine']);

const DEFAULT_LOCK_TIMEOUT_MS = 30_000;

export interface CalloutOptions {
  /** The mdevctl process the lock is held for, from pre to post; default: our parent. */
  parentPid?: number;
  /** How long to wait for the lock before refusing. */
  lockTimeoutMs?: number;
}

interface Call {
  type: string;
  event: string;
  action: string;
  state: string;
  uuid: Uuid;
  parent: string;
}

interface Session {
  call: Call;
  /** The JSON mdevctl wrote for this event ('' when it writes none). */
  stdin: string;
  io: Io;
  sysfs: Sysfs;
  paths: HostPaths;
  owner: number;
  lockTimeoutMs: number;
}

/** A refusal: one line per reason, then what to do about it. */
class Refusal extends Error {
  constructor(
    readonly reasons: string[],
    readonly hint?: string,
  ) {
    super(reasons.join('; '));
  }
}

/**
 * Runs one callout. Returns the exit code; messages go to stderr, where
 * mdevctl shows them to the admin prefixed with the script's name.
 */
export async function runCallout(
  args: readonly string[],
  io: Io,
  sysfs: Sysfs,
  paths: HostPaths,
  options: CalloutOptions = {},
): Promise<number> {
  let call: Call;
  try {
    call = parseCall(args);
  } catch (err) {
    io.stderr(`ap-persist callout: ${(err as Error).message}\n  usage: ap-persist callout ${CALLOUT_USAGE}\n`);
    return REJECT;
  }
  if (call.type !== PASSTHROUGH_TYPE) return NOT_MY_TYPE;
  if (call.parent !== CALLOUT_PARENT) {
    io.stderr(`refused: parent '${call.parent}' is not '${CALLOUT_PARENT}', the only parent vfio_ap has\n`);
    return REJECT;
  }
  const session: Session = {
    call,
    // Read up front, whatever the outcome: were we to exit before mdevctl has
    // written it, mdevctl would take the broken pipe for "no callout" and
    // carry on despite a refusal. get attributes is sent nothing.
    stdin: call.event === 'get' && call.action === 'attributes' ? '' : (io.stdin?.() ?? ''),
    io,
    sysfs,
    paths,
    owner: options.parentPid ?? process.ppid,
    lockTimeoutMs: options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
  };
  try {
    return await dispatch(session);
  } catch (err) {
    io.stderr(describeFailure(call, err));
    return REJECT;
  }
}

const OPTION_KEYS: Record<string, keyof Call> = {
  t: 'type',
  type: 'type',
  e: 'event',
  event: 'event',
  a: 'action',
  action: 'action',
  s: 'state',
  state: 'state',
  u: 'uuid',
  uuid: 'uuid',
  p: 'parent',
  parent: 'parent',
};

/** `-t X` or `--type X` or `--type=X`, each of the six exactly once, as ap-check's getopt. */
function parseCall(args: readonly string[]): Call {
  const given: Partial<Record<keyof Call, string>> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const m = /^(?:-([a-z])|--([a-z]+)(?:=(.*))?)$/s.exec(arg);
    const key = m ? OPTION_KEYS[m[1] ?? m[2]!] : undefined;
    if (!m || !key) throw new Error(`unknown argument '${arg}'`);
    const value = m[3] ?? args[++i];
    if (value === undefined) throw new Error(`${arg} needs a value`);
    if (given[key] !== undefined) throw new Error(`${arg} is given twice`);
    given[key] = value;
  }
  const missing = (['type', 'event', 'action', 'state', 'uuid', 'parent'] as const).filter((k) => given[k] === undefined);
  if (missing.length) throw new Error(`missing ${missing.map((k) => `--${k}`).join(', ')}`);
  if (!isUuid(given.uuid!)) throw new Error(`'${given.uuid}' is not a UUID`);
  return { ...(given as Record<keyof Call, string>), uuid: parseUuid(given.uuid!) };
}

async function dispatch(s: Session): Promise<number> {
  const { event, action } = s.call;
  switch (event) {
    case 'pre':
      return LOCKED_ACTIONS.has(action) ? await pre(s) : ACCEPT;
    case 'post':
      // Whatever happened, mdevctl's operation is over: let the next one in.
      releaseLock(s.paths.lock, s.owner);
      return ACCEPT;
    case 'live':
      return action === 'modify' ? liveModify(s) : ACCEPT;
    case 'get':
      if (action === 'attributes') return printAttributes(s);
      if (action === 'capabilities') return answerCapabilities(s);
      return ACCEPT;
    default:
      // notify and whatever later mdevctl versions add: nothing to check.
      return ACCEPT;
  }
}

/**
 * Takes the lock for mdevctl and keeps it until the post event, so that no
 * chzdev, ap-persist or other mdevctl changes the configuration between our
 * check and mdevctl's write. A refusal ends mdevctl's operation without a
 * post event, so it releases the lock itself.
 */
async function pre(s: Session): Promise<number> {
  const { action } = s.call;
  if (action === 'start') requireVfioAp(s);
  try {
    acquireLock(s.paths.lock, { owner: s.owner, timeoutMs: s.lockTimeoutMs });
    if (action === 'define' || action === 'modify') await checkAutostart(s, asMdevctlDefines(s, readDevice(s)));
    if (action === 'start') checkAgainstActive(s, readDevice(s).claims);
    if (action === 'stop') await refuseIfHeld(s);
    return ACCEPT;
  } catch (err) {
    releaseLock(s.paths.lock, s.owner);
    throw err;
  }
}

/**
 * What mdevctl will write for this define. `mdevctl define -u UUID` of an
 * active mdev without a JSON file sends no attributes in the pre event: it
 * takes them from the running mdev afterwards (through `get attributes`), so
 * the live matrix is what the new definition holds and what is checked.
 */
function asMdevctlDefines(s: Session, mdev: MdevDefinition & { claims: MdevDefinition[] }): MdevDefinition & { claims: MdevDefinition[] } {
  const empty = mdev.adapters.isEmpty() && mdev.domains.isEmpty() && mdev.controlDomains.isEmpty();
  if (s.call.action !== 'define' || !empty || !s.sysfs.exists(mdevPath(s.call.uuid, 'matrix'))) return mdev;
  const live = { ...mdev, ...readMdevMatrix(s.sysfs, s.call.uuid), controlDomains: parseControlDomains(readAttr(s.sysfs, mdevPath(s.call.uuid, 'control_domains')) ?? '') };
  return { ...live, claims: [live] };
}

/**
 * A stop of an mdev a process holds open (QEMU): the kernel would not refuse
 * the remove but block in it, unkillably, with mdevctl holding the AP lock
 * until the guest lets go. Refused. Only processes count: a libvirt domain
 * being released (libvirt's release end stops its guest's mdev) is still
 * listed as running while its QEMU is already gone.
 */
async function refuseIfHeld(s: Session): Promise<void> {
  // Loaded for a stop alone: the start path stays as small as it is.
  const { describeHolder, mdevHolders } = await import('./in-use.js');
  const holders = mdevHolders(s.paths, s.sysfs, s.call.uuid).filter((h) => h.kind !== 'domain');
  if (holders.length) {
    throw new Refusal([`mdev ${s.call.uuid} is in use by ${holders.map(describeHolder).join(', ')}: removing it would block until the guest releases it`], 'stop the guest first, then stop the mdev');
  }
}

/** Applies a new configuration to a running mdev through its ap_config attribute. */
function liveModify(s: Session): number {
  requireVfioAp(s);
  const lock = acquireLock(s.paths.lock, { owner: s.owner, timeoutMs: s.lockTimeoutMs });
  try {
    const mdev = readDevice(s);
    if (!s.sysfs.exists(mdevPath(s.call.uuid))) throw new Refusal([`mdev ${s.call.uuid} is not active`]);
    if (!s.sysfs.exists(mdevPath(s.call.uuid, 'ap_config'))) {
      throw new Refusal(['this kernel does not support live updates of vfio_ap mdevs (no ap_config attribute)'], 'stop the mdev, modify its definition and start it again');
    }
    // One ap_config write replaces the matrix at once: nothing is held on the way.
    checkAgainstActive(s, [mdev]);
    const masks = [mdev.adapters, mdev.domains, mdev.controlDomains].map((ids) => ids.toKernelHex());
    s.sysfs.write(mdevPath(s.call.uuid, 'ap_config'), `${masks.join(',')}\n`);
    return ACCEPT;
  } finally {
    // A no-op when the lock was already mdevctl's from a pre event: its post releases it.
    lock.release();
  }
}

function requireVfioAp(s: Session): void {
  if (!vfioApLoaded(s.sysfs)) {
    throw new Refusal(['the vfio_ap module is not loaded (no /sys/devices/vfio_ap/matrix)'], 'load it with modprobe vfio_ap, or let the ap-persist hook do it at boot');
  }
}

/** The device JSON mdevctl writes on stdin, as a definition of this call's UUID, with what it claims on the way. */
function readDevice(s: Session): MdevDefinition & { claims: MdevDefinition[] } {
  const where = 'the device JSON on stdin';
  const device = parseMdevctlJson(s.stdin, where);
  if (device.mdevType !== PASSTHROUGH_TYPE) {
    throw new Refusal([`the device JSON has mdev_type '${device.mdevType}', not '${PASSTHROUGH_TYPE}'`]);
  }
  // vfio_ap has no other writable attribute: mdevctl would fail to write it at every start.
  const unknown = device.otherAttrs.flatMap((a) => Object.keys(a));
  if (unknown.length) {
    throw new Refusal(
      unknown.map((key) => `attribute '${key}' is not one of vfio_ap's (assign_*, unassign_* and ap_config are): the mdev would fail to start`),
      "remove it ('mdevctl modify --delattr --index N')",
    );
  }
  const mdev = toDefinition(s.call.uuid, device);
  return { ...mdev, claims: claimsOnTheWay(mdev, s.stdin, device, where) };
}

/**
 * The matrices to check for an mdev whose attributes mdevctl writes in order:
 * vfio_ap checks each assign_* write on its own (EADDRNOTAVAIL on an APQN of
 * the host, EADDRINUSE on one of another mdev), so an ID assigned and then
 * unassigned again, or replaced by an ap_config, is held on the way; and
 * ap-check counts every assign_* (it ignores unassign_*). So each stretch up
 * to an ap_config (which replaces the matrix) and the whole list count with
 * their unassign_* left out. Plain assign_* lists only grow: just the mdev.
 */
function claimsOnTheWay(mdev: MdevDefinition, text: string, device: MdevctlDevice, where: string): MdevDefinition[] {
  if (!device.usesUnassign && !device.usesApConfig) return [mdev];
  // Parsed without error just now.
  const doc = JSON.parse(text) as Record<string, unknown> & { attrs: Record<string, unknown>[] };
  // One field per attribute (parseMdevctlJson has checked): an unassign_* is left out whole.
  const assigns = (attr: Record<string, unknown>): boolean => !Object.keys(attr)[0]!.startsWith('unassign_');
  const ends = [...doc.attrs.flatMap((attr, i) => ('ap_config' in attr ? [i] : [])), doc.attrs.length];
  const held = ends.map((end) => {
    const stretch = parseMdevctlJson(JSON.stringify({ ...doc, attrs: doc.attrs.slice(0, end).filter(assigns) }), where);
    return { ...toDefinition(mdev.uuid, stretch), name: mdev.name, start: mdev.start };
  });
  return [mdev, ...held];
}


/**
 * define/modify: an auto mdev starts at boot, so it must not share an APQN with
 * any other auto mdev (ours or mdevctl's) nor own one the persistent masks
 * give to the host. A manual mdev is checked when it starts.
 */
async function checkAutostart(s: Session, mdev: MdevDefinition & { claims: MdevDefinition[] }): Promise<void> {
  if (mdev.start !== 'auto') return;
  const [{ loadStore }, { readLiveState, readPeerFiles }, { autostartMdevs, persistentConfig, persistentMasks }] = await Promise.all([
    import('../store/store.js'),
    import('../host/state.js'),
    import('../checks/check-host.js'),
  ]);
  const { mdevctl, boot } = readPeerFiles(s.paths);
  const store = loadStore(s.paths.store, boot.storeSnapshot);
  // What the next boot uses: 41-ap.rules as ap-check reads it, mdevctl's changes to our mdevs.
  const config = persistentConfig({ store, boot });
  for (const u of mdevctl.unreadable) s.io.stderr(`warning: skipped ${u.path}: ${u.reason}\n`);
  // Another auto mdev that mdevctl starts from a definition with unassign_* or ap_config holds more on the way.
  const others = autostartMdevs(config, mdevctl)
    .filter((m) => m.uuid !== mdev.uuid)
    .flatMap((m) => {
      const file = mdevctl.files.get(m.uuid);
      // What generate wrote holds assign_* alone: nothing more on the way, and no need to parse it.
      return file && !file.generated && file.device ? claimsOnTheWay(m, file.text, file.device, file.path) : [m];
    });
  const masks = persistentMasks(config, readLiveState(s.sysfs));
  const reasons = claimReasons(mdev.claims, (claim) => checkClaim(claim, others, masks, 'persistent'), 'is defined for autostart by', 'persistent');
  if (reasons.length) {
    throw new Refusal(reasons, "give the mdev other APQNs, define it with start manual, or free the APQNs ('ap-persist check' shows all conflicts)");
  }
}

/** start and live modify: against the mdevs running now and the masks in force now. `claims[0]` is the mdev. */
function checkAgainstActive(s: Session, claims: MdevDefinition[]): void {
  const mdev = claims[0]!;
  if (mdev.domains.isEmpty() && !mdev.controlDomains.isEmpty()) {
    throw new Refusal(['it has control domains but no usage domain; assign at least one usage domain']);
  }
  const masks = readActiveMasks(s.sysfs);
  if (!masks) throw new Refusal(['the active AP masks (/sys/bus/ap/apmask, aqmask) cannot be read']);
  const others = listActiveMatrices(s.sysfs).filter((m) => m.uuid !== mdev.uuid);
  const reasons = claimReasons(claims, (claim) => checkClaim(claim, others, masks, 'active'), 'is in use by active mdev', 'active');
  if (reasons.length) throw new Refusal(reasons, "stop the other mdev, or free the APQNs for vfio_ap ('ap-persist mask set')");
}

/**
 * The reasons of every claim (the mdev first, then what it holds on the way),
 * each line once; a note when some stand only on the way.
 */
function claimReasons(claims: MdevDefinition[], check: (claim: MdevDefinition) => ConflictList, sharedWith: string, scope: Scope): string[] {
  const [own, ...onTheWay] = claims.map((claim) => reasonsFor(check(claim), sharedWith, scope));
  const lines = new Set(own);
  const before = lines.size;
  for (const line of onTheWay.flat()) lines.add(line);
  if (lines.size > before) {
    lines.add('(its attributes assign APQNs that a later unassign_* or ap_config takes away again: vfio_ap checks each assign_* write on its own)');
  }
  return [...lines];
}

/** One line per conflicting APQN, in ap-check's words, naming the other owner. */
function reasonsFor(found: ConflictList, sharedWith: string, scope: Scope): string[] {
  const lines = found.conflicts.map((c) =>
    c.kind === 'mdev-mdev'
      ? `${describeApqn(c.apqn)} ${sharedWith} ${mdevLabel(c.owners[0])}`
      : `${describeApqn(c.apqn)} belongs to the host by the ${scope} masks`,
  );
  if (found.omitted) lines.push(`... and ${found.omitted} more`);
  return lines;
}

/**
 * get attributes: the active mdev's assignments as mdevctl attributes, so
 * `mdevctl define` of a running mdev and `mdevctl list` show them. Decimal,
 * adapters then domains then control domains, ascending; [] when not active.
 */
function printAttributes(s: Session): number {
  // Under the lock, so a half-done start or modify is not reported.
  const lock = acquireLock(s.paths.lock, { owner: s.owner, timeoutMs: s.lockTimeoutMs });
  try {
    const read = (attr: string): string | undefined => {
      const path = mdevPath(s.call.uuid, attr);
      return s.sysfs.exists(path) ? s.sysfs.read(path) : undefined;
    };
    const control = read('control_domains');
    const attrs: Record<string, string>[] = [];
    if (control !== undefined && s.sysfs.exists(mdevPath(s.call.uuid, 'matrix'))) {
      const { adapters, domains } = readMdevMatrix(s.sysfs, s.call.uuid);
      const each = (key: string, ids: IdSet): void => ids.ids().forEach((id) => attrs.push({ [key]: `${id}` }));
      each('assign_adapter', adapters);
      each('assign_domain', domains);
      each('assign_control_domain', parseControlDomains(control));
    }
    s.io.stdout(`${JSON.stringify(attrs)}\n`);
    return ACCEPT;
  } finally {
    lock.release();
  }
}

/** get capabilities: mdevctl's version-2 handshake; we support what it offers of our list. */
function answerCapabilities(s: Session): number {
  const where = 'the capabilities JSON on stdin';
  let doc: unknown;
  try {
    doc = JSON.parse(s.stdin);
  } catch (err) {
    throw new InputError(`not valid JSON: ${(err as Error).message}`, { where });
  }
  const provides = (doc as { provides?: unknown } | null)?.provides as Record<string, unknown> | undefined;
  const list = (key: string): string[] => {
    const value = provides?.[key];
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
      throw new InputError(`provides.${key} is missing or not a list of strings`, { where });
    }
    return value;
  };
  if (typeof provides?.['version'] !== 'number') throw new InputError('provides.version is missing or not a number', { where });
  const actions = list('actions');
  const events = list('events');
  const supports = {
    version: 2,
    actions: SUPPORTED_ACTIONS.filter((a) => actions.includes(a)),
    events: SUPPORTED_EVENTS.filter((e) => events.includes(e)),
  };
  s.io.stdout(`${JSON.stringify({ supports })}\n`);
  return ACCEPT;
}

function describeFailure(call: Call, err: unknown): string {
  // mdevctl prefixes what we print with the script's name, so no name of our own here.
  const what = call.event === 'get' ? `cannot get the ${call.action} of` : call.event === 'live' ? 'refused to live-modify' : `refused to ${call.action}`;
  const head = `${what} mdev ${call.uuid}`;
  if (err instanceof Refusal) {
    const lines = err.reasons.length === 1 ? [`${head}: ${err.reasons[0]}`] : [`${head}:`, ...err.reasons.map((r) => `  ${r}`)];
    if (err.hint) lines.push(`  ${err.hint}`);
    return `${lines.join('\n')}\n`;
  }
  if (err instanceof ApPersistError) return `${head}: ${err.describe()}\n`;
  return `${head}: ${(err as Error)?.stack ?? String(err)}\n`;
}
