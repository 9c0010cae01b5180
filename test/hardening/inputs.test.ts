// Inputs that used to slip through: each story is the fault itself, on a
// host where a guest runs, and what the admin must see instead.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ACTIVE, exampleHost } from '../callout/support.js';
import { onFakeClock } from '../support/clock.js';
import { givenHost } from '../support/host.js';

const MATRIX = `sys/devices/vfio_ap/matrix/${ACTIVE}/matrix`;
/** A guest runs on 01.0007; the host keeps adapters 0,3-255 and domains 0-4,8-255. */
const guestRunning = () => givenHost(exampleHost({ activeMdevs: [{ uuid: ACTIVE, adapters: [1], domains: [7] }] }));

describe('an active mdev whose matrix cannot be read is never taken for an empty one', () => {
  for (const [what, text] of [
    ['garbage', 'garbage\n'],
    ['an APQN out of format', '1.7\n'],
    ['a line with spaces', ' 01.0007\n'],
  ] as const) {
    it(`${what} in its matrix: mask set refuses (1) and gives nothing to the host`, async () => {
      const host = guestRunning();
      writeFileSync(join(host.root, MATRIX), text);
      const before = host.snapshot();
      const r = await host.run('mask', 'set', 'apmask=+1', 'aqmask=+7');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`/sys/${MATRIX.slice(4)}: line 1, '${text.slice(0, -1)}', is not an APQN as vfio_ap prints it (AA.DDDD): what this mdev holds is unknown`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(host.snapshot()).toEqual(before);
    });
  }

  for (const [forms, text, adapters, domains] of [
    ['AA.DDDD, AA. and .DDDD', '01.0007\n02.\n.0009\n', [1, 2], [7, 9]],
    ['an empty matrix (nothing assigned yet)', '', [], []],
  ] as const) {
    it(`the kernel's own forms are read: ${forms}`, async () => {
      const host = guestRunning();
      writeFileSync(join(host.root, MATRIX), text);
      const r = await host.json('mdev', 'list', '--active');
      expect(r.code, r.stderr).toBe(0);
      expect(r.doc).toMatchObject([{ uuid: ACTIVE, adapters, domains, active: true }]);
    });
  }
});

describe('a sysfs file that cannot be read is one line naming it, not a stack trace', () => {
  it('status with the active apmask unreadable (EISDIR): exit 1, the path and the errno', async () => {
    const host = guestRunning();
    rmSync(join(host.root, MATRIX));
    mkdirSync(join(host.root, MATRIX));
    const r = await host.run('mask', 'set', 'apmask=+1', 'aqmask=+7');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ap-persist: cannot read sysfs devices\/vfio_ap\/matrix\/[0-9a-f-]+\/matrix: EISDIR/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('a damaged last-hook.json', () => {
  for (const [what, text] of [
    ['not JSON', '{"time": '],
    ['a JSON of another shape', '{"time": 1, "masks": null}\n'],
    ['an array', '[]\n'],
  ] as const) {
    it(`${what}: status says so and shows the rest; wait runs the hook itself`, async () => {
      const host = guestRunning();
      mkdirSync(join(host.root, 'run/ap-persist'), { recursive: true });
      writeFileSync(join(host.root, 'run/ap-persist/last-hook.json'), text);
      const status = await host.run('status');
      expect(status.code, status.stderr).toBe(0);
      expect(status.stdout).toContain('apmask  "0,3-255"    "0,3-255"');
      expect(status.stdout).toMatch(/last hook: the report .*last-hook\.json is damaged: .*; the next hook run writes a new one/);
      const json = await host.json('status');
      expect(json.doc.last_hook).toBeNull();
      expect(typeof json.doc.last_hook_damaged).toBe('string');
      // Its grace period (a third of --timeout) on the fake clock: test/support/clock.ts.
      const wait = await onFakeClock(() => host.run('wait', '--timeout', '3'));
      expect(wait.stderr).not.toMatch(/\n\s+at /);
      expect(wait.stdout + wait.stderr).toContain('running the hook now');
    });
  }
});
