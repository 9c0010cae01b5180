// Rebuilds examples/three-guests/ from the same builder the tests use:
//   npm run build && node dist/examples/build.js

import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildFakeHost } from '../src/fakehost/builder.js';
import { threeGuestsHost } from '../src/fakehost/three-guests.js';

export const exampleRoot = fileURLToPath(new URL('../../examples/three-guests', import.meta.url));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  rmSync(exampleRoot, { recursive: true, force: true });
  buildFakeHost(exampleRoot, threeGuestsHost());
  console.log(`wrote ${exampleRoot}`);
}
