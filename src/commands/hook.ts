// ap-persist hook (ap-persist-hook@<event>.service, queued by udev) and
// ap-persist wait (ap-persist-wait.service, before libvirt).

import { existsSync } from 'node:fs';
import type { Context } from '../cli/context.js';
import { withPriority } from '../cli/journal.js';
import { describeFailure, InputError } from '../errors.js';
import { mdevUnit, TARGET_EVENTS } from '../generate/unit-names.js';
import { loadStore } from '../store/store.js';
import { effectiveConfig } from '../checks/drift.js';
import { readPeerFiles } from '../host/state.js';
import { listActiveMdevs, readAttr, type ActiveMdev } from '../sysfs/ap-host.js';
import { mdevLabel, runsAs, type MdevDefinition } from '../model/mdev.js';
import { hookReportLines, readHookReport, type HookReport } from '../runtime/hook-report.js';
import { eventProperties, isHookEvent, runHook } from '../runtime/hook.js';
import { unitStates } from '../runtime/units.js';
import { HOLD_ALL, readHeldReasons } from '../runtime/held-marks.js';
import { giveUpAfter, type CommandRunner } from '../runtime/commands.js';

/** The whole hook's budget: inside its unit's TimeoutStartSec, so the boot never hangs on us. */
export const HOOK_BUDGET_MS = 60_000;

export interface HookOptions {
  /** The unit's instance (`change-3`, `add`): the AP bus event it was queued for. */
  event?: string;
  /** Epoch ms: wait runs the hook within its own timeout. */
  deadline?: number;
  /** The whole hook's bound, HOOK_BUDGET_MS, and how the process ends when it passes (tests give their own). */
  budget?: { ms: number; exit: (code: number) => void };
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
  // Run by wait, the deadline bounds every step; the process is wait's and must not end here.
  // The budget runs from here, but its timer is set at the first host command: until then the
  // hook does not wait on anything (the timer could not fire), and an event that changes
  // nothing runs none, so it never pays for node's timers.
  const started = Date.now();
  const budgetMs = opts.budget?.ms ?? HOOK_BUDGET_MS;
  let budget: NodeJS.Timeout | undefined;
  const runner: CommandRunner = {
    log: ctx.runner.log,
    run(file, args, options) {
      if (opts.deadline === undefined && !budget) {
        budget = giveUpAfter(budgetMs - (Date.now() - started), () => ctx.warn(`ap-persist hook: gave up after ${budgetMs / 1000} s`), 1, opts.budget?.exit);
      }
      return ctx.runner.run(file, args, options);
    },
  };
  try {
    // Only systemd runs the target after us: on a host (or --exec), as the instance the rule queues it with.
    const targetQueued = ctx.exec && opts.event !== undefined && TARGET_EVENTS.includes(opts.event);
    const report = await runHook({ paths: ctx.paths, sysfs: ctx.sysfs, runner, env, targetQueued, ...(opts.deadline ? { deadline: opts.deadline } : {}) });
    if (ctx.json) ctx.printJson(report);
    else if (!ctx.quiet) {
      // To the journal with sd-daemon(3) priority prefixes: `journalctl -p err` shows the refusals.
      // One write for the whole report: a line per mdev, each its own write, was a system call per mdev.
      ctx.out(hookReportLines(report).map((line) => (ctx.io.journal ? withPriority(line.text, line.priority) : line.text)).join('\n'));
    }
    if (!ctx.exec && ctx.runner.log.length && !ctx.json) {
      ctx.info(`not run under --root ${ctx.paths.root} (use --exec to run them): ${ctx.runner.log.join('; ')}`);
    }
    return report.exit_code;
  } finally {
    // Only when set: node's clearTimeout is compiled at its first call, for nothing in an event that runs no command.
    if (budget) clearTimeout(budget);
  }
}

/** The longest the wait waits for udev's events to be done, within its own timeout. */
const SETTLE_MS = 30_000;

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

/** A report of a hook that failed before it judged any mdev (the lock, a broken store, I/O). */
const stoppedBeforeMdevs = (r: HookReport): boolean => r.exit_code !== 0 && r.mdevs.length === 0;

/** A hook unit still running: its report is coming, the wait must not run a second hook. */
async function hookRunning(ctx: Context, leftMs: number): Promise<boolean> {
  if (!ctx.exec) return false;
  const r = await ctx.runner.run('systemctl', ['list-units', '--no-legend', '--plain', '--state=activating', 'ap-persist-hook@*.service'], { timeoutMs: Math.max(100, Math.min(5_000, leftMs)) });
  return r.exitCode === 0 && r.stdout.trim() !== '';
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
  // The bus bound every queue already and no hook reported: its event came before this boot's udevd
  // (zcrypt in the initramfs), and before 6.19 no coldplug event stands in for it. A short grace for
  // a hook still queued, not the 15 s kept for kernels that say nothing (no `bindings` before 5.11).
  const bound = /\(complete\)/.test(readAttr(ctx.sysfs, 'bus/ap/bindings') ?? '');
  const graceMs = Math.min(bound ? 2_000 : 15_000, timeoutMs / 3);
  const start = Date.now();
  // run/ is a tmpfs emptied at boot: any report there is this boot's.
  const fresh = (): HookReport | undefined => readHookReport(ctx.paths.lastHook);
  let report = fresh();
  while (!report && Date.now() - start < graceMs) {
    await sleep(100);
    report = fresh();
  }
  /** The report a hook unit still running will write, while `pending` says the one at hand is no verdict. */
  const whileAHookRuns = async (pending: (r: HookReport | undefined) => boolean): Promise<void> => {
    while (pending(report) && Date.now() - start < timeoutMs && (await hookRunning(ctx, timeoutMs - (Date.now() - start)))) {
      await sleep(100);
      report = fresh() ?? report;
    }
    // Once more: the hook may have written its report and ended between the last read and the question.
    report = fresh() ?? report;
  };
  // An event came late and its hook runs now: its report is the one to wait for.
  await whileAHookRuns((r) => !r);
  if (!report) {
    ctx.info('no BINDINGS=complete event seen; running the hook now');
    const code = await hook(ctx, { deadline: start + timeoutMs });
    report = fresh();
    if (!report) return code || 1;
  }
  // A hook that stopped before the mdevs (the lock: the boot's add and change-1 both came, and the
  // other hook held it) has not the last word while another hook still runs: its report is awaited.
  await whileAHookRuns((r) => r !== undefined && stoppedBeforeMdevs(r));
  // The boot's configuration says what "up" means: created with its whole matrix (mdevctl's
  // where it changed one of ours). A half-made mdev (created, then an assignment refused
  // and rolled back) is not up.
  let store: MdevDefinition[] | undefined;
  let storeError: unknown;
  try {
    const { boot } = readPeerFiles(ctx.paths);
    store = effectiveConfig(loadStore(ctx.paths.store, boot.storeSnapshot).store, boot).mdevs;
  } catch (err) {
    storeError = err;
  }
  let awaited: Awaited[] = report.mdevs.map((m) => {
    const a: Awaited = { uuid: m.uuid, label: mdevLabel(m) };
    if (m.outcome === 'skipped' || m.outcome === 'failed') Object.assign(a, { result: 'failed', reason: m.reason ?? m.outcome });
    return a;
  });
  const beforeMdevs = stoppedBeforeMdevs(report);
  if (beforeMdevs) {
    // The hook stopped before the mdevs (the lock, a broken store, I/O): ready means the store's auto mdevs are up.
    if (!store) {
      ctx.warn(`not ready: the hook failed (${report.errors[0] ?? `exit ${report.exit_code}`}) and ${describeFailure(storeError).message}`);
      return 1;
    }
    awaited = store.filter((m) => m.start === 'auto').map((m) => ({ uuid: m.uuid, label: mdevLabel(m) }));
  }
  // Without a hook that got as far as the mdevs, no one starts those not up yet: do not wait for them. Unless an
  // earlier hook of this boot had the target start them (its mark): the report is then a later event's hook's,
  // which failed (on the lock, say) after that verdict, and systemd is bringing the mdevs up all the same.
  const afterVerdict = beforeMdevs && existsSync(ctx.paths.targetStarted);
  const nobodyStarts = beforeMdevs && !afterVerdict ? `the hook failed: ${report.errors[0] ?? `exit ${report.exit_code}`}` : undefined;
  if (afterVerdict) {
    // What the boot's hook held back (its marks, with its reasons) systemd skips: those do not come.
    const held = new Map(readHeldReasons(ctx.paths).map((h) => [h.name, h.reason]));
    for (const a of awaited) {
      const reason = held.get(a.uuid) ?? held.get(HOLD_ALL);
      if (reason !== undefined && !a.result) Object.assign(a, { result: 'failed', reason: `held back: ${reason}` });
    }
  }
  const wanted = new Map((store ?? []).map((m) => [m.uuid as string, m]));
  const isUp = (m: ActiveMdev): boolean => {
    const def = wanted.get(m.uuid);
    return def ? runsAs(m, def) : true;
  };
  for (let round = 0; ; round++) {
    const active = new Set<string>(listActiveMdevs(ctx.sysfs).filter(isUp).map((m) => m.uuid));
    for (const a of awaited) if (!a.result && active.has(a.uuid)) a.result = 'up';
    if (nobodyStarts) for (const a of awaited) if (!a.result) Object.assign(a, { result: 'failed', reason: nobodyStarts });
    // systemd's view every half second: a unit that failed will not bring its mdev.
    if (round % 5 === 0 && ctx.exec) {
      const states = await unitStates(ctx.runner, awaited.filter((a) => !a.result).map((a) => mdevUnit(a.uuid)), Math.max(100, Math.min(5_000, timeoutMs - (Date.now() - start))));
      for (const a of awaited) {
        const unit = mdevUnit(a.uuid);
        const state = states.get(unit);
        if (!a.result && state?.active === 'failed') Object.assign(a, { result: 'failed', reason: `${unit} failed (${state.result}): journalctl -u ${unit}` });
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
  // mdevctl's own autostart runs inside the udev events of vfio_ap's matrix device, and for an mdev
  // the kernel refuses it may still be trying, making the mdev and removing it again: libvirt must not
  // start in that moment and find it half made. Where udevd runs, those events are waited for (bounded).
  if (failed.length > 0 && ctx.exec && existsSync(ctx.paths.at('run/udev/control'))) {
    const left = Math.min(SETTLE_MS, timeoutMs - (Date.now() - start));
    if (left > 0) await ctx.runner.run('udevadm', ['settle', `--timeout=${Math.ceil(left / 1000)}`], { timeoutMs: left + 1_000 });
  }
  // A later hook's failure after the boot's verdict is its own unit's (systemctl --failed shows it), not the mdevs'.
  if (afterVerdict) ctx.warn(`warning: a later hook failed (${report.errors[0] ?? `exit ${report.exit_code}`}) after the boot's hook had the mdevs started (journalctl -u 'ap-persist-hook@*')`);
  const problems = failed.length > 0 || (report.exit_code !== 0 && !afterVerdict);
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
