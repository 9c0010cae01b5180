// `npm run build` (after tsc and the bundle): writes the man page and the bash
// completion, generated from the commander definitions (src/cli/docs.ts), into
// dist/share/. SOURCE_DATE_EPOCH, when set, dates the man page.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { renderDocs } from '../src/cli/docs.js';
import { packageRoot } from '../src/package-info.js';

for (const [rel, text] of Object.entries(renderDocs())) {
  const path = join(packageRoot(), rel);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text, { mode: 0o644 });
}
