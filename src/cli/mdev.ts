import { Option, type Command } from 'commander';
import { mdevDefine, mdevList, mdevModify, mdevUndefine } from '../commands/mdev.js';
import { mdevStart, mdevStop } from '../commands/lifecycle.js';
import type { Wrap } from './program.js';

export function registerMdev(program: Command, wrap: Wrap): void {
  const mdev = program.command('mdev').description('vfio_ap mediated devices');
  const withOptions = (cmd: Command): Command =>
    cmd
      .option('--adapters <list>', 'adapter IDs, e.g. 5,6 or 0x05-0x06')
      .option('--domains <list>', 'usage domain IDs, e.g. 4,0xab')
      .option('--control-domains <list>', 'control domain IDs')
      .option('--name <name>', 'a name for the admin (the guest, say)')
      .addOption(new Option('--start <mode>', 'auto: made at boot; manual: made by hand; guest: made for its libvirt guest').choices(['auto', 'manual', 'guest']))
      .option('--no-generate', "change the store only; leave the boot files for a later generate");
  mdev
    .command('list')
    .description('defined and active mdevs')
    .option('--defined', 'only those in the store')
    .option('--active', 'only the active ones')
    .action(wrap((ctx, opts) => mdevList(ctx, opts)));
  withOptions(mdev.command('define').description('add an mdev to the store (a UUID is made when none is given)').argument('[uuid]')).action(
    wrap((ctx, uuid, opts) => mdevDefine(ctx, uuid, opts)),
  );
  withOptions(mdev.command('modify').description('change an mdev in the store').argument('<uuid|name>', "the mdev's UUID, or its name in the store")).action(
    wrap((ctx, uuid, opts) => mdevModify(ctx, uuid, opts)),
  );
  mdev
    .command('undefine')
    .description('remove an mdev from the store')
    .argument('<uuid|name>', "the mdev's UUID, or its name in the store")
    .option('--no-generate', "change the store only; leave the boot files for a later generate")
    .action(wrap((ctx, uuid, opts) => mdevUndefine(ctx, uuid, opts)));
  mdev
    .command('start')
    .description('create the mdev from the store (through mdevctl where there is one), refusing any conflict')
    .argument('<uuid|name>', "the mdev's UUID, or its name in the store")
    .action(wrap((ctx, uuid) => mdevStart(ctx, uuid)));
  mdev
    .command('stop')
    .description('remove the active mdev (refused while a guest uses it)')
    .argument('<uuid|name>', "the mdev's UUID, or its name in the store")
    .action(wrap((ctx, uuid) => mdevStop(ctx, uuid)));
}
