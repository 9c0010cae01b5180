// Given a simulated host: a fake root (store, mdevctl files) whose sysfs is
// the simulated kernel, and whose host commands go to it (modprobe) or run
// our units in-process (systemctl). `onDisk` keeps the kernel's state in the
// root's sys/ between commands, so runs go through files under --root too.

import { buildFakeHost, type FakeHost } from '../../src/fakehost/builder.js';
import { simulatedRunner, type SimulatedRunner } from '../../src/fakehost/sim-runner.js';
import { run } from '../../src/cli/program.js';
import { SimKernel, type KernelFlavour, type SimKernelOptions } from '../../src/sysfs/sim-kernel.js';
import { tempDir, snapshotTree, type RunResult } from './host.js';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { HostPaths } from '../../src/host/paths.js';
import { queuesTarget } from '../../src/cli/fast-path.js';
import { MDEVS_TARGET } from '../../src/generate/unit-names.js';
import { readLinkedMdevs } from '../../src/host/state.js';
import { join } from 'node:path';
import { packageRoot } from '../../src/package-info.js';

const MDEV_UNIT = readFileSync(join(packageRoot(), 'units/ap-persist-mdev@.service'), 'utf8');
/** ap-persist-mdev@.service's RuntimeDirectory=, which systemd makes when the unit starts and removes when it stops or fails. */
const MDEV_UNIT_RUNTIME_DIR = /^RuntimeDirectory=(.+)$/m.exec(MDEV_UNIT)![1]!;
/** Its ConditionPathExists=!PATH: any of these there (relative to the root), systemd skips its start. */
const MDEV_UNIT_UNLESS = [...MDEV_UNIT.matchAll(/^ConditionPathExists=!\/(.+)$/gm)].map((m) => m[1]!);


export interface SimHost {
  root: string;
  kernel(): SimKernel;
  /** The last command's simulated runner: what ran, and each unit's exit code. */
  runner(): SimulatedRunner | undefined;
  /** Units systemd shows as activating (a hook unit still running), by name: the test's to fill. */
  readonly activating: Set<string>;
  /** `stdin`: what the command reads on its standard input (the callout's JSON, libvirt's domain XML). */
  run(args: string[], env?: Record<string, string>, stdin?: string): Promise<RunResult>;
  read(rel: string): string;
  snapshot(): Map<string, string>;
}

export const BINDINGS_COMPLETE = { ACTION: 'change', DEVPATH: '/devices/ap', BINDINGS: 'complete', COMPLETECOUNT: '1' };

export interface SimHostOptions {
  onDisk?: boolean;
  /** false: systemd queues the mdev units but never runs them (a hung start). */
  runUnits?: boolean;
  /** What else the kernel is like (a 6.19 backport without bindings_complete_count). */
  kernel?: Pick<SimKernelOptions, 'bindingsCompleteCountAttr'>;
}

export function givenSimulatedHost(spec: FakeHost, flavour: KernelFlavour, options: SimHostOptions = {}): SimHost {
  const root = tempDir();
  buildFakeHost(root, spec);
  let kernel = SimKernel.fromDisk(root, flavour, options.kernel);
  let last: SimulatedRunner | undefined;
  // systemd outlives each command: what the units did stays known.
  const units = new Map<string, number>();
  const activating = new Set<string>();

  const cli = async (args: string[], env: Record<string, string>, outer = true, stdin = ''): Promise<RunResult> => {
    let stdout = '';
    let stderr = '';
    const io = { stdout: (t: string) => void (stdout += t), stderr: (t: string) => void (stderr += t), env, stdin: () => stdin };
    const runtimeDir = (uuid: string): string => join(root, 'run', MDEV_UNIT_RUNTIME_DIR.replace('%i', uuid));
    const unit = async (verb: 'start' | 'stop', uuid: string): Promise<number | undefined | 'skipped'> => {
      // As systemd: a start whose ConditionPathExists=! names a file there runs nothing.
      if (verb === 'start' && MDEV_UNIT_UNLESS.some((path) => existsSync(join(root, path.replace('%i', uuid))))) return 'skipped';
      // As systemd: the directory before ExecStart, gone once the unit is down (stopped or failed).
      if (verb === 'start') mkdirSync(runtimeDir(uuid), { recursive: true });
      if (options.runUnits === false) return undefined;
      const code = (await cli(['mdev', verb, uuid], {}, false)).code;
      if (verb === 'stop' || code !== 0) rmSync(runtimeDir(uuid), { recursive: true, force: true });
      return code;
    };
    const wants = (): string[] => readLinkedMdevs(new HostPaths(root));
    const runner = simulatedRunner(kernel, unit, units, wants, () => [...activating]);
    if (outer) last = runner;
    const code = await run(['--root', root, '--exec', ...args], io, { sysfs: kernel, runner });
    // The hook as its unit, of an instance the udev rule queues the target with: systemd starts the target after it.
    if (outer && queuesTarget(args)) await runner.run('systemctl', ['start', MDEVS_TARGET]);
    return { code, stdout, stderr };
  };

  return {
    root,
    kernel: () => kernel,
    runner: () => last,
    activating,
    async run(args, env = {}, stdin = '') {
      if (options.onDisk) kernel = SimKernel.fromDisk(root, flavour, options.kernel);
      const result = await cli(args, env, true, stdin);
      if (options.onDisk) kernel.saveTo(root);
      return result;
    },
    read: (rel) => readFileSync(join(root, rel), 'utf8'),
    snapshot: () => snapshotTree(root),
  };
}
