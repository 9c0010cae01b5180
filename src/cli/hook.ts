import type { Command } from 'commander';
import { hook, wait } from '../commands/hook.js';
import type { Wrap } from './program.js';

export function registerHook(program: Command, wrap: Wrap): void {
  program
    .command('hook')
    .description('udev runtime hook: reads ACTION, DEVPATH, BINDINGS, COMPLETECOUNT; applies masks, loads vfio_ap, starts auto mdevs')
    .action(wrap((ctx) => hook(ctx)));
  program
    .command('wait')
    .description('boot: block (bounded) until the hook ran and the auto mdevs are up; run the hook if no event came')
    .option('--timeout <seconds>', 'give up after this long', '90')
    .action(wrap((ctx, opts) => wait(ctx, opts)));
}
