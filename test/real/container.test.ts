// The container harness itself: a Debian 12 boots with systemd as PID 1 in
// systemd-nspawn, a program run as udevd runs a RUN entry meets udevd's real
// sandbox (node's JIT aborts under MemoryDenyWriteExecute, as on a real
// host), udevadm test in the container reads a rule from the writable layer,
// and stop() leaves nothing behind. Prints what boot and a udevd run cost.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  bootContainer,
  CONTAINER_NODE,
  CONTAINER_SRC,
  checkoutBind,
  ensureRootfs,
  nodeBind,
  parseUdevdSandbox,
  rootfsStamp,
  runAsUdevd,
  runUdevEvent,
  splitUdevCommand,
  udevdSandbox,
  type Container,
} from '../support/container/index.js';
import { itWith, requireTools, type Requirement } from '../support/real-tools.js';

const tools = requireTools('systemd-nspawn', 'debootstrap', 'nsenter', 'unshare', 'setpriv', 'flock');
const req: Requirement = process.getuid?.() === 0 ? tools : { missing: [tools.missing, 'not root (nspawn needs it)'].filter(Boolean).join('; ') };

const CHECKOUT = fileURLToPath(new URL('../..', import.meta.url));
// Put into the writable layer before the boot.
const RULE = '/etc/udev/rules.d/99-ap-persist-smoke.rules';
const RULE_TEXT = `ACTION=="change", SUBSYSTEM=="ap", ENV{BINDINGS}=="complete", RUN{builtin}+="kmod load vfio_ap", RUN+="/usr/bin/logger -t ap-persist-smoke \\"count $env{COMPLETECOUNT}\\" 'of  1'", RUN+="/usr/bin/env"\n`;
const EVENT = { ACTION: 'change', DEVPATH: '/devices/ap', SUBSYSTEM: 'ap', BINDINGS: 'complete', COMPLETECOUNT: '1', SEQNUM: '4711', NOTE: 'two  words' };

const report = (line: string): void => void process.stderr.write(`[container] ${line}\n`);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('splitting a RUN string as udev does', () => {
  it('matches systemd’s own cases (quotes group and vanish, backslashes stay)', () => {
    expect(splitUdevCommand('one   two   three')).toEqual(['one', 'two', 'three']);
    expect(splitUdevCommand(`one   'two   three '  " four five "  'aaa bbb  `)).toEqual(['one', 'two   three ', ' four five ', 'aaa bbb  ']);
    expect(splitUdevCommand('/bin/echo -e \\101')).toEqual(['/bin/echo', '-e', '\\101']);
    expect(splitUdevCommand(`a"b c"d '' e\t`)).toEqual(['ab cd', '', 'e']);
  });
});

describe('reading the udevd sandbox', () => {
  const unit = '[Unit]\nDescription=x\n[Service]\nType=notify\nMemoryDenyWriteExecute=yes\nSystemCallFilter=@system-service\nSystemCallFilter=~@clock\n';
  it('keeps every sandbox line in order and skips how udevd is started', () => {
    expect(parseUdevdSandbox(unit)).toEqual({
      properties: ['MemoryDenyWriteExecute=yes', 'SystemCallFilter=@system-service', 'SystemCallFilter=~@clock'],
      skipped: ['Type'],
    });
  });
  it('fails on a directive it does not know, instead of dropping it', () => {
    expect(() => parseUdevdSandbox(`${unit}ProtectFutureThing=yes\n`)).toThrow(/ProtectFutureThing/);
  });
});

describe('a Debian container with systemd as PID 1', () => {
  let c: Container | undefined;
  let rootfs = '';
  const booted = (): Container => {
    if (!c) throw new Error('the container did not boot (see the first test)');
    return c;
  };
  afterAll(async () => {
    await c?.stop();
  }, 60_000);

  itWith(
    req,
    'boots with systemd as PID 1, the host node mounted off the PATH',
    async () => {
      const fs = await ensureRootfs();
      rootfs = fs.path;
      report(fs.built ? `cache built in ${fs.buildMs} ms` : 'cache was already built');
      c = await bootContainer({ binds: [nodeBind(), checkoutBind(CHECKOUT)], files: [{ path: RULE, content: RULE_TEXT }] });
      report(`boot to "${c.bootState}" in ${c.bootMs} ms`);
      expect(['running', 'degraded']).toContain(c.bootState);
      expect((await c.readFile('/proc/1/comm')).trim()).toBe('systemd');
      expect((await c.readFile('/proc/sys/kernel/hostname')).trim()).toBe(c.name);
      expect((await c.exec(['ps', '-o', 'comm=', '-p', '1'])).stdout.trim()).toBe('systemd');
      expect((await c.exec(['sh', '-c', 'command -v node'])).code).not.toBe(0);
      expect((await c.exec([CONTAINER_NODE, '-p', 'process.version'])).stdout.trim()).toBe(process.version);
      expect((await c.exec(['test', '-f', `${CONTAINER_SRC}/package.json`])).code).toBe(0);
      // The same realtime clock inside and out.
      const inside = Number((await c.exec(['date', '+%s%N'])).stdout) / 1e6;
      expect(Math.abs(inside - Date.now())).toBeLessThan(2_000);
    },
    600_000,
  );

  itWith(req, 'runs a program as udevd runs a RUN entry: node’s JIT aborts, --jitless runs, the event is the whole environment', async () => {
    const jit = await runAsUdevd(booted(), [CONTAINER_NODE, '-e', '0'], EVENT);
    expect(jit.exitCode, jit.stderr).not.toBe('exited'); // killed by a signal (V8's fatal error)
    expect(jit.stderr).toMatch(/Check failed|Fatal/);
    const jitless = await runAsUdevd(booted(), [CONTAINER_NODE, '--jitless', '--no-expose-wasm', '-e', '0'], EVENT);
    expect([jitless.exitCode, jitless.exitStatus, jitless.code], jitless.stderr).toEqual(['exited', '0', 0]);

    const env = await runAsUdevd(booted(), ['/usr/bin/env'], EVENT);
    const lines = (props: Record<string, string>): string[] => Object.entries(props).map(([k, v]) => `${k}=${v}`).sort();
    expect(env.stdout.split('\n').filter(Boolean).sort()).toEqual(lines(EVENT));
    // An event property named like one the manager adds keeps the event's value.
    const clash = { ...EVENT, PATH: '/nowhere', LANG: 'xx' };
    expect((await runAsUdevd(booted(), ['/usr/bin/env'], clash)).stdout.split('\n').filter(Boolean).sort()).toEqual(lines(clash));

    const failing = await runAsUdevd(booted(), ['/bin/sh', '-c', 'exit 3'], EVENT);
    expect([failing.exitCode, failing.exitStatus, failing.code]).toEqual(['exited', '3', 3]);
    const slow = await runAsUdevd(booted(), ['/bin/sleep', '30'], EVENT, { timeoutMs: 500 });
    expect([slow.result, slow.exitCode, slow.exitStatus]).toEqual(['timeout', 'killed', 'KILL']);

    const ms: number[] = [];
    for (let i = 0; i < 7; i++) ms.push((await runAsUdevd(booted(), ['/bin/true'], EVENT)).ms);
    report(`one runAsUdevd call (/bin/true): median ${median(ms)} ms of ${ms.join(', ')}`);
  }, 120_000);

  itWith(req, 'the emulated sandbox is exactly systemd-udevd.service’s, as systemd itself reads both', async () => {
    const sandbox = await udevdSandbox(booted());
    const keys = [...new Set(sandbox.properties.map((p) => p.slice(0, p.indexOf('='))))];
    expect(keys).toEqual(expect.arrayContaining(['MemoryDenyWriteExecute', 'SystemCallFilter', 'RestrictAddressFamilies']));
    const unit = `ap-persist-sandbox-probe-${process.pid}`;
    const started = await booted().exec(['systemd-run', '--collect', `--unit=${unit}`, ...sandbox.properties.map((p) => `--property=${p}`), '/bin/sleep', '300']);
    expect(started.code, started.stderr).toBe(0);
    try {
      // Address lists print in no fixed order (a set in systemd): compare their items sorted.
      const show = async (u: string): Promise<string> =>
        (await booted().systemctl('show', ...keys.map((k) => `--property=${k}`), u)).stdout
          .split('\n')
          .map((l) => (/^IPAddress(Allow|Deny)=/.test(l) ? `${l.slice(0, l.indexOf('=') + 1)}${l.slice(l.indexOf('=') + 1).split(' ').sort().join(' ')}` : l))
          .join('\n');
      expect(await show(unit)).toBe(await show('systemd-udevd.service'));
    } finally {
      await booted().systemctl('stop', unit);
    }
  });

  itWith(req, 'udevadm test in the container lists the RUN entries of a rule put there, and they run as udevd runs them', async () => {
    const sysfs = {
      '/sys/devices/ap/uevent': 'BINDINGS=complete\nCOMPLETECOUNT=1\n',
      '/sys/devices/ap/subsystem': { symlink: '../../bus/ap' },
      '/sys/bus/ap/ap_interrupts': '1\n',
    };
    const t0 = Date.now();
    const run = await runUdevEvent(booted(), { action: 'change', devpath: '/devices/ap', sysfs });
    report(`udevadm test + ${run.programs.length} RUN programs: ${Date.now() - t0} ms`);
    expect(run.builtins).toEqual(['kmod load vfio_ap']);
    expect(run.test.programs).toEqual([['/usr/bin/logger', '-t', 'ap-persist-smoke', 'count 1', 'of  1'], ['/usr/bin/env']]);
    expect(run.test.properties).toMatchObject({ ACTION: 'change', DEVPATH: '/devices/ap', SUBSYSTEM: 'ap', BINDINGS: 'complete' });
    expect(run.programs.map((p) => p.code)).toEqual([0, 0]);
    const env = Object.fromEntries(run.programs[1]!.stdout.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    expect(env).toEqual(run.test.properties);
    const logged = await booted().waitFor(
      async () => {
        const r = await booted().exec(['journalctl', '--no-pager', '-q', '-o', 'cat', '-t', 'ap-persist-smoke']);
        return r.stdout.includes('count 1 of  1') && r.stdout;
      },
      { timeoutMs: 5_000, what: 'the logger line in the journal' },
    );
    expect(logged).toContain('count 1 of  1');
    // The synthetic /sys was private to udevadm test.
    expect((await booted().exec(['test', '-e', '/sys/devices/ap/uevent'])).code).not.toBe(0);
  });

  itWith(req, 'stop() halts it and leaves no process, mount, cgroup or temp dir; the cached tree is unchanged', async () => {
    const container = booted();
    const name = container.name;
    const leader = container.leaderPid;
    const r = await container.stop();
    report(`halt in ${r.haltMs} ms${r.killed ? ' (killed)' : ''}`);
    expect(r.killed).toBe(false);
    expect(existsSync(`/proc/${leader}`)).toBe(false);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(name);
    expect(execFileSync('find', ['/sys/fs/cgroup', '-maxdepth', '3', '-name', name], { encoding: 'utf8' })).toBe('');
    expect(execFileSync('find', [rootfs, '-newer', rootfsStamp(rootfs)], { encoding: 'utf8' })).toBe('');
  });
});
