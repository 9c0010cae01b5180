// commander wiring: options and commands of DESIGN.md, each handed to its
// implementation under src/commands. Usage errors (commander's included) exit 2.

import { Command, CommanderError, Option } from 'commander';
import { ApPersistError } from '../errors.js';
import { check } from '../commands/check.js';
import { maskSet, maskShow } from '../commands/mask.js';
import { mdevDefine, mdevList, mdevModify, mdevUndefine } from '../commands/mdev.js';
import { status } from '../commands/status.js';
import { makeContext, type Context, type GlobalOptions, type Io } from './context.js';
import type { Sysfs } from '../sysfs/sysfs.js';

type Action = (ctx: Context, ...args: any[]) => number | Promise<number>;

export interface RunOptions {
  /** A sysfs other than the files under --root (the simulated kernel in tests). */
  sysfs?: Sysfs;
}

export async function run(argv: readonly string[], io: Io, runOptions: RunOptions = {}): Promise<number> {
  let exitCode = 0;
  const program = new Command('ap-persist');
  program
    .description('Persistent, conflict-checked vfio_ap crypto pass-through for IBM Z KVM hosts')
    .option('--root <dir>', 'operate on the host tree under DIR', '/')
    .option('--config <file>', 'the store (default: ROOT/etc/ap-persist/ap-persist.conf)')
    .option('--json', 'print one JSON document on stdout')
    .option('-v, --verbose', 'say more')
    .option('-q, --quiet', 'say only what is asked')
    .option('--exec', 'run host commands (modprobe, systemctl, udevadm, mdevctl) even under a --root other than /')
    .exitOverride()
    .showHelpAfterError('(ap-persist --help lists the commands)')
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });

  const wrap =
    (action: Action) =>
    async (...args: unknown[]): Promise<void> => {
      const cmd = args[args.length - 1] as Command;
      const ctx = makeContext(cmd.optsWithGlobals() as GlobalOptions, io, runOptions.sysfs);
      exitCode = await action(ctx, ...args.slice(0, -1));
    };

  program
    .command('status')
    .description('masks, mdevs and the last hook report')
    .option('--matrix', 'adapter x domain grid of the present APQNs and their owner')
    .action(wrap((ctx, opts) => status(ctx, opts)));

  const mask = program.command('mask').description('host AP masks (apmask, aqmask)');
  mask.command('show').description('persistent and active masks').action(wrap((ctx) => maskShow(ctx)));
  mask
    .command('set')
    .description('change the masks: apmask=SPEC aqmask=SPEC (IDs owned by the host, +/- changes, or 0x + 64 hex digits)')
    .argument('<specs...>', 'apmask=SPEC and/or aqmask=SPEC')
    .option('--persistent', 'change the store only')
    .option('--active', 'change the running kernel only')
    .option('--dry-run', 'print what would change')
    .action(wrap((ctx, specs, opts) => maskSet(ctx, specs, opts)));

  const mdev = program.command('mdev').description('vfio_ap mediated devices');
  const mdevOptions = (cmd: Command): Command =>
    cmd
      .option('--adapters <list>', 'adapter IDs, e.g. 5,6 or 0x05-0x06')
      .option('--domains <list>', 'usage domain IDs, e.g. 4,0xab')
      .option('--control-domains <list>', 'control domain IDs')
      .option('--name <name>', 'a name for the admin (the guest, say)')
      .addOption(new Option('--start <mode>', 'auto: started at boot; manual: defined only').choices(['auto', 'manual']));
  mdev
    .command('list')
    .description('defined and active mdevs')
    .option('--defined', 'only those in the store')
    .option('--active', 'only the active ones')
    .action(wrap((ctx, opts) => mdevList(ctx, opts)));
  mdevOptions(mdev.command('define').description('add an mdev to the store (a UUID is made when none is given)').argument('[uuid]')).action(
    wrap((ctx, uuid, opts) => mdevDefine(ctx, uuid, opts)),
  );
  mdevOptions(mdev.command('modify').description('change an mdev in the store').argument('<uuid>')).action(
    wrap((ctx, uuid, opts) => mdevModify(ctx, uuid, opts)),
  );
  mdev
    .command('undefine')
    .description('remove an mdev from the store')
    .argument('<uuid>')
    .action(wrap((ctx, uuid) => mdevUndefine(ctx, uuid)));

  program
    .command('check')
    .description('every conflict between mdevs and with the host masks')
    .option('--persistent', 'the store and mdevctl autostart definitions only')
    .option('--active', 'the running kernel only')
    .action(wrap((ctx, opts) => check(ctx, opts)));

  // Every subcommand reports usage errors through the program's override.
  const configure = (cmd: Command): void => {
    cmd.exitOverride().configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
    cmd.commands.forEach(configure);
  };
  program.commands.forEach(configure);

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (err) {
    return handleError(err, io);
  }
}

function handleError(err: unknown, io: Io): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') return 0;
    // commander printed its message already.
    return 2;
  }
  if (err instanceof ApPersistError) {
    io.stderr(`ap-persist: ${err.describe()}\n`);
    return err.exitCode;
  }
  io.stderr(`ap-persist: ${(err as Error)?.stack ?? String(err)}\n`);
  return 1;
}
