// Which daemons must re-read their configuration after files changed: udev
// for rules, systemd for units and wants links, libvirt for its qemu hooks. Pure.

import { LIBVIRT_QEMU_HOOK, type HostPaths } from '../host/paths.js';
import { rootPath, type RootPath } from './host-files.js';

export interface ReloadCommand {
  file: string;
  args: string[];
  /** Present while the daemon runs (sd_booted's test for systemd); absent, there is nothing to reload. */
  runningIf: RootPath;
}

/** What became of a reload: run, or why not. */
export interface ReloadOutcome {
  command: string;
  ran: boolean;
  skipped?: string;
}

export function commandText(c: ReloadCommand): string {
  return [c.file, ...c.args].join(' ');
}

export function reloadCommands(changed: readonly RootPath[], paths: HostPaths): ReloadCommand[] {
  const under = (dirs: string[]): boolean => {
    const prefixes = dirs.map((d) => `${rootPath(paths, d)}/`);
    return changed.some((p) => prefixes.some((d) => p.startsWith(d)));
  };
  const out: ReloadCommand[] = [];
  if (under([paths.generatedRulesDir, paths.staticRulesDir])) out.push({ file: 'udevadm', args: ['control', '--reload'], runningIf: 'run/udev/control' });
  if (under([paths.generatedUnitsDir, paths.staticUnitsDir])) out.push({ file: 'systemctl', args: ['daemon-reload'], runningIf: 'run/systemd/system' });
  // libvirt looks for qemu hooks when it starts and on reload (SIGHUP), not on each call: a new hook needs a reload.
  // hooks/qemu itself is ours too when install chains (libvirt older than 6.5).
  if (under([paths.libvirtHooksDir]) || changed.includes(LIBVIRT_QEMU_HOOK)) {
    out.push({ file: 'systemctl', args: ['try-reload-or-restart', 'libvirtd.service'], runningIf: 'run/libvirtd.pid' });
    out.push({ file: 'systemctl', args: ['try-reload-or-restart', 'virtqemud.service'], runningIf: 'run/virtqemud.pid' });
  }
  return out;
}

export function reloadLines(outcomes: readonly ReloadOutcome[]): string[] {
  return outcomes.map((o) => (o.ran ? `ran: ${o.command}` : `${o.command}: ${o.skipped}`));
}
