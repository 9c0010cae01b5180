// `ap-persist hook` without commander, with the same errors and exit codes.

import { hook } from '../commands/hook.js';
import { makeContext, reportFailure, type GlobalOptions, type Io } from './context.js';
import { parseHookArgs } from './fast-path.js';

export async function runFastHook(globals: GlobalOptions, args: readonly string[], io: Io): Promise<number> {
  try {
    return await hook(makeContext(globals, io), parseHookArgs(args));
  } catch (err) {
    return reportFailure(io, err);
  }
}
