import type { Command } from 'commander';
import { hook, wait } from '../commands/hook.js';
import type { Wrap } from './program.js';

export function registerHook(program: Command, wrap: Wrap): void {
  program
    .command('hook')
    .description('the AP bus hook (ap-persist-hook@.service): applies masks, loads vfio_ap, checks and starts the auto mdevs')
    .option('--event <instance>', 'the AP bus event the unit was queued for: change-<COMPLETECOUNT>, change or add (default: ACTION, DEVPATH, BINDINGS, COMPLETECOUNT from the environment)')
    .action(wrap((ctx, opts) => hook(ctx, opts)));
  program
    .command('wait')
    .description('boot: block (bounded) until the hook ran and the auto mdevs are up; run the hook if no event came')
    .option('--timeout <seconds>', 'give up after this long', '90')
    .action(wrap((ctx, opts) => wait(ctx, opts)));
}
