// `ap-persist hook` without commander, with the same errors and exit codes.

import { describeFailure } from '../errors.js';
import { hook } from '../commands/hook.js';
import { makeContext, type GlobalOptions, type Io } from './context.js';

export async function runFastHook(globals: GlobalOptions, io: Io): Promise<number> {
  try {
    return await hook(makeContext(globals, io));
  } catch (err) {
    const failure = describeFailure(err);
    io.stderr(`ap-persist: ${failure.message}\n`);
    return failure.exitCode;
  }
}
