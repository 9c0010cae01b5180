// The hook (every boot, from udev), the callout (every mdevctl call) and the
// mdev units' start and stop (every auto mdev, at every boot and shutdown)
// skip commander: only their own modules load. Anything this parser does not
// recognise goes the normal way, where commander reports it.

import type { GlobalOptions } from './context.js';
import { TARGET_EVENTS } from '../generate/unit-names.js';

export interface FastCommand {
  command: 'hook' | 'callout' | 'mdev';
  globals: GlobalOptions;
  args: string[];
}

/** `hook`'s only option, as its unit passes it: `--event INSTANCE`; undefined when the args are anything else. */
export function parseHookArgs(args: readonly string[]): { event?: string } | undefined {
  if (args.length === 0) return {};
  if (args.length === 2 && args[0] === '--event') return { event: args[1]! };
  if (args.length === 1 && args[0]!.startsWith('--event=')) return { event: args[0]!.slice(8) };
  return undefined;
}

/** Every command of the tool and its subcommands (src/cli/program.ts registers them; a test holds the two together). */
export const COMMANDS: Readonly<Record<string, readonly string[]>> = {
  status: [],
  mask: ['show', 'set'],
  mdev: ['list', 'define', 'modify', 'undefine', 'start', 'stop'],
  check: [],
  'suggest-masks': [],
  hook: [],
  wait: [],
  callout: [],
  'libvirt-hook': [],
  generate: [],
  install: [],
  uninstall: [],
  import: [],
};

/** A hook of an event the udev rule queues ap-persist-mdevs.target with (the boot's first): systemd starts the target after it. */
export function queuesTarget(argv: readonly string[]): boolean {
  const { command, args } = splitCommandLine(argv);
  return command === 'hook' && hookQueuesTarget(args);
}

/** queuesTarget of a command line split already: the hook's arguments. */
function hookQueuesTarget(args: readonly string[]): boolean {
  const event = parseHookArgs(args)?.event;
  return event !== undefined && TARGET_EVENTS.includes(event);
}

/**
 * The name of the code cache a command line runs with (src/cli/code-cache.ts):
 * a callout's event and action (`pre-define`), a command and its subcommand
 * (`mask-show`, `mdev-start`), or the command; `hook-boot` for the boot's
 * first hook (it applies the masks, checks and starts every mdev: a later
 * event, which mostly finds all up, would load all that code for nothing),
 * none for other hooks and for anything that is no command of ours.
 */
export function cacheFlavour(argv: readonly string[]): string | undefined {
  const { command, args } = splitCommandLine(argv);
  if (command === 'hook') return hookQueuesTarget(args) ? 'hook-boot' : undefined;
  if (command === 'callout') {
    const value = (short: string, long: string): string | undefined => {
      const at = args.findIndex((a) => a === short || a === long);
      return at >= 0 ? args[at + 1] : args.find((a) => a.startsWith(`${long}=`))?.slice(long.length + 1);
    };
    const event = value('-e', '--event');
    const action = value('-a', '--action');
    return event && action ? `${event}-${action}` : undefined;
  }
  const subcommands = command === undefined || command === 'hook' || !Object.hasOwn(COMMANDS, command) ? undefined : COMMANDS[command];
  if (!subcommands) return undefined;
  const sub = args[0];
  return sub !== undefined && subcommands.includes(sub) ? `${command}-${sub}` : command;
}

/** The global options before the command (as commander reads them there), the command, and what follows it. */
export function splitCommandLine(argv: readonly string[]): { globals: GlobalOptions; command: string | undefined; args: string[] } {
  const globals: GlobalOptions = {};
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') globals.json = true;
    else if (a === '-q' || a === '--quiet') globals.quiet = true;
    else if (a === '-v' || a === '--verbose') globals.verbose = true;
    else if (a === '--exec') globals.exec = true;
    else if ((a === '--root' || a === '--config') && i + 1 < argv.length) globals[a === '--root' ? 'root' : 'config'] = argv[++i]!;
    else if (a.startsWith('--root=')) globals.root = a.slice(7);
    else if (a.startsWith('--config=')) globals.config = a.slice(9);
    else break;
  }
  return { globals, command: argv[i], args: argv.slice(i + 1) };
}

export function parseFastPath(argv: readonly string[]): FastCommand | undefined {
  const { globals, command, args } = splitCommandLine(argv);
  if (command === 'hook' && parseHookArgs(args)) return { command, globals, args };
  if (command === 'callout' && !args.includes('--help') && !args.includes('-h')) return { command, globals, args };
  // As the units run it: `mdev start UUID`, `mdev stop UUID` (an option, or more, and commander takes it).
  if (command === 'mdev' && args.length === 2 && (args[0] === 'start' || args[0] === 'stop') && !args[1]!.startsWith('-')) return { command, globals, args };
  return undefined;
}
