import type { Command } from 'commander';
import { check } from '../commands/check.js';
import { suggest } from '../commands/suggest.js';
import type { Wrap } from './program.js';

export function registerCheck(program: Command, wrap: Wrap): void {
  program
    .command('check')
    .description('every conflict between mdevs and with the host masks (exit 3 when there is one)')
    .option('--persistent', 'the store and mdevctl autostart definitions only')
    .option('--active', 'the running kernel only')
    .action(wrap((ctx, opts) => check(ctx, opts)));
  program
    .command('suggest-masks')
    .description('host masks that free exactly what the auto mdevs need, keeping the most host queues')
    .option('--include-manual', "free the manual mdevs' queues too (the store's and mdevctl's), so they can be started by hand")
    .action(wrap((ctx, opts) => suggest(ctx, opts)));
}
