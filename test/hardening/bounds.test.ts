// The boot never waits on anything unbounded: wait's --timeout bounds the
// hook it runs itself, and a host command that hangs, or leaves a child
// holding its output pipe, is killed with its whole process group.

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { givenHost, tempDir } from '../support/host.js';
import { itWith, requireTools } from '../support/real-tools.js';

const CLI = resolve('dist/bin/ap-persist.cjs');

function stubs(marker: string): string {
  const dir = tempDir('ap-persist-stubs-');
  const put = (name: string, text: string): void => {
    writeFileSync(join(dir, name), text);
    chmodSync(join(dir, name), 0o755);
  };
  // modprobe hangs, and leaves a child that keeps its stdout open.
  put('modprobe', `#!/bin/bash\n(exec -a ${marker} sleep 600 &)\nexec -a ${marker} sleep 600\n`);
  // systemd: nothing activating, every unit inactive.
  put('systemctl', '#!/bin/sh\nexit 0\n');
  return dir;
}

function run(args: string[], path: string): Promise<{ code: number | null; ms: number; stdout: string; stderr: string }> {
  const t0 = Date.now();
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: `${path}:/usr/bin:/bin` } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => void (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => void (stderr += c.toString()));
    child.on('close', (code) => done({ code, ms: Date.now() - t0, stdout, stderr }));
  });
}

const leftovers = (marker: string): string => spawnSync('pgrep', ['-af', marker]).stdout.toString().trim();

describe('bounded waits', () => {
  itWith(requireTools('pgrep', 'sleep', 'bash'), 'wait --timeout 1.5 with a hanging modprobe whose child holds the pipe: back within the timeout and the kill grace, nothing left running', async () => {
    const marker = `ap-persist-hang-${process.pid}-${Date.now()}`;
    const host = givenHost({ ...threeGuestsHost(), vfioAp: false });
    mkdirSync(join(host.root, 'run'), { recursive: true });
    const r = await run(['--root', host.root, '--exec', 'wait', '--timeout', '1.5'], stubs(marker));
    expect(r.code, r.stderr).toBe(1);
    // 1.5 s, plus at most 1 s for TERM to become KILL and the drain (and 1.5 s to spare for a
    // busy machine): never the 15 s of modprobe's own bound.
    expect(r.ms).toBeLessThan(4_000);
    expect(r.stderr + r.stdout).toContain('modprobe vfio_ap failed (timed out)');
    expect(leftovers(marker)).toBe('');
  }, 30_000);

  it("wait --timeout 1 while chzdev holds the AP lock: the hook it runs gives up within wait's time and its report says it looked at nothing", async () => {
    const host = givenHost(threeGuestsHost());
    mkdirSync(join(host.root, 'run/lock'), { recursive: true });
    // A live holder, root's: a real lock, not a planted one.
    writeFileSync(join(host.root, 'run/lock/s390apconfig.lock'), `${process.pid}\n`);
    const r = await run(['--root', host.root, 'wait', '--timeout', '1'], tempDir('ap-persist-nopath-'));
    expect(r.code).toBe(1);
    // 1 s, and 2 s to spare: never the lock's own 10 s.
    expect(r.ms).toBeLessThan(3_000);
    expect(r.stdout + r.stderr).toContain(`the AP configuration lock is held by PID ${process.pid}`);
    expect(r.stdout + r.stderr).toContain('vfio_ap: not-checked');
    expect(r.stdout + r.stderr).toContain('masks: not applied (see errors)');
  }, 30_000);
});
