// A hook's whole bound (giveUpAfter, src/runtime/commands.ts): the backstop
// behind each step's own bound, 60 s for the boot hook and for libvirt's
// qemu hook. When it passes the hook says so, kills the host commands it
// started (an mdevctl left running would act after the hook answered) and
// ends. Here the bound is cut to a fraction of a second and the process's end
// is observed, not taken.

import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeContext } from '../../src/cli/context.js';
import { hook } from '../../src/commands/hook.js';
import { threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { giveUpAfter, hostRunner } from '../../src/runtime/commands.js';
import { givenHost, tempDir } from '../support/host.js';
import { alive, untilGone } from '../support/processes.js';


describe("a run's whole bound", () => {
  it('says why, kills every host command still running and ends with its code; it never keeps the process up', async () => {
    const said: string[] = [];
    const ended: number[] = [];
    const pending = hostRunner().run('sh', ['-c', 'sleep 30'], { timeoutMs: 60_000 });
    const timer = giveUpAfter(100, () => said.push('gave up'), 3, (code) => ended.push(code));
    expect(timer.hasRef()).toBe(false);
    const r = await pending;
    expect(r.exitCode).toBe(128 + 9);
    expect(said).toEqual(['gave up']);
    expect(ended).toEqual([3]);
  });

  it("the boot hook's: a modprobe that hangs is killed at the hook's bound, not at its own 15 s, and the hook ends with exit 1", async () => {
    // vfio_ap is not loaded on the three guests' host: the hook runs modprobe, which hangs.
    const host = givenHost(threeGuestsHost());
    // The only host commands there: none of this machine's (systemctl, mdevctl) can be reached.
    const bin = tempDir('ap-persist-budget-');
    const pidFile = join(bin, 'modprobe.pid');
    writeFileSync(join(bin, 'modprobe'), `#!/bin/sh\necho $$ > ${pidFile}\nexec /bin/sleep 30\n`);
    chmodSync(join(bin, 'modprobe'), 0o755);
    const said: string[] = [];
    const ended: number[] = [];
    const path = process.env['PATH'];
    process.env['PATH'] = bin;
    try {
      const ctx = makeContext({ root: host.root, exec: true }, { stdout: () => {}, stderr: (t) => void said.push(t), env: {} });
      const start = Date.now();
      await hook(ctx, { event: 'change-2', budget: { ms: 300, exit: (code) => ended.push(code) } });
      expect(Date.now() - start).toBeLessThan(10_000);
    } finally {
      process.env['PATH'] = path;
    }
    expect(ended).toEqual([1]);
    expect(said.join('')).toContain('ap-persist hook: gave up after 0.3 s');
    expect(existsSync(pidFile)).toBe(true);
    const modprobe = Number(readFileSync(pidFile, 'utf8'));
    await untilGone(modprobe, 5_000);
    expect(alive(modprobe)).toBe(false);
  });
});
