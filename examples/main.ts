// `npm start`: the main job on the embedded example host, showing what an
// admin wants to see first. Read-only: the example tree is not changed.

import { run } from '../src/cli/program.js';
import type { Io } from '../src/cli/context.js';
import { exampleRoot } from './build.js';

const io: Io = {
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
  env: process.env,
};

const steps: string[][] = [
  ['status'],
  ['mdev', 'list'],
  ['check'],
];

let worst = 0;
for (const args of steps) {
  process.stdout.write(`\n$ ap-persist --root examples/three-guests ${args.join(' ')}\n`);
  const code = await run(['--root', exampleRoot, ...args], io);
  worst = Math.max(worst, code);
}
process.exitCode = worst;
