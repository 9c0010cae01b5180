// The talk's three guests (issue 15, src/fakehost/talk-guests.ts), all
// `start = guest`, in the booted container (booted-host.ts: systemd as PID 1,
// the simulated kernel at /sys, ap-persist installed by its own install) with
// a fake libvirtd that runs the installed qemu hook as libvirt 9.0 does
// (test/support/fake-libvirtd/): Guest1 and Guest3 run together; Guest2 is
// refused while Guest1 runs, and what virsh prints names 02.0001 and Guest1;
// Guest2 starts once Guest1 stopped. Then the host reboots (its disk kept, a
// fresh kernel, an empty /run) and the same holds again.

import { readFileSync } from 'node:fs';
import { afterAll, afterEach, describe, expect } from 'vitest';
import type { FakeHost } from '../../src/fakehost/builder.js';
import { TALK_GUEST1, TALK_GUEST2, TALK_GUEST3, TALK_STORE, talkGuestsHost } from '../../src/fakehost/talk-guests.js';
import { bootHost, TOOL, type BootedHost } from '../support/booted-host.js';
import { CONTAINER_NODE, ensureRootfs, waitFor } from '../support/container/index.js';
import { isAlive } from '../support/container/process.js';
import { fakeLibvirtdFiles, hookRuns, virsh, type HookRecord } from '../support/fake-libvirtd/index.js';
import { makeDisk, mergeUpper, upperOf, type Disk } from '../support/package-host.js';
import { itWith, type Requirement } from '../support/real-tools.js';
import { requireSimSysfs } from '../support/sim-sysfs/mount.js';

const tools = requireSimSysfs('systemd-nspawn', 'debootstrap', 'nsenter', 'unshare', 'setpriv', 'flock', 'python3');
const req: Requirement = process.getuid?.() === 0 ? tools : { missing: [tools.missing, 'not root (nspawn needs it)'].filter(Boolean).join('; ') };

const FIXTURES = new URL('../fixtures/libvirt/', import.meta.url);
const xml = (file: string): string => readFileSync(new URL(file, FIXTURES), 'utf8');
const DOMAINS = { Guest1: xml('guest1.xml'), Guest2: xml('guest2.xml'), Guest3: xml('guest3.xml'), Plain: xml('no-vfio-ap.xml') };

/** The talk's host at power-on: its cards and domains, the kernel's default masks, vfio_ap not loaded. */
const POWER_ON: FakeHost = { cards: talkGuestsHost().cards, domains: talkGuestsHost().domains };

let disk: Disk | undefined;
/** Written by the first boot from the disk, read after the reboot. */
const MARK = '/var/lib/ap-persist-test/written-by';
const booted: BootedHost[] = [];
afterEach(async () => {
  for (const h of booted.splice(0)) await h.shutdown().catch(() => undefined);
});
// Removing a whole tree takes a while.
afterAll(() => disk?.remove(), 120_000);

/**
 * Boots the host, from its disk (made at the first boot) or from the cached
 * tree, delivers the AP bus event, and waits for libvirtd.
 */
async function boot(from: 'disk' | 'tree'): Promise<BootedHost> {
  if (from === 'disk') disk ??= await makeDisk((await ensureRootfs()).path);
  const rootfs = from === 'disk' ? disk!.path : undefined;
  const h = await bootHost({ host: POWER_ON, kernel: '6.0', store: TALK_STORE, files: await fakeLibvirtdFiles(DOMAINS), rootfs });
  booted.push(h);
  await h.bindingsComplete(1);
  await h.container.waitFor(() => h.libvirtd().startedAt, { timeoutMs: 120_000, intervalMs: 50, what: 'libvirtd to start' });
  const failed = (await h.container.systemctl('--failed', '--no-legend', '--plain')).stdout.trim();
  expect(failed, await h.container.journal()).toBe('');
  return h;
}

/** A clean shutdown from inside; what the boot wrote goes onto the disk (package-host.ts does the same). */
async function powerOff(h: BootedHost): Promise<void> {
  const upper = upperOf(h.container);
  const leader = h.container.leaderPid;
  void h.container.exec(['systemctl', 'poweroff'], { timeoutMs: 60_000 }).catch(() => undefined);
  await waitFor(() => !isAlive(leader), { timeoutMs: 60_000, intervalMs: 50, what: 'the container to power off' });
  booted.splice(booted.indexOf(h), 1);
  try {
    mergeUpper(upper, disk!.path);
  } finally {
    await h.shutdown();
  }
}

/** The vfio_ap mdevs the kernel has now. */
const vfioMdevs = (h: BootedHost): string[] =>
  h.sim
    .state()
    .mdevs.filter((m) => m.parent === 'matrix')
    .map((m) => m.uuid)
    .sort();

const report = (text: string): void => void process.stderr.write(`[libvirt-guests] ${text}\n`);
const sorted = (...uuids: string[]): string[] => [...uuids].sort();
/** The installed hook, where install put it. */
const HOOK = '/etc/libvirt/hooks/qemu.d/ap-persist';
const PROBE = '/etc/libvirt/hooks/qemu.d/zz-probe';
/** This boot's runs of our hook (a probe may run beside it). */
const ourRuns = async (h: BootedHost): Promise<HookRecord[]> => (await hookRuns(h.container)).filter((r) => r.script === HOOK);
const calls = (runs: HookRecord[]): [string, string, string, number | null][] => runs.map((r) => [r.name, r.op, r.sub, r.code]);
const started = (name: string): [string, string, string, number][] => [
  [name, 'prepare', 'begin', 0],
  [name, 'start', 'begin', 0],
  [name, 'started', 'begin', 0],
];
const stopped = (name: string): [string, string, string, number][] => [
  [name, 'stopped', 'end', 0],
  [name, 'release', 'end', 0],
];

async function expectVirsh(h: BootedHost, args: string[], stdout: string): Promise<void> {
  const r = await virsh(h.container, ...args);
  expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }, `virsh ${args.join(' ')}`).toEqual({ code: 0, stdout, stderr: '' });
}

const REFUSAL = new RegExp(
  [
    "^error: Failed to start domain 'Guest2'\\n",
    'error: Hook script execution failed: internal error: Child process \\(LC_ALL=C PATH=[^ ]+ /etc/libvirt/hooks/qemu\\.d/ap-persist Guest2 prepare begin -\\) unexpected exit status 1: ',
    `ap-persist: guest Guest2 not started: its mdev ${TALK_GUEST2} \\(guest2\\) cannot be made: APQN 02\\.0001 is in use by mdev ${TALK_GUEST1} \\(guest1\\) of running guest Guest1\\n`,
    // libvirt keeps the hook's newline; virsh adds its own.
    '\\n$',
  ].join(''),
);

/** The scenario on a host just booted: no guest runs and no guest mdev exists yet. */
async function talkScenario(h: BootedHost): Promise<void> {
  const check = await h.container.exec([CONTAINER_NODE, TOOL, 'check']);
  expect(check.code, check.stdout + check.stderr).toBe(0);
  // The boot made no guest mdev: libvirtd found none, and there is none until a guest starts.
  expect(h.libvirtd().mdevsAtStart).toEqual([]);
  expect(vfioMdevs(h)).toEqual([]);

  await expectVirsh(h, ['start', 'Guest1'], "Domain 'Guest1' started\n");
  await expectVirsh(h, ['start', 'Guest3'], "Domain 'Guest3' started\n");
  expect(vfioMdevs(h)).toEqual(sorted(TALK_GUEST1, TALK_GUEST3));

  const refused = await virsh(h.container, 'start', 'Guest2');
  expect(refused.code).toBe(1);
  expect(refused.stdout).toBe('');
  expect(refused.stderr).toMatch(REFUSAL);
  report(`virsh start Guest2 said:\n${refused.stderr}`);
  // Its failed start ran stopped and release, which left Guest1's and Guest3's mdevs alone.
  expect(vfioMdevs(h)).toEqual(sorted(TALK_GUEST1, TALK_GUEST3));
  await expectVirsh(h, ['domstate', 'Guest2'], 'shut off\n\n');

  await expectVirsh(h, ['destroy', 'Guest1'], "Domain 'Guest1' destroyed\n");
  expect(vfioMdevs(h)).toEqual([TALK_GUEST3]);
  await expectVirsh(h, ['start', 'Guest2'], "Domain 'Guest2' started\n");
  expect(vfioMdevs(h)).toEqual(sorted(TALK_GUEST2, TALK_GUEST3));
  await expectVirsh(h, ['domstate', 'Guest2'], 'running\n\n');

  // The hook as libvirt ran it, in libvirt's order; it printed nothing on stdout, and only the refusal on stderr.
  const runs = await ourRuns(h);
  report(`hook runs (ms): ${runs.map((r) => `${r.name} ${r.op} ${r.ms}`).join(', ')}`);
  expect(calls(runs)).toEqual([
    ...started('Guest1'),
    ...started('Guest3'),
    ['Guest2', 'prepare', 'begin', 1],
    ...stopped('Guest2'),
    ...stopped('Guest1'),
    ...started('Guest2'),
  ]);
  expect(runs.filter((r) => r.stdout !== '')).toEqual([]);
  expect(runs.filter((r) => r.stderr !== '').map((r) => `${r.name} ${r.op}`)).toEqual(['Guest2 prepare']);
}

describe("the talk's three guests in the booted container, with libvirt's qemu hook", () => {
  itWith(
    req,
    'the fake libvirtd runs a hook as libvirt does: after ours, argv, the XML on stdin, LC_ALL and PATH only, cwd /, no other fd',
    async () => {
      const h = await boot('tree');
      // A second hook that writes down how it was run; strcmp order puts it after ours.
      await h.container.writeFile(
        PROBE,
        `#!/bin/sh
d=/run/hook-probe/$2-$3
mkdir -p "$d"
tr '\\0' '\\n' < /proc/$$/environ > "$d/env"
pwd > "$d/cwd"
printf '%s\\n' "$@" > "$d/argv"
ls /proc/self/fd > "$d/fds"
cat > "$d/stdin"
`,
        0o755,
      );
      try {
        await expectVirsh(h, ['start', 'Guest1'], "Domain 'Guest1' started\n");
        const seen = async (what: string): Promise<string> => h.container.readFile(`/run/hook-probe/prepare-begin/${what}`);
        expect((await seen('env')).split('\n').filter(Boolean)).toEqual(['LC_ALL=C', expect.stringMatching(/^PATH=\/usr\/local\/sbin:\/usr\/local\/bin:\/usr\/sbin:\/usr\/bin(:\/sbin:\/bin)?$/)]);
        expect(await seen('cwd')).toBe('/\n');
        expect(await seen('argv')).toBe('Guest1\nprepare\nbegin\n-\n');
        // What ls inherited: stdin, stdout, stderr; 3 is its own (the directory it reads).
        expect((await seen('fds')).split('\n').filter(Boolean).sort()).toEqual(['0', '1', '2', '3']);
        const input = await seen('stdin');
        expect(input).toMatch(/^<domain type='kvm' id='\d+'>\n  <name>Guest1<\/name>/);
        expect(input).not.toContain('<alias ');
        expect(await h.container.readFile('/run/hook-probe/start-begin/stdin')).toContain("<alias name='hostdev0'/>");
        const order = (await hookRuns(h.container)).map((r) => `${r.op} ${r.script}`);
        expect(order.slice(0, 2)).toEqual([`prepare ${HOOK}`, `prepare ${PROBE}`]);
        await expectVirsh(h, ['destroy', 'Guest1'], "Domain 'Guest1' destroyed\n");
        expect(await h.container.readFile('/run/hook-probe/release-end/stdin')).not.toMatch(/<domain [^>]*id=/);
        expect(vfioMdevs(h)).toEqual([]);
      } finally {
        await h.container.exec(['rm', '-f', PROBE]);
      }
    },
    300_000,
  );

  itWith(
    req,
    'Guest1 and Guest3 run together; Guest2 is refused while Guest1 runs, naming 02.0001 and Guest1; it starts once Guest1 stopped',
    async () => {
      const h = await boot('disk');
      await talkScenario(h);

      // A guest without vfio-ap devices: every hook returns at once, silent, and no mdev changes.
      const before = (await ourRuns(h)).length;
      await expectVirsh(h, ['start', 'Plain'], "Domain 'Plain' started\n");
      await expectVirsh(h, ['destroy', 'Plain'], "Domain 'Plain' destroyed\n");
      const plain = (await ourRuns(h)).slice(before);
      expect(calls(plain)).toEqual([...started('Plain'), ...stopped('Plain')]);
      expect(plain.filter((r) => r.stdout !== '' || r.stderr !== '')).toEqual([]);
      expect(vfioMdevs(h)).toEqual(sorted(TALK_GUEST2, TALK_GUEST3));

      // libvirtd restarts: reconnect for each running guest, which succeeds (a failure would kill the guest).
      const restart = await h.container.systemctl('restart', 'libvirtd.service');
      expect(restart.code, restart.stderr).toBe(0);
      await expectVirsh(h, ['domstate', 'Guest2'], 'running\n\n');
      const reconnects = (await ourRuns(h)).filter((r) => r.op === 'reconnect');
      expect(calls(reconnects)).toEqual([
        ['Guest2', 'reconnect', 'begin', 0],
        ['Guest3', 'reconnect', 'begin', 0],
      ]);
      await expectVirsh(h, ['domstate', 'Guest3'], 'running\n\n');
      expect(vfioMdevs(h)).toEqual(sorted(TALK_GUEST2, TALK_GUEST3));
      // Guest2's mdev is still its own: released with it.
      await expectVirsh(h, ['destroy', 'Guest2'], "Domain 'Guest2' destroyed\n");
      expect(vfioMdevs(h)).toEqual([TALK_GUEST3]);

      // Guest3 still runs when the host goes down; the disk keeps what this boot wrote.
      await h.container.writeFile(MARK, 'first boot\n');
      await powerOff(h);
    },
    300_000,
  );

  itWith(
    req,
    'after a reboot no guest mdev exists until its guest starts, and the same holds again',
    async () => {
      if (!disk) throw new Error('the first boot did not run (see the test before)');
      const h = await boot('disk');
      expect(await h.container.readFile(MARK)).toBe('first boot\n');
      // Nothing of the last boot's guests is left: no status file, no record of ours, no mdev.
      const left = await h.container.exec(['sh', '-c', 'find /run/libvirt/qemu /run/ap-persist/guests -mindepth 1 2>/dev/null; true']);
      expect(left.stdout).toBe('');
      await talkScenario(h);
    },
    300_000,
  );
});
