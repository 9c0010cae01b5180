// The hook report's time: written as toISOString writes it, without its cost.

import { describe, expect, it } from 'vitest';
import { isoTime } from '../../src/runtime/hook-report.js';

describe('the report time', () => {
  it('is what toISOString says, for any instant', () => {
    const instants = [0, 1, 999, 1_000, 951_782_400_000 /* a leap day */, 1_798_761_599_999 /* a year's last ms */, Date.UTC(2026, 10, 21, 9, 5, 7, 42), -62_135_596_800_000 /* year 1 */];
    for (const ms of instants) expect(isoTime(new Date(ms)), String(ms)).toBe(new Date(ms).toISOString());
  });
});
