// The order files start in (vitest.config.ts, sequence.sequencer). Vitest
// starts the longest first by the timings of the last run on this machine
// (node_modules/.vite); where it has none (a fresh checkout, every CI run) it
// starts the largest files first, and a short file that runs long (the
// concurrency test, the fault smoke: the work is elsewhere) would start last
// and hold up the end of the run. Those are listed here and start first.

import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { relative } from 'node:path';

/** The fast suite's longest files (a second run on this machine times them itself). */
const LONGEST_FIRST = [
  'test/interop/ap-check-differential.test.ts',
  'test/real/mdevctl-edits.test.ts',
  'test/fault/smoke.test.ts',
  'test/callout/concurrency.test.ts',
  'test/real/sim-sysfs.test.ts',
  'test/hardening/bounds.test.ts',
  'test/build/pack.test.ts',
  'test/cli/status.test.ts',
  'test/real/mdevctl-callout.test.ts',
];

export class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const root = this.ctx.config.root;
    const timed = sorted.every((f) => this.ctx.cache.getFileTestResults(`${f.project.name}:${relative(root, f.moduleId)}`) !== undefined);
    if (timed) return sorted;
    const rank = (f: TestSpecification): number => {
      const i = LONGEST_FIRST.indexOf(relative(root, f.moduleId));
      return i < 0 ? LONGEST_FIRST.length : i;
    };
    // Stable: within the groups vitest made (projects, group order), listed files first.
    return sorted
      .map((f, i) => ({ f, i }))
      .sort((a, b) => {
        const group = a.f.project.config.sequence.groupOrder - b.f.project.config.sequence.groupOrder;
        if (group !== 0) return group;
        if (a.f.project.name !== b.f.project.name) return a.i - b.i;
        return rank(a.f) - rank(b.f) || a.i - b.i;
      })
      .map(({ f }) => f);
  }
}
