// What systemd says of our units, in one `systemctl show` for all of them.

import type { CommandRunner } from './commands.js';

export interface UnitState {
  /** active, activating, inactive, failed, ... */
  active: string;
  /** success, exit-code, timeout, ... */
  result: string;
}

/** Each unit's state by name; empty where systemctl did not answer (or only recorded the call). */
export async function unitStates(runner: CommandRunner, units: readonly string[], timeoutMs = 5_000): Promise<Map<string, UnitState>> {
  const states = new Map<string, UnitState>();
  if (units.length === 0) return states;
  const r = await runner.run('systemctl', ['show', '--property=Id,ActiveState,Result', ...units], { timeoutMs });
  if (r.exitCode !== 0) return states;
  // One block per unit, separated by a blank line, properties in any order.
  for (const block of r.stdout.split(/\n\s*\n/)) {
    const props = new Map(block.split('\n').map((l): [string, string] => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    const id = props.get('Id');
    if (id) states.set(id, { active: props.get('ActiveState') ?? '', result: props.get('Result') ?? '' });
  }
  return states;
}
