// Where ap-persist's libvirt qemu hook goes. libvirt 6.5 and newer run every
// program in /etc/libvirt/hooks/qemu.d/ after hooks/qemu: ours goes there and
// hooks/qemu stays the admin's. Older libvirt runs hooks/qemu alone, so we
// chain: with no hooks/qemu ours goes there; an admin's one is kept whole
// beside it (same directory, so a script that finds its files by `dirname $0`
// still does, and AppArmor's libvirtd profile lets hooks exec only from
// there), and a hooks/qemu of ours runs it first, as libvirt did, then our
// part. A record says what install did, so that uninstall puts back exactly
// that and nothing an admin changed since.

import { linkSync, lstatSync, renameSync, unlinkSync, chmodSync } from 'node:fs';
import { InputError, RuntimeError } from '../errors.js';
import { writeFileAtomic } from '../fsio/atomic.js';
import { observe, type Observed } from '../fsio/observe.js';
import { readRegularFile } from '../fsio/read.js';
import { rootPath, type RootPath } from '../generate/host-files.js';
import { holdsRecorded, sha256 } from '../generate/manifest.js';
import type { CommandRunner } from '../runtime/commands.js';
import type { Moved } from './callouts.js';
import { LIBVIRT_QEMU_HOOK, type HostPaths } from './paths.js';

export const LIBVIRT_HOOK_MODES = ['auto', 'qemu.d', 'chain', 'none'] as const;
export type LibvirtHookRequest = (typeof LIBVIRT_HOOK_MODES)[number];
export type LibvirtHookMode = Exclude<LibvirtHookRequest, 'auto'>;

/** An admin's hooks/qemu while ours chains it: not a name libvirt runs (only `<driver>` and `<driver>.d/`). */
export const CHAINED_HOOK = 'etc/libvirt/hooks/qemu.ap-persist-chained';
/** What install did to hooks/qemu. */
export const HOOK_RECORD = 'var/lib/ap-persist/libvirt-qemu-hook.json';

/** The first libvirt with hooks/qemu.d/ (docs/hooks.rst). */
const QEMU_D_SINCE: readonly [number, number] = [6, 5];

export interface LibvirtVersion {
  daemon: string;
  version: string;
}

/** `libvirtd (libvirt) 9.0.0` -> 9.0.0. */
export function parseLibvirtVersion(text: string): string | undefined {
  return /\(libvirt\)\s+(\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1];
}

/** Asks the daemon binary (libvirtd, else virtqemud where only split daemons are installed); undefined when neither answers or nothing runs. */
export async function libvirtVersion(runner: CommandRunner): Promise<LibvirtVersion | undefined> {
  for (const daemon of ['libvirtd', 'virtqemud']) {
    const r = await runner.run(daemon, ['--version'], { timeoutMs: 5000 });
    if (!r.ran) return undefined;
    const version = r.exitCode === 0 ? parseLibvirtVersion(r.stdout) : undefined;
    if (version) return { daemon, version };
  }
  return undefined;
}

/** auto: qemu.d, unless the daemon says it is older than 6.5 (no libvirt, or unknown: qemu.d, where a later libvirt finds it). */
export function chooseMode(request: LibvirtHookRequest, found: LibvirtVersion | undefined): LibvirtHookMode {
  if (request !== 'auto') return request;
  if (!found) return 'qemu.d';
  const [major = 0, minor = 0] = found.version.split('.').map(Number);
  return major < QEMU_D_SINCE[0] || (major === QEMU_D_SINCE[0] && minor < QEMU_D_SINCE[1]) ? 'chain' : 'qemu.d';
}

export function checkRequest(value: string | undefined): LibvirtHookRequest {
  if (value === undefined) return 'auto';
  if ((LIBVIRT_HOOK_MODES as readonly string[]).includes(value)) return value as LibvirtHookRequest;
  throw new InputError(`'${value}' is not a libvirt hook mode`, { where: '--libvirt-hooks', hint: `give one of ${LIBVIRT_HOOK_MODES.join(', ')}` });
}

/** The record: the hash of what install wrote to hooks/qemu, and whether the admin's hook is chained from it. */
export interface HookRecord {
  hook: string;
  sha256: string;
  chained: string | null;
}

/** A damaged record stops install and uninstall before anything is touched. */
export function readHookRecord(paths: HostPaths): HookRecord | undefined {
  const path = paths.at(HOOK_RECORD);
  const text = readRegularFile(path, "the record of libvirt's qemu hook");
  if (text === undefined) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    doc = undefined;
  }
  const r = doc as Partial<HookRecord> | undefined;
  if (!r || typeof r.sha256 !== 'string' || !(r.chained === null || typeof r.chained === 'string')) {
    throw new InputError("the record of libvirt's qemu hook is damaged", {
      where: path,
      hint: `compare ${paths.at(LIBVIRT_QEMU_HOOK)} and ${paths.at(CHAINED_HOOK)} by hand, then remove the record`,
    });
  }
  return { hook: `/${LIBVIRT_QEMU_HOOK}`, sha256: r.sha256, chained: r.chained ? `/${CHAINED_HOOK}` : null };
}

function writeRecord(paths: HostPaths, content: string, chained: boolean): void {
  const record: HookRecord = { hook: `/${LIBVIRT_QEMU_HOOK}`, sha256: sha256(content), chained: chained ? `/${CHAINED_HOOK}` : null };
  writeFileAtomic(paths.confined(HOOK_RECORD), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o644 });
}

/** What became of hooks/qemu. Paths absolute, as the admin sees them under --root. */
export interface ChainOutcome {
  /** hooks/qemu written (ours, or ours chaining the admin's). */
  written: string[];
  /** hooks/qemu of ours removed. */
  removed: string[];
  /** The admin's hook moved aside, chained from ours. */
  chained: Moved[];
  /** The admin's hook put back. */
  restored: Moved[];
  /** Left alone, with why: an admin's change since install. */
  kept: { path: string; reason: string }[];
  /** Could not do what was asked; the files stay as they were. */
  failed: { path: string; reason: string }[];
  /** Changed under the root: libvirt re-reads its hooks on reload. */
  changed: RootPath[];
}

const emptyOutcome = (): ChainOutcome => ({ written: [], removed: [], chained: [], restored: [], kept: [], failed: [], changed: [] });

function sameFile(paths: HostPaths, a: string, b: string): boolean {
  try {
    const x = lstatSync(paths.at(a));
    const y = lstatSync(paths.at(b));
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

const holds = (o: Observed, sha: string): boolean => holdsRecorded(o, { path: LIBVIRT_QEMU_HOOK, sha256: sha });

/**
 * chain: hooks/qemu becomes ours (`plain`) when there is none, or ours
 * chaining the admin's (`wrapper`), which is linked to CHAINED_HOOK first
 * and then replaced by rename: libvirt finds a hooks/qemu at every moment,
 * and the admin's file keeps its inode, content, mode and owner.
 */
export function chainQemuHook(paths: HostPaths, record: HookRecord | undefined, plain: string, wrapper: string): ChainOutcome {
  const out = emptyOutcome();
  const qemu = paths.at(LIBVIRT_QEMU_HOOK);
  const aside = paths.at(CHAINED_HOOK);
  // An install stopped between the link and the write: the admin's file is still hooks/qemu.
  if (sameFile(paths, LIBVIRT_QEMU_HOOK, CHAINED_HOOK)) {
    unlinkSync(paths.confined(CHAINED_HOOK));
    record = undefined;
  }
  const now = observe(qemu);
  const ours = now.kind === 'absent' || (record !== undefined && holds(now, record.sha256)) || (now.kind === 'file' && (now.content === plain || now.content === wrapper));
  const put = (content: string, chained: boolean): void => {
    if (now.kind === 'file' && now.content === content && (lstatSync(qemu).mode & 0o777) === 0o755) {
      if (!record || record.sha256 !== sha256(content) || (record.chained !== null) !== chained) writeRecord(paths, content, chained);
      return;
    }
    writeFileAtomic(paths.confined(LIBVIRT_QEMU_HOOK), content, { mode: 0o755 });
    // An existing file's mode is kept by the write: ours must be executable for libvirt.
    chmodSync(qemu, 0o755);
    writeRecord(paths, content, chained);
    out.written.push(qemu);
    out.changed.push(LIBVIRT_QEMU_HOOK);
  };
  if (observe(aside).kind !== 'absent') {
    if (!ours) {
      out.failed.push({
        path: qemu,
        reason: `it changed since ap-persist chained the hook that is now ${aside}; merge the two by hand (or move ${aside} back), then run install again`,
      });
      return out;
    }
    put(wrapper, true);
    return out;
  }
  if (ours) {
    put(plain, false);
    return out;
  }
  if (now.kind === 'other') {
    out.failed.push({ path: qemu, reason: `it is ${now.what}, not a hook ap-persist can chain` });
    return out;
  }
  // The record first: an install stopped after it leaves nothing uninstall would misread.
  writeRecord(paths, wrapper, true);
  try {
    linkSync(qemu, paths.confined(CHAINED_HOOK));
  } catch (err) {
    unlinkSync(paths.confined(HOOK_RECORD));
    out.failed.push({ path: qemu, reason: `cannot keep it as ${aside}: ${(err as Error).message}` });
    return out;
  }
  try {
    writeFileAtomic(paths.confined(LIBVIRT_QEMU_HOOK), wrapper, { mode: 0o755 });
    chmodSync(qemu, 0o755);
  } catch (err) {
    // hooks/qemu is still the admin's: the second name goes, as if nothing happened.
    unlinkSync(paths.confined(CHAINED_HOOK));
    unlinkSync(paths.confined(HOOK_RECORD));
    out.failed.push({ path: qemu, reason: (err as Error).message });
    return out;
  }
  out.chained.push({ from: qemu, to: aside });
  out.written.push(qemu);
  out.changed.push(LIBVIRT_QEMU_HOOK);
  return out;
}

/**
 * Undoes chainQemuHook: the admin's hook renamed back over ours (never a
 * moment without one), or ours removed. What changed since install stays.
 */
export function unchainQemuHook(paths: HostPaths, record: HookRecord | undefined): ChainOutcome {
  const out = emptyOutcome();
  if (!record) return out;
  const qemu = paths.at(LIBVIRT_QEMU_HOOK);
  const aside = paths.at(CHAINED_HOOK);
  // An install stopped between the link and the write: hooks/qemu is the admin's, untouched.
  if (sameFile(paths, LIBVIRT_QEMU_HOOK, CHAINED_HOOK)) {
    unlinkSync(paths.confined(CHAINED_HOOK));
    unlinkSync(paths.confined(HOOK_RECORD));
    return out;
  }
  const now = observe(qemu);
  const ours = now.kind === 'absent' || holds(now, record.sha256);
  if (observe(aside).kind !== 'absent') {
    if (!ours) {
      out.failed.push({ path: qemu, reason: `it changed since ap-persist wrote it, so the hook it chained stays at ${aside}; merge the two by hand` });
      return out;
    }
    try {
      renameSync(paths.confined(CHAINED_HOOK), paths.confined(LIBVIRT_QEMU_HOOK));
    } catch (err) {
      out.failed.push({ path: qemu, reason: `cannot put back ${aside}: ${(err as Error).message}` });
      return out;
    }
    out.restored.push({ from: aside, to: qemu });
    out.changed.push(LIBVIRT_QEMU_HOOK);
  } else if (now.kind !== 'absent') {
    if (!ours) out.kept.push({ path: qemu, reason: 'changed since ap-persist wrote it: it is the admin\'s now' });
    else {
      try {
        unlinkSync(paths.confined(LIBVIRT_QEMU_HOOK));
      } catch (err) {
        throw new RuntimeError(`cannot remove: ${(err as Error).message}`, { where: qemu });
      }
      out.removed.push(qemu);
      out.changed.push(LIBVIRT_QEMU_HOOK);
    }
  }
  unlinkSync(paths.confined(HOOK_RECORD));
  return out;
}

/** The qemu.d hook's path under the root (ours by name). */
export function qemuDHook(paths: HostPaths, name: string): RootPath {
  return `${rootPath(paths, paths.libvirtHooksDir)}/${name}`;
}
