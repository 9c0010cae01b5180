import { Option, type Command } from 'commander';
import { importCommand } from '../commands/import.js';
import type { Wrap } from './program.js';

export function registerImport(program: Command, wrap: Wrap): void {
  program
    .command('import')
    .description("take over chzdev's persistent masks, mdevctl's definitions and/or the running state into the store")
    .option('--from <sources>', 'where to import from: chzdev, mdevctl, sysfs (comma-separated) or all', 'all')
    .option('--dry-run', 'print what would change')
    .addOption(new Option('--prefer <side>', 'which side wins a conflict; the losing mdevs become start = manual').choices(['store', 'imported']))
    .addOption(new Option('--start <mode>', 'start mode for mdevs found only in sysfs').choices(['auto', 'manual']).default('auto'))
    .option('--no-generate', 'change the store only; leave the boot files for a later generate')
    .action(wrap((ctx, opts) => importCommand(ctx, opts)));
}
