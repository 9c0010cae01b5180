// Paths as the record names them, relative to the root: the text cut and
// path.relative agree for every path below a root, and anything else.

import { relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rootPath } from '../../src/generate/host-files.js';
import { HostPaths } from '../../src/host/paths.js';

describe('rootPath', () => {
  it('says what path.relative says', () => {
    const tails = ['etc/x', '/etc/x', 'etc/../x', './x', '..', '../y', 'etc/.', 'etc//x', 'etc/.hidden', 'etc/..x', 'a', 'etc/x/', '', '.', 'etc/mdevctl.d/matrix/bfccf00d-21f1-448c-9979-b7341129d985'];
    for (const root of ['/', '/srv/host', '/srv/host/']) {
      const paths = new HostPaths(root);
      for (const tail of tails) {
        const absolute = `${paths.root === '/' ? '' : paths.root}/${tail}`;
        expect(rootPath(paths, absolute), `${root} ${absolute}`).toBe(relative(paths.root, absolute));
      }
      expect(rootPath(paths, '/elsewhere/x')).toBe(relative(paths.root, '/elsewhere/x'));
    }
  });
});
