// `ap-persist hook` without commander, with the same errors and exit codes.

import { ApPersistError } from '../errors.js';
import { hook } from '../commands/hook.js';
import { makeContext, type GlobalOptions, type Io } from './context.js';

export async function runFastHook(globals: GlobalOptions, io: Io): Promise<number> {
  try {
    return await hook(makeContext(globals, io));
  } catch (err) {
    io.stderr(`ap-persist: ${err instanceof ApPersistError ? err.describe() : String((err as Error)?.stack ?? err)}\n`);
    return err instanceof ApPersistError ? err.exitCode : 1;
  }
}
