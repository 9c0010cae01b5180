// Runs one CLI command in this process and prints its peak memory on stderr,
// so the bench can read wall time and max RSS of the whole command.

import { run } from '../src/cli/program.js';

const code = await run(process.argv.slice(2), {
  stdout: () => {},
  stderr: (t) => void process.stderr.write(t),
  env: process.env,
});
process.stderr.write(`maxrss=${process.resourceUsage().maxRSS}\n`);
process.exitCode = code;
