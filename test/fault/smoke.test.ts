// The fault suite's smoke (`npm test`): the same checks as the whole suite
// (fault.test.ts, `npm run test:system`) on fewer draws. Two kills of each
// command (drawn as in the whole suite: a quarter at any time of the run,
// the rest among its writes), each followed by every check of a kill; every full-disk and read-only /run case (a second or two); the hanging
// host commands whose bound is wait's --timeout or no deadline at all (the
// others wait out the hook's own 15 s deadlines, and run in the whole suite);
// the dead writer's temporary files. The race of everything at once runs in
// the whole suite; test/callout/concurrency.test.ts holds the lock under
// contention here.

import { DISK_CASES } from './disk.js';
import { HANG_CASES, type HangCase } from './hang.js';
import { faultSuite } from './suite.js';

function named<T extends { name: string }>(cases: readonly T[], name: string): T {
  const c = cases.find((x) => x.name === name);
  if (!c) throw new Error(`no case "${name}" in the whole suite`);
  return c;
}
const hang = (name: string): HangCase => named(HANG_CASES, name);

faultSuite({
  name: 'smoke',
  kills: 8,
  // Two uninterrupted runs of each command, not three: still checked to leave the same host.
  referenceRuns: 2,
  hangCases: [
    hang('hook, modprobe exits at once but leaves a child holding the pipe'),
    {
      ...hang('wait --timeout 5, everything hangs with children on the pipe'),
      name: 'wait --timeout 2, everything hangs with children on the pipe',
      args: ['wait', '--timeout', '2'],
      boundMs: 2_000 + 1_100 + 3_000,
    },
  ],
  diskCases: [
    named(DISK_CASES, "the store's file system full: mask set --persistent"),
    named(DISK_CASES, "mdevctl's definitions' file system full: mdev define"),
    named(DISK_CASES, "mdevctl's definitions' file system with room for 16 of 81 new definitions: generate"),
    named(DISK_CASES, 'a read-only /run: hook, mask set, status, check, wait'),
  ],
});
