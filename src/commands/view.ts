// Shared by the commands: read the host once, print a refusal once.

import type { Context } from '../cli/context.js';
import { checkJson, checkLines } from '../checks/report.js';
import type { CheckWarning } from '../checks/check-host.js';
import type { ConflictList } from '../checks/conflicts.js';
import { readLiveState, readPeerFiles, type HostView } from '../host/state.js';
import { readCallouts } from '../host/callouts.js';
import { loadStore, type LoadedStore } from '../store/store.js';
import { ApPersistError, describeFailure } from '../errors.js';
import { IniDocument } from '../store/ini-document.js';

export function readHostView(ctx: Context): HostView {
  const { mdevctl, boot } = readPeerFiles(ctx.paths);
  return {
    store: loadStore(ctx.paths.store, boot.storeSnapshot),
    mdevctl,
    live: readLiveState(ctx.sysfs),
    boot,
    callouts: readCallouts(ctx.paths),
  };
}

/** Why the store could not be read: where (file:line, or the file), what, and what to do. */
export interface StoreError {
  where: string;
  message: string;
  hint: string | undefined;
  exitCode: number;
  /** As every command prints a failure: `where: what` and the hint. */
  described: string;
}

/**
 * The host view even when the store is broken (status): the store then counts
 * as empty, and its error comes back beside the view, so the live state can
 * still be shown. Everything else fails as in readHostView.
 */
export function readHostViewOrStoreError(ctx: Context): { view: HostView; storeError?: StoreError } {
  const path = ctx.paths.store;
  const { mdevctl, boot } = readPeerFiles(ctx.paths);
  let store: LoadedStore;
  let storeError: StoreError | undefined;
  try {
    store = loadStore(path, boot.storeSnapshot);
  } catch (err) {
    const failure = describeFailure(err);
    const own = err instanceof ApPersistError;
    storeError = {
      where: own && err.where ? err.where : path,
      message: own ? err.message : failure.message,
      hint: own ? err.hint : undefined,
      exitCode: failure.exitCode,
      described: failure.message,
    };
    store = { path, exists: true, text: '', doc: IniDocument.parse('', path), store: { masks: { apmask: undefined, aqmask: undefined }, mdevs: [] } };
  }
  const view: HostView = {
    store,
    mdevctl,
    live: readLiveState(ctx.sysfs),
    boot,
    callouts: readCallouts(ctx.paths),
  };
  return storeError ? { view, storeError } : { view };
}

/** Prints a refused change (exit 3): the check document with --json, else lines on stderr. */
export function reportRefusal(ctx: Context, what: string, result: ConflictList & { warnings?: CheckWarning[] }, changed = 'nothing was changed'): number {
  if (ctx.json) ctx.printJson(checkJson(result, { verbose: ctx.verbose }));
  else {
    ctx.warn(`refused: ${what} would create ${result.conflicts.length + result.omitted} conflict(s); ${changed}`);
    for (const line of checkLines(result, { verbose: ctx.verbose })) ctx.warn(line);
  }
  return 3;
}

export function printWarnings(ctx: Context, warnings: readonly CheckWarning[]): void {
  if (ctx.quiet) return;
  for (const w of warnings) ctx.warn(`warning: ${w.message}`);
}
