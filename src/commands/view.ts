// Shared by the commands: read the host once, print a refusal once.

import type { Context } from '../cli/context.js';
import { checkJson, checkLines } from '../checks/report.js';
import type { CheckWarning } from '../checks/check-host.js';
import type { ConflictList } from '../checks/conflicts.js';
import { readBootFiles, readLiveState, readMdevctlDefinitions, type HostView } from '../host/state.js';
import { readCallouts } from '../host/callouts.js';
import { loadStore } from '../store/store.js';

export function readHostView(ctx: Context): HostView {
  const mdevctl = readMdevctlDefinitions(ctx.paths);
  return {
    store: loadStore(ctx.paths.store),
    mdevctl,
    live: readLiveState(ctx.sysfs),
    boot: readBootFiles(ctx.paths, mdevctl),
    callouts: readCallouts(ctx.paths),
  };
}

/** Prints a refused change (exit 3): the check document with --json, else lines on stderr. */
export function reportRefusal(ctx: Context, what: string, result: ConflictList & { warnings?: CheckWarning[] }): number {
  if (ctx.json) ctx.printJson(checkJson(result));
  else {
    ctx.warn(`refused: ${what} would create ${result.conflicts.length + result.omitted} conflict(s); nothing was changed`);
    for (const line of checkLines(result)) ctx.warn(line);
  }
  return 3;
}

export function printWarnings(ctx: Context, warnings: readonly CheckWarning[]): void {
  if (ctx.quiet) return;
  for (const w of warnings) ctx.warn(`warning: ${w.message}`);
}
