import { Option, type Command } from 'commander';
import { importCommand } from '../commands/import.js';
import type { Wrap } from './program.js';

export function registerImport(program: Command, wrap: Wrap): void {
  program
    .command('import')
    .description("take over chzdev's persistent masks, mdevctl's definitions and/or the running state into the store")
    .addOption(new Option('--from <source>', 'where to import from').choices(['chzdev', 'mdevctl', 'sysfs', 'all']).default('all'))
    .option('--dry-run', 'print what would change')
    .addOption(new Option('--prefer <side>', 'which side wins a conflict; the losing mdevs become start = manual').choices(['store', 'imported']))
    .addOption(new Option('--start <mode>', 'start mode for mdevs found only in sysfs').choices(['auto', 'manual']).default('auto'))
    .action(wrap((ctx, opts) => importCommand(ctx, opts)));
}
