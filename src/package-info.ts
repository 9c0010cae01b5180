// The installed package: its root (the directory of package.json, which holds
// rules/, units/ and templates/) and its version. Found from this module's
// location, in the source tree (src/), the compiled tree (dist/src/) or the
// bundle (dist/bin/) alike. Reads only package.json.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_NAME = 'ap-persist';

interface Manifest {
  name?: string;
  version?: string;
}

let found: { root: string; manifest: Manifest } | undefined;

function locate(): { root: string; manifest: Manifest } {
  if (found) return found;
  const here = fileURLToPath(import.meta.url);
  let dir = dirname(here);
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const manifest = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
      if (manifest.name === PACKAGE_NAME) return (found = { root: dir, manifest });
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`the ${PACKAGE_NAME} package.json was not found above ${here}`);
    dir = parent;
  }
}

/** Set by the bundle (scripts/bundle.ts): its version and a digest of its code, `0.1.0+1a2b3c4d5e6f`. */
declare const AP_PERSIST_BUILD: string | undefined;

/**
 * What this code is: in the bundle, its version and a digest of its code,
 * fixed when it was built (the boot asks without looking for package.json);
 * in the compiled tree, package.json's version. It keys what this code
 * derived and kept (store/snapshot.ts): other code, even of the same version,
 * derives it again.
 */
export function codeVersion(): string {
  return typeof AP_PERSIST_BUILD === 'string' ? AP_PERSIST_BUILD : packageVersion();
}

/** The directory holding package.json. */
export function packageRoot(): string {
  return locate().root;
}

/** package.json's version, e.g. 0.1.0. */
export function packageVersion(): string {
  const { version } = locate().manifest;
  if (!version) throw new Error(`${join(locate().root, 'package.json')} has no version`);
  return version;
}
