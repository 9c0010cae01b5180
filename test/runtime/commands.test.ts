// Host commands as the hook, mdev units and wait run them: bounded, the whole
// process group killed at the deadline, and never held by a grandchild that
// keeps the output pipe open.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostRunner, killRunningCommands } from '../../src/runtime/commands.js';
import { alive, untilGone } from '../support/processes.js';


describe('running a host command', () => {
  it('gives its exit code and output', async () => {
    const r = await hostRunner().run('sh', ['-c', 'echo out; echo err >&2; exit 3']);
    expect(r).toEqual({ exitCode: 3, stdout: 'out\n', stderr: 'err\n', timedOut: false, ran: true });
  });

  it('a command that is not there is exit 127 with the reason, as a shell says it', async () => {
    const r = await hostRunner().run('/nonexistent/modprobe', ['vfio_ap']);
    expect(r.exitCode).toBe(127);
    expect(r.stderr).toContain('/nonexistent/modprobe: spawn /nonexistent/modprobe ENOENT');
  });

  it('at its deadline the command and everything it started are killed (exit 124, timed out)', async () => {
    // sh prints the pid of a background sleep, then waits on another.
    const r = await hostRunner().run('sh', ['-c', 'sleep 30 & echo $!; sleep 30'], { timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    expect(r.exitCode).toBe(124);
    const grandchild = Number(r.stdout.trim());
    expect(grandchild).toBeGreaterThan(0);
    // The group got SIGTERM; give the kernel a moment to reap.
    await untilGone(grandchild);
    expect(alive(grandchild)).toBe(false);
  });

  it('a command that exits but leaves a child holding its output pipe does not hold us, and the child does not outlive it', async () => {
    const t0 = Date.now();
    const r = await hostRunner().run('sh', ['-c', 'sleep 30 & echo $!'], { timeoutMs: 20_000 });
    const grandchild = Number(r.stdout.trim());
    try {
      expect(r.timedOut).toBe(false);
      expect(r.exitCode).toBe(0);
      // Back long before the child's 30 s, and what the command left in its group is ended.
      expect(Date.now() - t0).toBeLessThan(10_000);
      await untilGone(grandchild);
      expect(alive(grandchild)).toBe(false);
    } finally {
      if (grandchild > 0 && alive(grandchild)) process.kill(grandchild, 'SIGKILL');
    }
  });

  it('a command that gives up on its bound kills every host command still running, with its group', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ap-persist-kill-'));
    const pidFile = join(dir, 'grandchild');
    try {
      // An mdevctl that started a helper and waits: the caller gives up long before their 30 s.
      const pending = hostRunner().run('sh', ['-c', `sleep 30 & echo $! > ${pidFile}; sleep 30`], { timeoutMs: 60_000 });
      for (let i = 0; i < 100 && !existsSync(pidFile); i++) await new Promise((res) => setTimeout(res, 20));
      const grandchild = Number(readFileSync(pidFile, 'utf8'));
      expect(alive(grandchild)).toBe(true);
      killRunningCommands();
      const r = await pending;
      expect(r.exitCode).toBe(128 + 9);
      await untilGone(grandchild);
      expect(alive(grandchild)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a child that ignores SIGTERM is killed all the same once the deadline passed', async () => {
    const r = await hostRunner().run('sh', ['-c', `sh -c 'trap "" TERM; echo $$; while :; do sleep 1; done' & wait`], { timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    const stubborn = Number(r.stdout.trim());
    expect(stubborn).toBeGreaterThan(0);
    await untilGone(stubborn);
    expect(alive(stubborn)).toBe(false);
  });
});
