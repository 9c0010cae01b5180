import type { Command } from 'commander';
import { status } from '../commands/status.js';
import type { Wrap } from './program.js';

export function registerStatus(program: Command, wrap: Wrap): void {
  program
    .command('status')
    .description('masks, mdevs and the last hook report')
    .option('--matrix', 'adapter x domain grid of the present APQNs and their owner')
    .action(wrap((ctx, opts) => status(ctx, opts)));
}
