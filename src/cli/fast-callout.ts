// `ap-persist callout ...` without commander: mdevctl runs it on every
// define, start, modify and stop of every mdev.

import { HostPaths } from '../host/paths.js';
import { runCallout } from '../runtime/callout.js';
import { FileSysfs } from '../sysfs/file-sysfs.js';
import type { GlobalOptions, Io } from './context.js';

export function runFastCallout(globals: GlobalOptions, args: string[], io: Io): Promise<number> {
  const paths = new HostPaths(globals.root ?? '/', globals.config);
  return runCallout(args, io, new FileSysfs(paths.root), paths);
}
