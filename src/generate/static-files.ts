// The files a package ships (rules/, units/, presets/, the mdevctl callout), placed
// where `install` puts them, with the path of the tool filled in. Pure.

import { basename } from 'node:path';
import { InputError } from '../errors.js';
import type { HostPaths } from '../host/paths.js';
import { rootPath, type FileEntry, type RootPath } from './host-files.js';

export interface PackageFile {
  name: string;
  text: string;
}

export interface PackageAssets {
  /** rules/*: to usr/lib/udev/rules.d/ */
  rules: PackageFile[];
  /** units/*: to usr/lib/systemd/system/ */
  units: PackageFile[];
  /** presets/*: to usr/lib/systemd/system-preset/ */
  presets: PackageFile[];
  renderCallout: (model: CalloutModel) => string;
  /** libvirt's qemu hook: to etc/libvirt/hooks/qemu.d/ap-persist (or hooks/qemu, src/host/libvirt-hooks.ts), run with the callout's node and flags. */
  renderLibvirtHook: (model: LibvirtHookModel) => string;
}

export interface CalloutModel {
  node: string;
  nodeFlags: string;
  bin: string;
}

export interface LibvirtHookModel extends CalloutModel {
  /** The name of the admin's hook that ours, as hooks/qemu, runs first (beside it); '' for none. */
  chained: string;
}

/** The programs the installed files run, by absolute path: udev and mdevctl give no PATH. */
export interface InstalledPrograms {
  /** The node binary. */
  node: string;
  /** ap-persist's bundled script. */
  bin: string;
  /** systemctl, which the udev rule runs to hand events to systemd. */
  systemctl: string;
}

/** The name mdevctl lists the callout under, and libvirt's qemu hook's file name. */
export const CALLOUT_NAME = 'ap-persist';
const TOKENS: Record<string, keyof InstalledPrograms> = { '@NODE@': 'node', '@BIN@': 'bin', '@SYSTEMCTL@': 'systemctl' };
const TOKEN = new RegExp(Object.keys(TOKENS).join('|'), 'g');

/**
 * node's flags for the callout: mdevctl runs callouts from udev, inside
 * udevd's MemoryDenyWriteExecute=yes sandbox, where V8's JIT aborts at start.
 * Interpreted, the callout needs no writable and executable memory.
 */
export const CALLOUT_NODE_FLAGS = '--jitless --no-expose-wasm';

/** Where systemctl is on current distributions (usr-merged everywhere; Debian 12 keeps /bin as a link). */
export const SYSTEMCTL_CANDIDATES = ['/usr/bin/systemctl', '/bin/systemctl'];

// systemd expands `%` and `$` in ExecStart=, udev expands them in RUN, and
// both split at blanks: a path with none of these needs no quoting anywhere.
const SAFE_BIN = /^\/[A-Za-z0-9._+/-]+$/;

/** An absolute path the rules and units run; refuses what they could not quote. */
export function checkProgramPath(path: string, option: '--bin' | '--node', example: string): string {
  if (!SAFE_BIN.test(path)) {
    throw new InputError(`cannot use '${path}' as the path of ${option === '--bin' ? 'ap-persist' : 'node'} in udev rules, systemd units and the mdevctl callout`, {
      where: option,
      hint: `give an absolute path of letters, digits and . _ + - / only, e.g. ${option} ${example}`,
    });
  }
  return path;
}

export function checkBin(bin: string): string {
  return checkProgramPath(bin, '--bin', '/usr/bin/ap-persist');
}

export function checkNode(node: string): string {
  return checkProgramPath(node, '--node', '/usr/bin/node');
}

/** libvirt's qemu hook as it runs the tool; with `chained`, as hooks/qemu running the admin's hook first. */
export function renderLibvirtHook(assets: PackageAssets, programs: InstalledPrograms, chained = ''): string {
  return assets.renderLibvirtHook({ node: programs.node, nodeFlags: CALLOUT_NODE_FLAGS, bin: programs.bin, chained });
}

/** Where the qemu hook goes in qemu.d/, ours by name. */
export function libvirtHookEntryPath(paths: HostPaths): RootPath {
  return `${rootPath(paths, paths.libvirtHooksDir)}/${CALLOUT_NAME}`;
}

/** `libvirtQemuD`: false leaves the qemu.d hook out (install puts the hook elsewhere, or nowhere). */
export function staticEntries(assets: PackageAssets, programs: InstalledPrograms, paths: HostPaths, libvirtQemuD = true): FileEntry[] {
  const fill = (text: string): string => text.replace(TOKEN, (token) => programs[TOKENS[token]!]);
  const place = (dir: string, files: PackageFile[]): FileEntry[] =>
    files.map((f) => ({ kind: 'file', path: `${rootPath(paths, dir)}/${basename(f.name)}`, content: fill(f.text), mode: 0o644 }));
  const model = { node: programs.node, nodeFlags: CALLOUT_NODE_FLAGS, bin: programs.bin };
  const callout = assets.renderCallout(model);
  return [
    ...place(paths.staticRulesDir, assets.rules),
    ...place(paths.staticUnitsDir, assets.units),
    ...place(paths.presetDir, assets.presets),
    ...paths.calloutDirs.map((dir): FileEntry => ({ kind: 'file', path: `${rootPath(paths, dir)}/${CALLOUT_NAME}`, content: callout, mode: 0o755 })),
    ...(libvirtQemuD ? [{ kind: 'file', path: libvirtHookEntryPath(paths), content: renderLibvirtHook(assets, programs), mode: 0o755 } as const] : []),
  ];
}
