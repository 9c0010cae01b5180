// The hook (every boot, from udev), the callout (every mdevctl call) and the
// mdev units' start and stop (every auto mdev, at every boot and shutdown)
// skip commander: only their own modules load. Anything this parser does not
// recognise goes the normal way, where commander reports it.

import type { GlobalOptions } from './context.js';

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

export function parseFastPath(argv: readonly string[]): FastCommand | undefined {
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
  const command = argv[i];
  const args = argv.slice(i + 1);
  if (command === 'hook' && parseHookArgs(args)) return { command, globals, args };
  if (command === 'callout' && !args.includes('--help') && !args.includes('-h')) return { command, globals, args };
  // As the units run it: `mdev start UUID`, `mdev stop UUID` (an option, or more, and commander takes it).
  if (command === 'mdev' && args.length === 2 && (args[0] === 'start' || args[0] === 'stop') && !args[1]!.startsWith('-')) return { command, globals, args };
  return undefined;
}
