// commander wiring: options and commands of DESIGN.md, each handed to its
// implementation under src/commands. Usage errors (commander's included) exit 2.

import { Command, CommanderError } from 'commander';
import { registerCallout } from './callout.js';
import { registerCheck } from './check.js';
import { registerGenerate } from './generate.js';
import { registerMask } from './mask.js';
import { registerMdev } from './mdev.js';
import { registerStatus } from './status.js';
import { registerHook } from './hook.js';
import { registerImport } from './import.js';
import { registerLibvirtHook } from './libvirt-hook.js';
import { packageVersion } from '../package-info.js';
import { makeContext, reportFailure, type Context, type ContextOverrides, type GlobalOptions, type Io } from './context.js';
import { splitCommandLine } from './fast-path.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Action = (ctx: Context, ...args: any[]) => number | Promise<number>;
/** Turns a command implementation into a commander action. */
export type Wrap = (action: Action) => (...args: unknown[]) => Promise<void>;

/** A sysfs other than the files under --root (the simulated kernel), a runner that runs no host command. */
export type RunOptions = ContextOverrides;

/** Each part of the command tree and the top-level commands it registers. */
export const COMMAND_PARTS: readonly { commands: readonly string[]; register: (program: Command, wrap: Wrap) => void }[] = [
  { commands: ['status'], register: registerStatus },
  { commands: ['mask'], register: registerMask },
  { commands: ['mdev'], register: registerMdev },
  { commands: ['check', 'suggest-masks'], register: registerCheck },
  { commands: ['hook', 'wait'], register: registerHook },
  { commands: ['callout'], register: registerCallout },
  { commands: ['libvirt-hook'], register: registerLibvirtHook },
  { commands: ['generate', 'install', 'uninstall'], register: registerGenerate },
  { commands: ['import'], register: registerImport },
];

/**
 * The top-level command a command line names, when nothing before it is
 * anything but a global option; undefined otherwise (help, --version, an
 * unknown command or option: commander then needs the whole tree).
 */
export function commandOf(argv: readonly string[]): string | undefined {
  const { command } = splitCommandLine(argv);
  return command !== undefined && COMMAND_PARTS.some((p) => p.commands.includes(command)) ? command : undefined;
}

/**
 * The whole command tree, options and descriptions: what `run` parses, and
 * what the man page and the bash completion are generated from
 * (src/cli/docs.ts), so they cannot drift apart. With `only`, the part that
 * holds that command: commander then sets up a few commands, not all of
 * them, for the one the command line runs (the same parse, help and errors
 * for it).
 */
export function buildProgram(io: Io, wrap: Wrap, only?: string): Command {
  const program = new Command('ap-persist');
  program
    .description('Persistent, conflict-checked vfio_ap crypto pass-through for IBM Z KVM hosts')
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .option('--root <dir>', 'operate on the host tree under DIR', '/')
    .option('--config <file>', 'the store (default: ROOT/etc/ap-persist/ap-persist.conf)')
    .option('--json', 'print one JSON document on stdout')
    .option('-v, --verbose', 'say more')
    .option('-q, --quiet', 'say only what is asked')
    .option('--exec', 'run host commands (modprobe, systemctl, udevadm, mdevctl) even under a --root other than /')
    .exitOverride()
    .showHelpAfterError('(ap-persist --help lists the commands)')
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });

  for (const part of COMMAND_PARTS) if (only === undefined || part.commands.includes(only)) part.register(program, wrap);

  // Every subcommand reports usage errors through the program's override.
  const configure = (cmd: Command): void => {
    cmd.exitOverride().configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
    cmd.commands.forEach(configure);
  };
  program.commands.forEach(configure);
  return program;
}

export async function run(argv: readonly string[], io: Io, runOptions: RunOptions = {}): Promise<number> {
  let exitCode = 0;
  const wrap: Wrap =
    (action: Action) =>
    async (...args: unknown[]): Promise<void> => {
      const cmd = args[args.length - 1] as Command;
      const ctx = makeContext(cmd.optsWithGlobals() as GlobalOptions, io, runOptions);
      exitCode = await action(ctx, ...args.slice(0, -1));
    };
  const program = buildProgram(io, wrap, commandOf(argv));
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
  return reportFailure(io, err);
}
