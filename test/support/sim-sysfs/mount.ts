// The simulated kernel as a real filesystem: startSimSysfs() mounts, with
// FUSE, the same SimKernel model the in-process tests use, so real tools
// (mdevctl, udevadm, a booted container) read and write it through the VFS.
//
//   <mountpoint>/sys/      the kernel's tree: bus/, class/, devices/, module/
//   <mountpoint>/control   write one command per write() (ControlCommand)
//   <mountpoint>/state     read: the model's state as JSON (SimKernelState)
//
// The mount is made only on a fresh temp directory of its own, seen by every
// root process (allow_other), and goes away with stop(), at the end of the
// test file at the latest, or when the test process dies.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEveryFile } from '../lifecycle.js';
import type { FakeHost } from '../../../src/fakehost/builder.js';
import type { KernelFlavour, ModuleName, SimKernelState } from '../../../src/sysfs/sim-kernel.js';
import { requireTools, type Need, type Requirement } from '../real-tools.js';
import { CONTROL, STATE, type ServerConfig } from './protocol.js';

/** One command for `control`, one per write(). */
export type ControlCommand =
  /** modprobe; fails with the errno after fail-load */
  | `load ${ModuleName}`
  /** the next TIMES (1) loads fail with ERRNO (ENODEV) */
  | `fail-load ${ModuleName}${'' | ` ${string}`}`
  /** an AP bus scan finds card XX (hex) of HWTYPE, with the usage domains the others have */
  | `add-card ${string} ${number}`
  /** a guest opens (1) or releases (0) a vfio_ap mdev */
  | `guest-running ${string} ${0 | 1}`
  /** the next TIMES (1) writes to the sysfs PATH (`bus/ap/apmask`) fail with ERRNO */
  | `fail-write ${string} ${string}`;

export interface SimSysfsOptions {
  /** Only what the kernel holds is used: cards, domains, limits, masks, vfioAp, activeMdevs. */
  host: FakeHost;
  kernel: KernelFlavour;
  /** The sample mdev driver mtty loaded: a second mdev parent (`mtty`, types mtty-1, mtty-2). */
  mtty?: boolean;
}

export interface SimSysfs {
  /** The FUSE root; FileSysfs takes it as its root (it reads `<root>/sys`). */
  readonly mountpoint: string;
  /** `<mountpoint>/sys`, what a container binds to its /sys/bus, /sys/class, /sys/devices, /sys/module. */
  readonly sys: string;
  /** Milliseconds from starting the adapter to the mount answering. */
  readonly startupMs: number;
  /** Writes one control command; throws the errno the model answered (err.code, `ENODEV`). */
  control(command: ControlCommand): void;
  state(): SimKernelState;
  /** Unmounts and ends both processes; safe to call twice. */
  stop(): Promise<void>;
}

const FUSE_READY_MS = 15_000;
const EXIT_WAIT_MS = 5_000;
const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));

const running = new Set<SimSysfs>();
let bundle: Promise<string> | undefined;
let bundleDir: string | undefined;
afterEveryFile(async () => {
  for (const sim of [...running]) await sim.stop();
  if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
  bundleDir = undefined;
  bundle = undefined;
});

/** Why the simulated sysfs cannot be mounted here (and what else `needs` lacks); undefined when it can. */
export function requireSimSysfs(...needs: Need[]): Requirement {
  const reasons = [requireTools(...needs).missing, fuseMissing()].filter((r): r is string => r !== undefined);
  return { missing: reasons.length > 0 ? reasons.join('; ') : undefined };
}

function fuseMissing(): string | undefined {
  // allow_other without user_allow_other in fuse.conf, and a mount other namespaces can bind, need root.
  if (process.getuid?.() !== 0) return 'mounting the simulated sysfs for every process needs root';
  try {
    closeSync(openSync('/dev/fuse', 'r+'));
  } catch (err) {
    return `FUSE is not available (/dev/fuse: ${(err as NodeJS.ErrnoException).code})`;
  }
  return fusePython() ? undefined : 'no python3 with fusepy (Debian: python3-fusepy) is installed';
}

let python: string | null | undefined;

/** A python3 that has fusepy: the one on PATH, else the distribution's, where its package puts it. */
function fusePython(): string | undefined {
  if (python === undefined) {
    const probe = 'try:\n import fusepy as f\nexcept ImportError:\n import fuse as f\nf.FUSE, f.Operations';
    python = ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', probe], { stdio: 'ignore' }).status === 0) ?? null;
  }
  return python ?? undefined;
}

/** The server bundled straight from the TypeScript sources, once per test file. */
function serverBundle(): Promise<string> {
  bundle ??= (async () => {
    const { build } = await import('esbuild');
    bundleDir = mkdtempSync(join(tmpdir(), 'ap-persist-sim-bundle-'));
    const outfile = join(bundleDir, 'server.cjs');
    await build({ entryPoints: [here('./server.ts')], bundle: true, platform: 'node', format: 'cjs', target: 'node20', outfile, logLevel: 'warning' });
    return outfile;
  })();
  return bundle;
}

/** Whether a FUSE file system is mounted on `dir` in this mount namespace. */
function fuseMountedOn(dir: string): boolean {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    const mountpoint = fields[4]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    const type = fields[fields.indexOf('-') + 1];
    if (mountpoint === dir && type?.startsWith('fuse')) return true;
  }
  return false;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** The pid of the adapter's server, once it said the mount is up. */
function ready(adapter: ChildProcess, stderr: () => string): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the simulated sysfs did not come up within ${FUSE_READY_MS} ms: ${stderr()}`)), FUSE_READY_MS);
    adapter.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^ready (\d+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    adapter.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the FUSE adapter ended (${code ?? signal}) before the mount was up: ${stderr()}`));
    });
  });
}

/** Mounts the simulated kernel for `options.host` on a fresh temp directory. */
export async function startSimSysfs(options: SimSysfsOptions): Promise<SimSysfs> {
  const interpreter = fusePython();
  const missing = fuseMissing();
  if (missing || !interpreter) throw new Error(`cannot mount the simulated sysfs: ${missing}`);
  const server = await serverBundle();

  // A directory no one else knows; the adapter checks the token before it mounts.
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'ap-persist-sim-sysfs-')));
  const mountpoint = join(dir, 'mnt');
  mkdirSync(mountpoint);
  const token = randomUUID();
  writeFileSync(join(dir, 'owner'), token);
  const config: ServerConfig = { host: kernelHost(options.host), kernel: options.kernel, mtty: options.mtty ?? false };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));

  const started = performance.now();
  const adapter = spawn(interpreter, [here('./adapter.py'), mountpoint, token, '--', process.execPath, server, join(dir, 'config.json')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  adapter.stderr!.on('data', (d: Buffer) => void (stderr += d.toString()));

  let serverPid: number | undefined;
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      running.delete(sim);
      // libfuse unmounts when its loop ends on SIGTERM; a lazy unmount covers an adapter that could not.
      adapter.kill('SIGTERM');
      if (!(await exited(adapter, EXIT_WAIT_MS))) adapter.kill('SIGKILL');
      if (fuseMountedOn(mountpoint)) spawnSync('umount', ['-l', mountpoint], { stdio: 'ignore' });
      // The server ends when its pipe closes; kill it only if it is still our server.
      if (serverPid !== undefined && alive(serverPid) && readFileSync(`/proc/${serverPid}/cmdline`, 'utf8').includes(server)) process.kill(serverPid, 'SIGKILL');
      if (fuseMountedOn(mountpoint)) throw new Error(`${mountpoint} is still mounted; left in place`);
      rmSync(dir, { recursive: true, force: true });
    })());

  const sim: SimSysfs = {
    mountpoint,
    sys: join(mountpoint, 'sys'),
    startupMs: 0,
    control: (command) => writeFileSync(join(mountpoint, CONTROL), command),
    state: () => JSON.parse(readFileSync(join(mountpoint, STATE), 'utf8')) as SimKernelState,
    stop,
  };
  running.add(sim);
  try {
    serverPid = await ready(adapter, () => stderr);
    if (!fuseMountedOn(mountpoint)) throw new Error(`the adapter said ready, but nothing is mounted on ${mountpoint}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return Object.assign(sim, { startupMs: Math.round(performance.now() - started) });
}

/** The kernel's part of a fake host, in JSON. */
function kernelHost(host: FakeHost): ServerConfig['host'] {
  const { cards, domains, maxAdapterId, maxDomainId, vfioAp, activeMdevs, masks } = host;
  return {
    cards,
    domains,
    maxAdapterId,
    maxDomainId,
    vfioAp,
    activeMdevs,
    masks: masks ? { apmask: masks.apmask.toKernelHex(), aqmask: masks.aqmask.toKernelHex() } : undefined,
  };
}
