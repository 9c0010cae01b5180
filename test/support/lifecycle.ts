// Clean-ups that support modules need after every test, or after every test
// file, of each file that uses them. A support module cannot call vitest's
// afterEach/afterAll at its top level: in the fast suite test files share a
// worker's module cache (vitest.config.ts, isolate: false), so a module is
// evaluated once, in the first file that imports it, and its hooks would run
// for that file alone. It registers its clean-up here instead, and
// test/support/setup.ts (run before every test file) hooks these lists into
// each file.

type CleanUp = () => void | Promise<void>;

const eachTest: CleanUp[] = [];
const eachFile: CleanUp[] = [];

/** `fn` runs after every test of every file (from the first import of the module that registers it). */
export function afterEveryTest(fn: CleanUp): void {
  eachTest.push(fn);
}

/** `fn` runs after every test file, once its own afterAll hooks have run. */
export function afterEveryFile(fn: CleanUp): void {
  eachFile.push(fn);
}

export async function runAfterTest(): Promise<void> {
  for (const fn of eachTest) await fn();
}

export async function runAfterFile(): Promise<void> {
  for (const fn of eachFile) await fn();
}
