// Run before every test file (vitest.config.ts, setupFiles): the support
// modules' clean-ups (test/support/lifecycle.ts) for this file. Registered
// first, these after-hooks run after the file's own.

import { afterAll, afterEach } from 'vitest';
import { runAfterFile, runAfterTest } from './lifecycle.js';

afterEach(runAfterTest);
afterAll(runAfterFile);
