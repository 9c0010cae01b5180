// generate exports the store's mdevs as mdevctl definitions with their real
// start mode; the real mdevctl then lists them, and so would libvirt's
// nodedev API through it, and ap-check and chzdev see our auto mdevs.

import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { GUEST1, GUEST2, GUEST3, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { givenHost, tempDir } from '../support/host.js';
import { itWithTools, runInNamespace } from '../support/namespace.js';

describe('export to mdevctl', () => {
  itWithTools(
    'mdevctl list -d shows the store’s mdevs after generate, auto ones as auto',
    ['mdevctl', 'bash'],
    async () => {
      const host = givenHost(threeGuestsHost());
      expect((await host.run('generate', '--no-reload')).code).toBe(0);
      const exported = JSON.parse(host.read(`etc/mdevctl.d/matrix/${GUEST2}`));
      expect(exported).toEqual({
        mdev_type: 'vfio_ap-passthrough',
        start: 'auto',
        attrs: [{ assign_adapter: '5' }, { assign_domain: '71' }, { assign_domain: '255' }],
      });

      const work = tempDir('ap-persist-export-');
      const out = join(work, 'out');
      mkdirSync(out);
      const body = `
fresh_dir /sys
mkdir -p /sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough /sys/class/mdev_bus /sys/bus/mdev/devices
ln -s ../../devices/vfio_ap/matrix /sys/class/mdev_bus/matrix
fresh_dir /etc/mdevctl.d
cp -a ${host.root}/etc/mdevctl.d/. /etc/mdevctl.d/
mkdir -p /etc/mdevctl.d/scripts.d/callouts /etc/mdevctl.d/scripts.d/notifiers
step list mdevctl list -d
`;
      const ns = await runInNamespace(body, work, out, 30_000);
      expect(ns, ns.stderr).toMatchObject({ code: 0 });
      expect(readFileSync(join(out, 'list.rc'), 'utf8').trim(), readFileSync(join(out, 'list.err'), 'utf8')).toBe('0');
      const lines = readFileSync(join(out, 'list.out'), 'utf8').trim().split('\n').sort();
      expect(lines).toEqual(
        [GUEST1, GUEST2, GUEST3].map((u) => `${u} matrix vfio_ap-passthrough auto`).sort(),
      );
    },
    60_000,
  );
});
