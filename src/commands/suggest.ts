// ap-persist suggest-masks: what `mask set` to run so that the auto mdevs get
// their queues and the host keeps the most.

import type { Context } from '../cli/context.js';
import { autostartMdevs, persistentConfig, runningNotAuto } from '../checks/check-host.js';
import { suggestMasks } from '../checks/suggest.js';
import { IdSet } from '../model/idset.js';
import { compareMdevs, mdevLabel, type MdevDefinition } from '../model/mdev.js';
import type { HostView } from '../host/state.js';
import { readHostView } from './view.js';

/**
 * The manual mdevs (the store's, and mdevctl's own definitions the store does
 * not hold) that are not running: running ones are counted anyway.
 */
function idleManualMdevs(view: HostView, config: ReturnType<typeof persistentConfig>): MdevDefinition[] {
  const ours = new Set(config.mdevs.map((m) => m.uuid as string));
  const running = new Set(view.live.mdevs.map((m) => m.uuid));
  const manual = [...config.mdevs.filter((m) => m.start === 'manual'), ...view.mdevctl.definitions.filter((m) => m.start === 'manual' && !ours.has(m.uuid))];
  return manual.filter((m) => !running.has(m.uuid)).sort(compareMdevs);
}

export function suggest(ctx: Context, opts: { includeManual?: boolean } = {}): number {
  const view = readHostView(ctx);
  const config = persistentConfig(view);
  const autos = autostartMdevs(config, view.mdevctl);
  // Running mdevs keep their queues too: masks that gave them away could not be applied safely now,
  // and those mdevs could not be made again at the next boot.
  const running = runningNotAuto(view, autos);
  const manual = idleManualMdevs(view, config);
  const counted = opts.includeManual ? manual : [];
  const present = view.live.apBus && view.live.queues.length ? view.live.queues : undefined;
  const s = suggestMasks([...autos, ...running, ...counted], present);
  const apmask = s.apmask.toRanges();
  const aqmask = s.aqmask.toRanges();
  if (ctx.json) {
    ctx.printJson({
      apmask,
      aqmask,
      host_queues: s.hostQueues,
      counted: present ? 'present' : 'all',
      exhaustive: s.exhaustive,
      auto_mdevs: autos.length,
      running_mdevs: running.length,
      manual_mdevs: manual.length,
      manual_counted: Boolean(opts.includeManual),
      ...(opts.includeManual ? {} : { manual_not_counted: manual.map((m) => m.uuid) }),
    });
    return 0;
  }
  ctx.out(`apmask=${apmask} aqmask=${aqmask}`);
  ctx.info(
    `the host keeps ${s.hostQueues} ${present ? 'present queue(s)' : 'of all 65,536 APQNs'}; ${autos.length} auto mdev(s) get theirs` +
      `${running.length ? `, ${running.length} other running mdev(s) keep theirs` : ''}` +
      `${counted.length ? `, ${counted.length} manual mdev(s) get theirs too` : ''}` +
      `${s.exhaustive ? '' : ' (a good choice, not proven the best: many adapters)'}`,
  );
  if (!opts.includeManual && manual.length) {
    ctx.info(
      `note: ${manual.length} manual mdev(s) not running were not counted (${manual.map(mdevLabel).join(', ')}); these masks may give the host their queues, so they could not start; --include-manual counts them`,
    );
  }
  // An empty list is no SPEC; the host owning nothing is the all-zero mask.
  const spec = (ranges: string): string => ranges || IdSet.empty().toKernelHex();
  ctx.info(`to apply: ap-persist mask set --persistent apmask=${spec(apmask)} aqmask=${spec(aqmask)}`);
  return 0;
}
