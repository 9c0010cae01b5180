// ap-persist hook (ap-persist-hook@<event>.service, queued by udev) and
// ap-persist wait (ap-persist-wait.service, before libvirt).

import { existsSync, readFileSync, statSync } from 'node:fs';
import type { Context } from '../cli/context.js';
import { describeFailure, InputError } from '../errors.js';
import { mdevUnit } from '../generate/unit-names.js';
import { loadStore } from '../store/store.js';
import { listActiveMdevs, type ActiveMdev } from '../sysfs/ap-host.js';
import { sameMatrix, type MdevDefinition } from '../model/mdev.js';
import { describeHookReport, readHookReport, type HookReport } from '../runtime/hook-report.js';
import { eventProperties, isHookEvent, runHook } from '../runtime/hook.js';

/** The whole hook's budget: inside its unit's TimeoutStartSec, so the boot never hangs on us. */
export const HOOK_BUDGET_MS = 60_000;

export interface HookOptions {
  /** The unit's instance (`change-3`, `add`): the AP bus event it was queued for. */
  event?: string;
}

/**
 * The journal's priority prefixes (sd-daemon(3)), used when stdout is the
 * journal: what needs the admin is an error, what was kept back a warning.
 */
function journalLine(line: string): string {
  if (/^ {2}(error: |mdev .*: (skipped|failed))/.test(line)) return `<3>${line}`;
  if (/^ {2}kept out of the host pool/.test(line)) return `<4>${line}`;
  return `<6>${line}`;
}

export async function hook(ctx: Context, opts: HookOptions = {}): Promise<number> {
  let env = ctx.io.env;
  if (opts.event !== undefined) {
    const props = eventProperties(opts.event);
    if (!props) {
      throw new InputError(`unknown AP bus event '${opts.event}'`, { where: '--event', hint: 'give change-<COMPLETECOUNT>, change or add, as 42-ap-persist.rules names the hook instances' });
    }
    env = props;
  }
  if (!isHookEvent(env)) {
    if (ctx.verbose) ctx.warn(`ignoring ${env['ACTION']} of ${env['DEVPATH'] ?? '?'} without BINDINGS=complete`);
    return 0;
  }
  const budget = setTimeout(() => {
    ctx.warn(`ap-persist hook: gave up after ${HOOK_BUDGET_MS / 1000} s`);
    process.exit(1);
  }, HOOK_BUDGET_MS);
  budget.unref();
  try {
    const report = await runHook({ paths: ctx.paths, sysfs: ctx.sysfs, runner: ctx.runner, env });
    if (ctx.json) ctx.printJson(report);
    else if (!ctx.quiet) {
      const toJournal = ctx.io.env['JOURNAL_STREAM'] !== undefined;
      for (const line of describeHookReport(report)) ctx.out(toJournal ? journalLine(line) : line);
    }
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

/** What became of one auto mdev the boot should bring up. */
interface Awaited {
  uuid: string;
  label: string;
  /** Undefined while still pending. */
  result?: 'up' | 'failed';
  reason?: string;
}

/** Seconds as the admin gives them: a positive number, at most a day. */
function parseTimeout(text: string): number {
  const s = Number(text);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(text.trim()) || !(s > 0) || s > 86_400) {
    throw new InputError(`'${text}' is not a number of seconds`, { where: '--timeout', hint: 'give a positive number of seconds, e.g. --timeout 90' });
  }
  return s * 1000;
}

/**
 * The units still pending that systemd reports failed (ActiveState=failed),
 * with systemd's Result. One `systemctl show` for all of them; on a root
 * where host commands do not run, nothing is known to have failed.
 */
async function failedUnits(ctx: Context, pending: readonly Awaited[]): Promise<Map<string, string>> {
  const failed = new Map<string, string>();
  if (!ctx.exec || pending.length === 0) return failed;
  const units = pending.map((p) => mdevUnit(p.uuid));
  const r = await ctx.runner.run('systemctl', ['show', '--property=Id,ActiveState,Result', ...units], { timeoutMs: 5_000 });
  if (r.exitCode !== 0) return failed;
  // One block per unit, separated by a blank line, in any order of properties.
  for (const block of r.stdout.split(/\n\s*\n/)) {
    const props = Object.fromEntries(block.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    if (props['ActiveState'] === 'failed' && props['Id']) failed.set(props['Id'], props['Result'] ?? 'failed');
  }
  return failed;
}

/**
 * Blocks, bounded, until the hook has run and every auto mdev it started is
 * up or has definitively failed, so libvirt starts guests after their mdevs
 * and is never held back for one that cannot come. If no BINDINGS=complete
 * came (older kernels), it runs the hook itself after a grace period.
 * Exits 1, naming them, when an auto mdev is not up.
 */
export async function wait(ctx: Context, opts: { timeout?: string }): Promise<number> {
  const timeoutMs = parseTimeout(opts.timeout ?? '90');
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
    await sleep(100);
    report = fresh();
  }
  if (!report) {
    ctx.info('no BINDINGS=complete event seen; running the hook now');
    const code = await hook(ctx);
    report = fresh();
    if (!report) return code || 1;
  }
  const label = (uuid: string, name?: string): string => (name ? `${uuid} (${name})` : uuid);
  // The store says what "up" means: created with its whole matrix. A half-made mdev
  // (created, then an assignment refused and rolled back) is not up.
  let store: MdevDefinition[] | undefined;
  let storeError: unknown;
  try {
    store = loadStore(ctx.paths.store).store.mdevs;
  } catch (err) {
    storeError = err;
  }
  let awaited: Awaited[] = report.mdevs.map((m) => {
    const a: Awaited = { uuid: m.uuid, label: label(m.uuid, m.name) };
    if (m.outcome === 'skipped' || m.outcome === 'failed') Object.assign(a, { result: 'failed', reason: m.reason ?? m.outcome });
    return a;
  });
  if (report.exit_code !== 0 && report.mdevs.length === 0) {
    // The hook stopped before the mdevs (the lock, a broken store, I/O): ready means the store's auto mdevs are up.
    if (!store) {
      ctx.warn(`not ready: the hook failed (${report.errors[0] ?? `exit ${report.exit_code}`}) and ${describeFailure(storeError).message}`);
      return 1;
    }
    awaited = store.filter((m) => m.start === 'auto').map((m) => ({ uuid: m.uuid, label: label(m.uuid, m.name) }));
  }
  const wanted = new Map((store ?? []).map((m) => [m.uuid as string, m]));
  const isUp = (m: ActiveMdev): boolean => {
    const def = wanted.get(m.uuid);
    return def ? sameMatrix(m, def) : true;
  };
  for (let round = 0; ; round++) {
    const active = new Set<string>(listActiveMdevs(ctx.sysfs).filter(isUp).map((m) => m.uuid));
    for (const a of awaited) if (!a.result && active.has(a.uuid)) a.result = 'up';
    // systemd's view every half second: a unit that failed will not bring its mdev.
    if (round % 5 === 0) {
      const failed = await failedUnits(ctx, awaited.filter((a) => !a.result));
      for (const a of awaited) {
        const result = failed.get(mdevUnit(a.uuid));
        if (!a.result && result) Object.assign(a, { result: 'failed', reason: `${mdevUnit(a.uuid)} failed (${result}): journalctl -u ${mdevUnit(a.uuid)}` });
      }
    }
    const pending = awaited.filter((a) => !a.result);
    if (pending.length === 0) break;
    if (Date.now() - start >= timeoutMs) {
      for (const a of pending) Object.assign(a, { result: 'failed', reason: `not up after ${timeoutMs / 1000} s` });
      break;
    }
    await sleep(100);
  }
  const up = awaited.filter((a) => a.result === 'up');
  const failed = awaited.filter((a) => a.result === 'failed');
  const problems = failed.length > 0 || report.exit_code !== 0;
  for (const a of failed) ctx.warn(`mdev ${a.label} is not up: ${a.reason}`);
  const line = `${problems ? 'not ready' : 'ready'}: ${up.length} of ${awaited.length} auto mdev(s) up`;
  if (problems) {
    const hookErrors = report.errors.length ? `; the hook reported: ${report.errors.join('; ')}` : '';
    ctx.warn(`${line}${hookErrors} (ap-persist status; journalctl -u 'ap-persist-*')`);
    return 1;
  }
  ctx.info(line);
  return 0;
}

function processUptimeMs(): number {
  // Seconds since boot from /proc/uptime; a report older than the boot is stale.
  try {
    return parseFloat(readFileSync('/proc/uptime', 'utf8')) * 1000;
  } catch {
    return Infinity;
  }
}
