// Host commands on a simulated host: modprobe loads vfio_ap into the
// simulated kernel, systemctl runs our mdev units' ExecStart in-process.
// With it a boot (event -> hook -> masks -> vfio_ap -> mdevs) runs end to end
// without a machine.

import type { SimKernel } from '../sysfs/sim-kernel.js';
import { commandLine, type CommandRunner } from '../runtime/commands.js';
import { mdevUnitUuid } from '../generate/unit-names.js';

/**
 * Runs `ap-persist mdev start|stop UUID` as the unit would; returns its exit
 * code, undefined while it still runs, or 'skipped' when a condition of the
 * unit failed (systemd then runs nothing and leaves its state).
 */
export type UnitAction = (verb: 'start' | 'stop', uuid: string) => Promise<number | undefined | 'skipped'>;


export interface SimulatedRunner extends CommandRunner {
  /** Exit code of each unit run, by UUID, last run last. */
  readonly units: Map<string, number>;
}

/**
 * `units` is systemd's memory of the units' results, shared by the commands
 * of one simulated boot; `wants` lists the UUIDs of the mdev units the target
 * wants (generate's links): starting the target starts those not active.
 */
export function simulatedRunner(
  kernel: SimKernel,
  unit: UnitAction,
  units = new Map<string, number>(),
  wants: () => string[] = () => [],
  /** Units systemd shows as activating (a hook still running), by name. */
  activating: () => readonly string[] = () => [],
): SimulatedRunner {
  const log: string[] = [];
  const ok = { exitCode: 0, stdout: '', stderr: '', timedOut: false, ran: true };
  return {
    log,
    units,
    async run(file, args) {
      log.push(commandLine(file, args));
      if (file === 'modprobe' && args[0] === 'vfio_ap') {
        try {
          kernel.loadVfioAp();
        } catch (err) {
          // As modprobe reports a module that would not load.
          return { exitCode: 1, stdout: '', stderr: `modprobe: ERROR: could not insert 'vfio_ap': ${(err as Error).message}`, timedOut: false, ran: true };
        }
        return ok;
      }
      if (file === 'systemctl' && args[0] === 'show') {
        // Each unit as systemd shows it: its last run active or failed, never run inactive.
        const blocks = args.filter((a) => !a.startsWith('-') && a !== 'show').map((name) => {
          const code = units.get(mdevUnitUuid(name) ?? name);
          const state = code === undefined ? 'inactive' : code === 0 ? 'active' : 'failed';
          return `Id=${name}\nActiveState=${state}\nResult=${code ? 'exit-code' : 'success'}\n`;
        });
        return { ...ok, stdout: blocks.join('\n') };
      }
      if (file === 'systemctl' && args[0] === 'list-units') {
        // `--state=activating PATTERN...`, as systemctl lists them with --no-legend --plain: one line per unit.
        const patterns = args.slice(1).filter((a) => !a.startsWith('-')).map((g) => new RegExp(`^${g.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`));
        const listed = args.includes('--state=activating') ? activating().filter((u) => patterns.length === 0 || patterns.some((re) => re.test(u))) : [];
        return { ...ok, stdout: listed.map((u) => `${u} loaded activating start ${u}\n`).join('') };
      }
      if (file === 'systemctl') {
        const verb = args.find((a) => a === 'start' || a === 'stop' || a === 'restart');
        if (verb) {
          // --no-block: systemctl returns once the jobs are queued; the units' results show later.
          const run = async (uuid: string, how: typeof verb): Promise<void> => {
            // restart: ExecStop, then ExecStart.
            if (how === 'restart') await unit('stop', uuid);
            const code = await unit(how === 'restart' ? 'start' : how, uuid);
            // A start its condition skips leaves the unit as it was; after a restart's stop, inactive.
            if (code === 'skipped') {
              if (how === 'restart') units.delete(uuid);
              return;
            }
            // A unit stopped cleanly is inactive, one whose ExecStop failed is failed; a start still running shows no result yet.
            if (code === undefined || (how === 'stop' && code === 0)) units.delete(uuid);
            else units.set(uuid, code);
          };
          const named = args.filter((a) => !a.startsWith('-') && a !== verb);
          for (const name of named) {
            const uuid = mdevUnitUuid(name);
            if (uuid) await run(uuid, verb);
            else if (name.endsWith('.target')) {
              // The target runs nothing; its start starts, after the units named with it, each unit it wants that is not up.
              if (verb === 'stop') units.delete(name);
              else units.set(name, 0);
            }
          }
          if (verb !== 'stop' && named.some((n) => n.endsWith('.target'))) {
            for (const uuid of wants()) if (units.get(uuid) !== 0) await run(uuid, 'start');
          }
        }
        return ok;
      }
      if (file === 'udevadm') return ok;
      return { exitCode: 127, stdout: '', stderr: `${file}: not simulated`, timedOut: false, ran: true };
    },
  };
}
