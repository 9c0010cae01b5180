// `ap-persist mdev start|stop UUID` without commander: what each
// ap-persist-mdev@.service runs, once per auto mdev at every boot and
// shutdown. The same errors and exit codes as through commander.

import { mdevStart, mdevStop } from '../commands/lifecycle.js';
import { makeContext, reportFailure, type GlobalOptions, type Io } from './context.js';

export async function runFastUnit(globals: GlobalOptions, args: readonly string[], io: Io): Promise<number> {
  const [verb, ref] = args as [string, string];
  try {
    const ctx = makeContext(globals, io);
    return verb === 'start' ? await mdevStart(ctx, ref) : await mdevStop(ctx, ref);
  } catch (err) {
    return reportFailure(io, err);
  }
}
