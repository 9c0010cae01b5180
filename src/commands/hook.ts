// ap-persist hook (from udev) and ap-persist wait (from ap-persist-wait.service).

import { existsSync, readFileSync, statSync } from 'node:fs';
import type { Context } from '../cli/context.js';
import { describeFailure } from '../errors.js';
import { loadStore } from '../store/store.js';
import { listActiveMatrices } from '../sysfs/ap-host.js';
import { describeHookReport, readHookReport, type HookReport } from '../runtime/hook-report.js';
import { isHookEvent, runHook } from '../runtime/hook.js';

/** The whole hook's budget: well inside udev's event timeout, so boot never hangs on us. */
export const HOOK_BUDGET_MS = 60_000;

export async function hook(ctx: Context): Promise<number> {
  if (!isHookEvent(ctx.io.env)) {
    if (ctx.verbose) ctx.warn(`ignoring ${ctx.io.env['ACTION']} of ${ctx.io.env['DEVPATH'] ?? '?'} without BINDINGS=complete`);
    return 0;
  }
  const budget = setTimeout(() => {
    ctx.warn(`ap-persist hook: gave up after ${HOOK_BUDGET_MS / 1000} s`);
    process.exit(1);
  }, HOOK_BUDGET_MS);
  budget.unref();
  try {
    const report = await runHook({ paths: ctx.paths, sysfs: ctx.sysfs, runner: ctx.runner, env: ctx.io.env });
    if (ctx.json) ctx.printJson(report);
    else if (!ctx.quiet) for (const line of describeHookReport(report)) ctx.out(line);
    if (!ctx.exec && ctx.runner.log.length && !ctx.json) {
      ctx.info(`not run under --root ${ctx.paths.root} (use --exec to run them): ${ctx.runner.log.join('; ')}`);
    }
    return report.exit_code;
  } finally {
    clearTimeout(budget);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Blocks, bounded, until the hook has run and the auto mdevs it started are
 * up, so libvirt starts guests after their mdevs. If no BINDINGS=complete
 * came (older kernels), it runs the hook itself after a grace period.
 */
export async function wait(ctx: Context, opts: { timeout?: string }): Promise<number> {
  const timeoutMs = Math.max(1, Number(opts.timeout ?? 90)) * 1000;
  const graceMs = Math.min(15_000, timeoutMs / 3);
  const start = Date.now();
  const since = start - (ctx.exec ? processUptimeMs() : Infinity);
  const fresh = (): HookReport | undefined => {
    if (!existsSync(ctx.paths.lastHook)) return undefined;
    // run/ is emptied at boot; under a test root any report counts.
    if (statSync(ctx.paths.lastHook).mtimeMs < since) return undefined;
    return readHookReport(ctx.paths.lastHook);
  };
  let report = fresh();
  while (!report && Date.now() - start < graceMs) {
    await sleep(200);
    report = fresh();
  }
  if (!report) {
    ctx.info('no BINDINGS=complete event seen; running the hook now');
    const code = await hook(ctx);
    report = fresh();
    if (!report) return code || 1;
  }
  let expected = report.mdevs.filter((m) => m.outcome === 'started' || m.outcome === 'already-active').map((m) => m.uuid);
  if (report.exit_code !== 0 && report.mdevs.length === 0) {
    // The hook stopped before the mdevs (the lock, a broken store, I/O): ready means the store's auto mdevs are up.
    try {
      expected = loadStore(ctx.paths.store).store.mdevs.filter((m) => m.start === 'auto').map((m) => m.uuid);
    } catch (err) {
      ctx.warn(`not ready: the hook failed (${report.errors[0] ?? `exit ${report.exit_code}`}) and ${describeFailure(err).message}`);
      return 1;
    }
  }
  for (;;) {
    const active = new Set<string>(listActiveMatrices(ctx.sysfs).map((m) => m.uuid));
    const missing = expected.filter((u) => !active.has(u));
    if (missing.length === 0) {
      ctx.info(`ready: ${expected.length} auto mdev(s) up${report.exit_code ? ' (the hook reported errors: ap-persist status)' : ''}`);
      return 0;
    }
    if (Date.now() - start >= timeoutMs) {
      ctx.warn(`timed out after ${timeoutMs / 1000} s waiting for mdev(s) ${missing.join(', ')}; guests using them may fail to start`);
      return 1;
    }
    await sleep(200);
  }
}

function processUptimeMs(): number {
  // Seconds since boot from /proc/uptime; a report older than the boot is stale.
  try {
    return parseFloat(readFileSync('/proc/uptime', 'utf8')) * 1000;
  } catch {
    return Infinity;
  }
}
