// generate --diff against GNU diff -u: with lines that occur once each, the
// alignment is unambiguous, so both must print the very same hunks.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { unifiedDiff } from '../../src/generate/diff.js';
import { tempDir } from '../support/host.js';
import { itWith, requireTools } from '../support/real-tools.js';

/** A small deterministic generator, so a failure can be replayed. */
function* random(seed: number): Generator<number> {
  let x = seed;
  for (;;) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    yield x / 2 ** 31;
  }
}

function edit(lines: string[], rnd: Generator<number>): string[] {
  const out = [...lines];
  const edits = 1 + Math.floor(rnd.next().value * 4);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rnd.next().value * (out.length + 1));
    const kind = rnd.next().value;
    if (kind < 0.33) out.splice(at, 0, `new ${e}`);
    else if (kind < 0.66) out.splice(at, 1 + Math.floor(rnd.next().value * 3));
    else out.splice(at, 1, `changed ${e}`);
  }
  return out;
}

describe('unified diff', () => {
  itWith(requireTools('diff'), 'prints the hunks GNU diff -u prints', () => {
    const dir = tempDir();
    const rnd = random(41);
    for (let round = 0; round < 200; round++) {
      const before = Array.from({ length: Math.floor(rnd.next().value * 30) }, (_, i) => `line ${i}`);
      const after = edit(before, rnd);
      const a = before.map((l) => `${l}\n`).join('');
      const b = after.map((l) => `${l}\n`).join('');
      writeFileSync(join(dir, 'a'), a);
      writeFileSync(join(dir, 'b'), b);
      const gnu = spawnSync('diff', ['-u', 'a', 'b'], { cwd: dir, encoding: 'utf8' }).stdout;
      const hunks = (text: string): string => text.split('\n').slice(2).join('\n');
      expect(hunks(unifiedDiff(a, b, 'f')), `round ${round}:\n${a}---\n${b}`).toBe(hunks(gnu));
    }
  });
});
