// The whole fault suite (`npm run test:system`): 200 kills, every hanging
// host command, every full disk and /run, and the race. test/fault/suite.ts
// says what each part checks; smoke.test.ts runs a few of each in `npm test`.

import { DISK_CASES } from './disk.js';
import { HANG_CASES } from './hang.js';
import { faultSuite } from './suite.js';

faultSuite({
  name: 'whole',
  kills: 200,
  hangCases: HANG_CASES,
  diskCases: DISK_CASES,
  race: { defines: 8, mdevctlRuns: 4, definesPerRun: 3, hooks: 3 },
});
