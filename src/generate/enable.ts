// Enabling the package's units as systemd and the distributions do: a
// preset file (presets/, installed to /usr/lib/systemd/system-preset/) says
// what to enable, and `systemctl preset` applies it once, on the first
// install, so an admin's `systemctl disable` or own preset survives later
// installs and upgrades. `systemctl --root=ROOT` does the same offline on
// a tree that is not the running system. Pure: names and arguments.

import type { HostPaths } from '../host/paths.js';
import { rootPath, type RootPath } from './host-files.js';
import { WAIT_SERVICE } from './unit-names.js';

/** The package's preset file, in usr/lib/systemd/system-preset/. */
export const PRESET_NAME = '80-ap-persist.preset';

/** Where install notes the units it enabled through the preset: they are not enabled again. */
export const PRESET_STATE = 'var/lib/ap-persist/preset-applied';

/**
 * The link generate made itself before the preset existed. A record that
 * still lists it hands it over to systemctl: generate neither rewrites nor
 * removes it, and drops it from the record.
 */
export function releasedLinks(paths: HostPaths): RootPath[] {
  return [`${rootPath(paths, paths.generatedUnitsDir)}/multi-user.target.wants/${WAIT_SERVICE}`];
}

/** The units a preset file enables, in its order: its `enable UNIT` lines (no globs in ours). */
export function presetEnables(text: string): string[] {
  const units: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*enable\s+(\S+)/.exec(line);
    if (m && !units.includes(m[1]!)) units.push(m[1]!);
  }
  return units;
}

/**
 * systemctl's arguments for `verb` on `units`: offline with --root=ROOT for
 * any root but `/`; on `/` through the running manager (or offline in a
 * chroot, as systemctl decides), the daemon reload left to the caller.
 */
export function systemctlArgs(paths: HostPaths, verb: 'preset' | 'disable', units: readonly string[]): string[] {
  return paths.isRealRoot ? ['--no-reload', verb, ...units] : [`--root=${paths.root}`, verb, ...units];
}

export function presetStateText(units: readonly string[]): string {
  return `# ap-persist install applied ${PRESET_NAME} (systemctl preset) to these units once;\n# it does not enable them again. 'ap-persist uninstall' disables them and removes this file.\n${units.map((u) => `${u}\n`).join('')}`;
}
