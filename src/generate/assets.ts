// The package's own files: templates/ (compiled with handlebars), rules/,
// units/ and presets/, found from this module's location in the source tree or in dist/.
// The only module under src/generate that reads files; it reads nothing of
// the host.

import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import Handlebars from 'handlebars';
import { packageRoot } from '../package-info.js';
import type { RenderChzdevRules } from './chzdev-rules.js';
import type { PackageAssets, PackageFile } from './static-files.js';

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
  return {
    rules: readDir('rules'),
    units: readDir('units'),
    presets: readDir('presets'),
    renderCallout: compile('mdevctl-callout.sh.hbs'),
    renderLibvirtHook: compile('libvirt-qemu-hook.sh.hbs'),
  };
}
