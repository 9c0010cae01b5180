// `npm start`: the main job on the embedded example host, showing what an
// admin wants to see first; then the next boot, simulated on a copy, so the
// example tree itself is never changed.

import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../src/cli/program.js';
import type { Io } from '../src/cli/context.js';
import { simulatedRunner } from '../src/fakehost/sim-runner.js';
import { SimKernel } from '../src/sysfs/sim-kernel.js';
import { exampleRoot } from './build.js';

const io = (env: Record<string, string | undefined> = process.env): Io => ({
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
  env,
});

let worst = 0;
for (const args of [['status'], ['check'], ['generate', '--dry-run']]) {
  process.stdout.write(`\n$ ap-persist --root examples/three-guests ${args.join(' ')}\n`);
  worst = Math.max(worst, await run(['--root', exampleRoot, ...args], io()));
}

// The next boot: the AP bus reports BINDINGS=complete, udev runs the hook.
const copy = mkdtempSync(join(tmpdir(), 'ap-persist-example-'));
try {
  cpSync(exampleRoot, copy, { recursive: true });
  const kernel = SimKernel.fromDisk(copy, '6.0');
  const quiet: Io = { stdout: () => {}, stderr: (t) => void process.stderr.write(t), env: {} };
  const runner = simulatedRunner(kernel, (verb, uuid) => run(['--root', copy, '--exec', 'mdev', verb, uuid], quiet, { sysfs: kernel }));
  const event = { ACTION: 'change', DEVPATH: '/devices/ap', BINDINGS: 'complete', COMPLETECOUNT: '1' };
  process.stdout.write('\n# The next boot, simulated on a copy (current kernel): udev runs the hook on BINDINGS=complete\n');
  process.stdout.write('$ ACTION=change DEVPATH=/devices/ap BINDINGS=complete COMPLETECOUNT=1 ap-persist hook\n');
  worst = Math.max(worst, await run(['--root', copy, '--exec', 'hook'], io(event), { sysfs: kernel, runner }));
  process.stdout.write('\n$ ap-persist status --matrix   # after the boot\n');
  worst = Math.max(worst, await run(['--root', copy, 'status', '--matrix'], io(), { sysfs: kernel }));
} finally {
  rmSync(copy, { recursive: true, force: true });
}
process.exitCode = worst;
