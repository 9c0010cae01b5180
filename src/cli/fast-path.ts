// The hook (every boot, from udev) and the callout (every mdevctl call) skip
// commander: only their own modules load. Anything this parser does not
// recognise goes the normal way, where commander reports it.

import type { GlobalOptions } from './context.js';

export interface FastCommand {
  command: 'hook' | 'callout';
  globals: GlobalOptions;
  args: string[];
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
  if (command === 'hook' && args.length === 0) return { command, globals, args };
  if (command === 'callout' && !args.includes('--help') && !args.includes('-h')) return { command, globals, args };
  return undefined;
}
