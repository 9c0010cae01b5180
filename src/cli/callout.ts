// `ap-persist [--root DIR] [--config FILE] callout ...`: the mdevctl callout
// reached through commander, for --help and for runs on a fake root. The
// arguments go to the callout unparsed, so that this path and the direct one
// from main.ts answer mdevctl alike (a usage error is exit 1 in its protocol,
// where commander's would be 2, "not my type").

import type { Command } from 'commander';
import { CALLOUT_USAGE, runCallout } from '../runtime/callout.js';
import type { Wrap } from './program.js';

export function registerCallout(program: Command, wrap: Wrap): void {
  program
    .command('callout')
    .description('mdevctl callout for vfio_ap-passthrough mdevs (exit 0 accept, 1 reject, 2 not my type)')
    .usage(CALLOUT_USAGE)
    .argument('[args...]')
    .allowUnknownOption()
    .addHelpText(
      'after',
      `
mdevctl runs it from /etc/mdevctl.d/scripts.d/callouts/ (1.2) or
/usr/lib/mdevctl/scripts.d/callouts/ (1.3 and newer), with the device JSON on stdin.
  pre define|modify   an auto mdev must not share an APQN with another auto mdev
                      nor own one the persistent masks give to the host
  pre start           the same against the active mdevs and masks
  live modify         the same, then writes the mdev's ap_config
  get attributes      prints an active mdev's assignments as mdevctl attributes
  get capabilities    answers mdevctl's version-2 handshake
The AP configuration lock (run/lock/s390apconfig.lock) is held for mdevctl
from each pre event to its post event.`,
    )
    .action(wrap((ctx, args: string[]) => runCallout(args, ctx.io, ctx.sysfs, ctx.paths)));
}
