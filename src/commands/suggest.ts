// ap-persist suggest-masks: what `mask set` to run so that the auto mdevs get
// their queues and the host keeps the most.

import type { Context } from '../cli/context.js';
import { autostartMdevs, persistentConfig, runningNotAuto } from '../checks/check-host.js';
import { suggestMasks } from '../checks/suggest.js';
import { IdSet } from '../model/idset.js';
import { readHostView } from './view.js';

export function suggest(ctx: Context): number {
  const view = readHostView(ctx);
  const autos = autostartMdevs(persistentConfig(view), view.mdevctl);
  // Running mdevs keep their queues too: masks that gave them away could not be applied safely now,
  // and those mdevs could not be made again at the next boot.
  const running = runningNotAuto(view, autos);
  const present = view.live.apBus && view.live.queues.length ? view.live.queues : undefined;
  const s = suggestMasks([...autos, ...running], present);
  const apmask = s.apmask.toRanges();
  const aqmask = s.aqmask.toRanges();
  if (ctx.json) {
    ctx.printJson({ apmask, aqmask, host_queues: s.hostQueues, counted: present ? 'present' : 'all', exhaustive: s.exhaustive, auto_mdevs: autos.length, running_mdevs: running.length });
    return 0;
  }
  ctx.out(`apmask=${apmask} aqmask=${aqmask}`);
  ctx.info(
    `the host keeps ${s.hostQueues} ${present ? 'present queue(s)' : 'of all 65,536 APQNs'}; ${autos.length} auto mdev(s) get theirs` +
      `${running.length ? `, ${running.length} other running mdev(s) keep theirs` : ''}` +
      `${s.exhaustive ? '' : ' (a good choice, not proven the best: many adapters)'}`,
  );
  // An empty list is no SPEC; the host owning nothing is the all-zero mask.
  const spec = (ranges: string): string => ranges || IdSet.empty().toKernelHex();
  ctx.info(`to apply: ap-persist mask set --persistent apmask=${spec(apmask)} aqmask=${spec(aqmask)}`);
  return 0;
}
