import type { Command } from 'commander';
import { maskSet, maskShow } from '../commands/mask.js';
import type { Wrap } from './program.js';

export function registerMask(program: Command, wrap: Wrap): void {
  const mask = program.command('mask').description('host AP masks (apmask, aqmask)');
  mask.command('show').description('persistent and active masks').action(wrap((ctx) => maskShow(ctx)));
  mask
    .command('set')
    .description('change the masks: apmask=SPEC aqmask=SPEC (host-owned IDs, +/- changes, or 0x + 64 hex digits)')
    .argument('<specs...>', 'apmask=SPEC and/or aqmask=SPEC')
    .option('--persistent', 'change the store only')
    .option('--active', 'change the running kernel only')
    .option('--dry-run', 'print what would change')
    .option('--force', "persist masks that give the host queues a running mdev holds (it could not be made again at the next boot)")
    .option('--no-generate', 'change the store only; leave the boot files (41-ap.rules) for a later generate')
    .action(wrap((ctx, specs, opts) => maskSet(ctx, specs, opts)));
}
