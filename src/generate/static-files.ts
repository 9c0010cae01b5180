// The files a package ships (rules/, units/, the mdevctl callout), placed
// where `install` puts them, with the path of the tool filled in. Pure.

import { basename } from 'node:path';
import { InputError } from '../errors.js';
import type { HostPaths } from '../host/paths.js';
import { rootPath, type FileEntry } from './host-files.js';

export interface PackageFile {
  name: string;
  text: string;
}

export interface PackageAssets {
  /** rules/*: to usr/lib/udev/rules.d/ */
  rules: PackageFile[];
  /** units/*: to usr/lib/systemd/system/ */
  units: PackageFile[];
  renderCallout: (model: { bin: string }) => string;
}

/** The name mdevctl lists the callout under. */
export const CALLOUT_NAME = 'ap-persist';
export const BIN_TOKEN = '@BIN@';

// systemd expands `%` and `$` in ExecStart=, udev expands them in RUN, and
// both split at blanks: a path with none of these needs no quoting anywhere.
const SAFE_BIN = /^\/[A-Za-z0-9._+/-]+$/;

/** The absolute path the rules and units run; refuses what they could not quote. */
export function checkBin(bin: string): string {
  if (!SAFE_BIN.test(bin)) {
    throw new InputError(`cannot use '${bin}' as the path of ap-persist in udev rules and systemd units`, {
      where: '--bin',
      hint: "give an absolute path of letters, digits and . _ + - / only, e.g. --bin /usr/bin/ap-persist",
    });
  }
  return bin;
}

export function staticEntries(assets: PackageAssets, bin: string, paths: HostPaths): FileEntry[] {
  const fill = (text: string): string => text.split(BIN_TOKEN).join(bin);
  const place = (dir: string, files: PackageFile[]): FileEntry[] =>
    files.map((f) => ({ kind: 'file', path: `${rootPath(paths, dir)}/${basename(f.name)}`, content: fill(f.text), mode: 0o644 }));
  const callout = assets.renderCallout({ bin });
  return [
    ...place(paths.staticRulesDir, assets.rules),
    ...place(paths.staticUnitsDir, assets.units),
    ...paths.calloutDirs.map((dir): FileEntry => ({ kind: 'file', path: `${rootPath(paths, dir)}/${CALLOUT_NAME}`, content: callout, mode: 0o755 })),
  ];
}
