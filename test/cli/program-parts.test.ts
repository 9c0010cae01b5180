// run() builds only the part of the command tree a command line names
// (src/cli/program.ts COMMAND_PARTS): every top-level command must be in
// exactly the part that registers it, or that command would not be found.

import { describe, expect, it } from 'vitest';
import { buildProgram, COMMAND_PARTS, commandOf } from '../../src/cli/program.js';

const io = { stdout: () => {}, stderr: () => {}, env: {} };
const wrap = () => async () => {};
const names = (only?: string): string[] => buildProgram(io, wrap, only).commands.map((c) => c.name()).sort();

describe('the command tree in parts', () => {
  it('each part registers exactly its commands, and together the whole tree', () => {
    const all = names();
    expect(COMMAND_PARTS.flatMap((p) => p.commands).sort()).toEqual(all);
    for (const part of COMMAND_PARTS) for (const command of part.commands) expect(names(command), command).toEqual([...part.commands].sort());
  });

  it('finds the command after the global options, and gives up on anything else', () => {
    expect(commandOf(['--root', '/x', '--json', '-q', 'mask', 'show'])).toBe('mask');
    expect(commandOf(['--root=/x', '--config', 'c', '--exec', '-v', 'suggest-masks'])).toBe('suggest-masks');
    expect(commandOf(['status', '--root', '/x'])).toBe('status');
    for (const argv of [[], ['--help'], ['-V'], ['help', 'mask'], ['-vq', 'status'], ['--root'], ['statu'], ['--bogus', 'status']]) expect(commandOf(argv), argv.join(' ')).toBeUndefined();
  });
});
