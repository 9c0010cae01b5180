// Host commands that hang: stub modprobe and systemctl (first on PATH, under
// --exec) that sleep forever, one whose background child keeps the output
// pipe open, one that exits at once but leaves such a child behind. The hook
// and wait must come back within their bounds, and no process of a stub may
// outlive the command. Every stub's processes carry a unique marker in their
// command line (a link to sleep named after it), so pgrep finds exactly them.

import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HostPaths } from '../../src/host/paths.js';
import { writeMark } from '../../src/fsio/mark.js';
import { buildFakeHost } from '../../src/fakehost/builder.js';
import { threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { tempDir } from '../support/host.js';
import { processesWith, runCli, tally, type ProcessRun } from './support.js';

/** What each stub does: hang, hang with a child on the pipe, exit at once leaving such a child, or answer. */
export type StubMode = 'hang' | 'hang-with-child' | 'exit-leaving-child' | 'ok';

export interface HangCase {
  name: string;
  /** fresh: the boot's first event; after-boot: vfio_ap loaded and units of ours started this boot (a later event asks systemd, then starts them). */
  host: 'fresh' | 'after-boot';
  modprobe: StubMode;
  /** systemctl's `show`/`list-units` (the questions) and its `start`/`restart` (the jobs). */
  systemctlShow: StubMode;
  systemctlStart: StubMode;
  args: string[];
  /** The bound it must come back within, ms: the step's own deadline plus TERM-to-KILL (1 s) and the drain. */
  boundMs: number;
  code: number;
  says?: RegExp;
}

const SHOW_ACTIVE_TARGET = 'Id=ap-persist-mdevs.target\nActiveState=active\nResult=success\n';

function body(mode: StubMode, sleeper: string, answer = ''): string {
  switch (mode) {
    case 'hang':
      return `exec ${sleeper} 600`;
    case 'hang-with-child':
      return `(${sleeper} 600 &)\nexec ${sleeper} 601`;
    case 'exit-leaving-child':
      return `(${sleeper} 600 &)\nexit 0`;
    case 'ok':
      return answer ? `printf '%s' '${answer}'\nexit 0` : 'exit 0';
  }
}

/** A PATH directory with modprobe and systemctl stubs, and the marker their processes carry. */
export function stubDir(c: HangCase, marker: string): string {
  const dir = tempDir('ap-persist-fault-stubs-');
  const sleeper = join(dir, marker);
  symlinkSync('/bin/sleep', sleeper);
  const put = (name: string, text: string): void => {
    writeFileSync(join(dir, name), `#!/bin/sh\n${text}\n`);
    chmodSync(join(dir, name), 0o755);
  };
  put('modprobe', body(c.modprobe, sleeper));
  // `show` answers with the target active, so that one `start` (of the mdev units) follows.
  // `list-units`: no hook unit activating.
  put('systemctl', `case " $* " in\n  *" show "*)\n${body(c.systemctlShow, sleeper, c.systemctlShow === 'ok' ? SHOW_ACTIVE_TARGET : '')}\n  ;;\n  *" list-units "*)\n${body(c.systemctlShow, sleeper)}\n  ;;\nesac\n${body(c.systemctlStart, sleeper)}`);
  return dir;
}

export const HANG_CASES: HangCase[] = [
  {
    name: 'hook, modprobe hangs',
    host: 'fresh',
    modprobe: 'hang',
    systemctlShow: 'ok',
    systemctlStart: 'ok',
    args: ['hook', '--event', 'change-1'],
    boundMs: 15_000 + 1_100 + 3_000,
    code: 1,
    says: /modprobe vfio_ap failed \(timed out\)/,
  },
  {
    name: "hook, modprobe hangs and its child keeps the pipe",
    host: 'fresh',
    modprobe: 'hang-with-child',
    systemctlShow: 'ok',
    systemctlStart: 'ok',
    args: ['hook', '--event', 'change-1'],
    boundMs: 15_000 + 1_100 + 3_000,
    code: 1,
    says: /modprobe vfio_ap failed \(timed out\)/,
  },
  {
    // A later event: at the first, the target the rule queued starts the units, not the hook.
    name: 'hook, systemctl start hangs with a child on the pipe (a later event)',
    host: 'after-boot',
    modprobe: 'ok',
    systemctlShow: 'ok',
    systemctlStart: 'hang-with-child',
    args: ['hook', '--event', 'change-2'],
    boundMs: 15_000 + 1_100 + 3_000,
    code: 1,
    says: /systemctl/,
  },
  {
    name: 'hook, systemctl show hangs (a later event)',
    host: 'after-boot',
    modprobe: 'ok',
    systemctlShow: 'hang',
    systemctlStart: 'ok',
    args: ['hook', '--event', 'change-2'],
    // show: 5 s; start then answers at once.
    boundMs: 5_000 + 1_100 + 3_000,
    code: 0,
  },
  {
    name: 'wait --timeout 5, no event: the hook it runs finds modprobe hanging with a child on the pipe',
    host: 'fresh',
    modprobe: 'hang-with-child',
    systemctlShow: 'ok',
    systemctlStart: 'ok',
    args: ['wait', '--timeout', '5'],
    boundMs: 5_000 + 1_100 + 3_000,
    code: 1,
  },
  {
    name: 'wait --timeout 5, everything hangs with children on the pipe',
    host: 'fresh',
    modprobe: 'hang-with-child',
    systemctlShow: 'hang-with-child',
    systemctlStart: 'hang-with-child',
    args: ['wait', '--timeout', '5'],
    boundMs: 5_000 + 1_100 + 3_000,
    code: 1,
  },
  {
    name: 'hook, modprobe exits at once but leaves a child holding the pipe',
    host: 'fresh',
    modprobe: 'exit-leaving-child',
    systemctlShow: 'ok',
    systemctlStart: 'ok',
    args: ['hook', '--event', 'change-1'],
    // No deadline involved: the drain (100 ms) must not wait for the child.
    boundMs: 10_000,
    // modprobe "succeeded" but vfio_ap is not there: the hook says so.
    code: 1,
  },
];

export interface HangOutcome {
  c: HangCase;
  r: ProcessRun;
  /** Processes of the stub still running after the command returned. */
  left: string;
}

export async function runHangCase(c: HangCase): Promise<HangOutcome> {
  const marker = `ap-persist-fault-hang-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const root = tempDir('ap-persist-fault-hang-');
  buildFakeHost(root, { ...threeGuestsHost(), ...(c.host === 'after-boot' ? { vfioAp: true } : {}) });
  mkdirSync(join(root, 'run'), { recursive: true });
  // The first hook's mark that it had systemd start units: this hook asks systemd which are up.
  if (c.host === 'after-boot') writeMark(new HostPaths(root).unitsStarted);
  const path = stubDir(c, marker);
  const r = await runCli(['--root', root, '--exec', ...c.args], { env: { PATH: `${path}:/usr/bin:/bin` }, boundMs: 90_000 });
  tally.runs++;
  tally.faults++;
  // Killed processes may take a moment to be reaped; then nothing of the stub may be left.
  let left = processesWith(marker);
  for (let i = 0; left && i < 10; i++) {
    await new Promise((res) => setTimeout(res, 100));
    left = processesWith(marker);
  }
  if (left) {
    // Leave nothing behind for the next test either, whatever the verdict.
    for (const line of left.split('\n')) {
      const pid = Number.parseInt(line, 10);
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    }
  }
  return { c, r, left };
}
