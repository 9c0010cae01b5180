// The package's own files: templates/ (compiled with handlebars), rules/ and
// units/, found from this module's location in the source tree or in dist/.
// The only module under src/generate that reads files; it reads nothing of
// the host.

import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';
import type { RenderChzdevRules } from './chzdev-rules.js';
import type { PackageAssets, PackageFile } from './static-files.js';

const PACKAGE_NAME = 'ap-persist';

/** The directory holding package.json: two levels up from src/generate, three from dist/src/generate. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === PACKAGE_NAME) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`the ${PACKAGE_NAME} package.json was not found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/**
 * The running tool's bin script (package.json "bin"), with symlinks resolved
 * so the units keep working when the link that started us goes away.
 */
export function defaultBin(): string {
  const bin = join(packageRoot(), 'dist', 'bin', 'ap-persist.cjs');
  return existsSync(bin) ? realpathSync(bin) : bin;
}

/** Where distributions and the usual installers put node: stable names across upgrades. */
const NODE_NAMES = ['/usr/bin/node', '/usr/local/bin/node', '/bin/node'];

/**
 * The node running us, by the stable name that leads to it (/usr/bin/node,
 * not the versioned file an alternatives link or an upgrade replaces);
 * its own path when no such name does.
 */
export function defaultNode(): string {
  const running = realpathSync(process.execPath);
  for (const name of NODE_NAMES) {
    try {
      if (realpathSync(name) === running) return name;
    } catch {
      // not there
    }
  }
  return running;
}

function compile<T>(name: string): (model: T) => string {
  const text = readFileSync(join(packageRoot(), 'templates', name), 'utf8');
  // Rules and units are not HTML: nothing may be escaped. Strict: a missing field is a bug.
  return Handlebars.compile<T>(text, { noEscape: true, strict: true });
}

export function chzdevRulesTemplate(): RenderChzdevRules {
  return compile('41-ap.rules.hbs');
}

function readDir(sub: string): PackageFile[] {
  const dir = join(packageRoot(), sub);
  return readdirSync(dir)
    .filter((name) => !name.startsWith('.'))
    .sort()
    .map((name) => ({ name, text: readFileSync(join(dir, name), 'utf8') }));
}

export function packageAssets(): PackageAssets {
  return { rules: readDir('rules'), units: readDir('units'), renderCallout: compile('mdevctl-callout.sh.hbs') };
}
