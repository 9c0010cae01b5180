import { defineConfig } from 'vitest/config';
import { scratchDir } from './test/support/scratch.js';
import { LongestFirst } from './test/support/sequencer.js';

// Two suites (README, Development):
//
// fast (`npm test`): every unit and in-process test, and the real-tool tests that take seconds
//   (udevadm, systemd-analyze, mdevctl and the FUSE sysfs in private mount namespaces, the
//   callout, the npm package, the fault suite's smoke). Files run in parallel: each works on
//   temporary roots and mount namespaces of its own, and no time bound in them counts on an
//   otherwise idle machine.
// system (`npm run test:system`): what boots containers, fetches Debian trees or runs s390x
//   binaries under qemu, the distribution packages (the .deb's life in a container, the RPM
//   built by rpmbuild) and the whole fault suite; one file at a time, so that the fault suite's
//   time bounds and the container boots do not share the machine with each other.
//
// `npx vitest run` runs both, fast first; `--project fast` or `--project system` one.
export const SYSTEM_TESTS = [
  'test/real/boot.test.ts',
  'test/real/container.test.ts',
  'test/real/libvirt-guests.test.ts',
  'test/real/package-deb.test.ts',
  'test/real/package-rpm.test.ts',
  'test/real/debian12-node.test.ts',
  'test/interop/s390-tools-smoke.test.ts',
  'test/interop/ap-check-live.test.ts',
  'test/fault/fault.test.ts',
];

const scratch = scratchDir();

export default defineConfig({
  test: {
    testTimeout: 60_000,
    pool: 'forks',
    // The support modules' clean-ups after each test and file (test/support/lifecycle.ts).
    setupFiles: ['test/support/setup.ts'],
    // The longest files first, also on a machine that has not timed them yet.
    sequence: { sequencer: LongestFirst },
    projects: [
      {
        extends: true,
        test: {
          name: 'fast',
          include: ['test/**/*.test.ts'],
          exclude: SYSTEM_TESTS,
          // Most of these tests wait on child processes, the file system or a timer rather than
          // compute: more files at once than cores (vitest's default here is cores - 1).
          // AP_PERSIST_TEST_WORKERS=N sets another number (1: one file at a time).
          maxWorkers: Number(process.env['AP_PERSIST_TEST_WORKERS']) || 4,
          // Files share their worker's modules (src/ and the support code, imported and
          // transformed once per worker, not once per file): a third of the suite's CPU time.
          // Nothing here mocks a module or changes a global another file reads; the clean-ups
          // of the support modules run for each file (test/support/setup.ts).
          isolate: false,
          env: {
            // Nothing here goes to the network: no node process started loads the extra CA
            // certificates some environments name (50 ms of CPU at every start).
            NODE_EXTRA_CA_CERTS: '',
            // Temporary roots on a tmpfs where there is one (test/support/scratch.ts).
            ...(scratch ? { TMPDIR: scratch } : {}),
          },
          // This run's temporary directory, and its build of the CLI (test/support/cli-build.ts).
          globalSetup: ['test/support/scratch.ts', 'test/support/cli-build.ts'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'system',
          include: SYSTEM_TESTS,
          fileParallelism: false,
          // After the fast suite when both run (`npx vitest run`), never alongside it.
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
