// ap-persist check: every conflict, exit 3 when there is one.

import type { Context } from '../cli/context.js';
import { checkHost } from '../checks/check-host.js';
import { checkJson, checkLines } from '../checks/report.js';
import { readHostView } from './view.js';

export function check(ctx: Context, opts: { persistent?: boolean; active?: boolean }): number {
  const both = !opts.persistent && !opts.active;
  const view = readHostView(ctx);
  const result = checkHost(view, { persistent: both || Boolean(opts.persistent), active: both || Boolean(opts.active) });
  const ok = result.conflicts.length === 0;
  if (ctx.json) ctx.printJson(checkJson(result, { verbose: ctx.verbose }));
  else {
    for (const line of checkLines(result, { verbose: ctx.verbose })) (line.startsWith('warning') ? ctx.warn : ctx.out)(line);
    if (ok) ctx.info('no conflicts');
    else ctx.out(`${result.conflicts.length + result.omitted} conflict(s)`);
  }
  return ok ? 0 : 3;
}
