// Boots the cached Debian tree with systemd as PID 1 in systemd-nspawn, for
// tests that watch a real boot. What each piece is for:
// - The cached tree is the overlay's lower layer, bind-mounted read-only, so
//   no boot can change it; the writable upper layer is a temp directory that
//   can be filled before the boot (units, scripts) and is removed at stop.
// - nspawn runs without machined (--register=no, --keep-unit) in a private
//   mount namespace with a tmpfs on /run: its own mounts and its /run/systemd
//   bookkeeping never reach the host, and vanish when it exits.
// - It runs in a cgroup of its own (in the hierarchies systemd uses): with
//   --keep-unit nspawn puts the container below its caller's cgroup, and two
//   containers in the same cgroup would share their payload cgroup.
// - setpriv --pdeathsig: if the test process dies, nspawn gets SIGTERM and
//   halts the container; an `exit` handler cleans up what is left.
// - Commands run inside through nsenter (all namespaces of the container's
//   PID 1), in a process group of their own so a timeout kills them whole.

import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ensureRootfs, mountsUnder, removeTree } from './rootfs.js';
import {
  childrenOf,
  isAlive,
  kill,
  namespaceOf,
  processesIn,
  runCommand,
  sleep,
  sleepSync,
  waitFor,
  type CommandResult,
  type WaitOptions,
} from './process.js';

/** Where the host's node binary is mounted (read-only; never on the container's PATH). */
export const CONTAINER_NODE = '/opt/node/bin/node';
/** Where the project's checkout is mounted (read-only). */
export const CONTAINER_SRC = '/opt/ap-persist-src';
/** Debian's default PATH, for commands run by exec(). */
export const CONTAINER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface Bind {
  host: string;
  container: string;
  readOnly?: boolean;
}

/** A file (or symlink) put into the container's writable layer before it boots. */
export type LayerFile = { path: string; content: string | Buffer; mode?: number } | { path: string; symlink: string };

export interface BootOptions {
  /** Machine name (also the hostname); unique per run by default. */
  name?: string;
  binds?: Bind[];
  files?: LayerFile[];
  /** A prepared tree to boot; by default the cached one (built on first use). */
  rootfs?: string;
  /**
   * 'booted' (default): resolve once systemd reports the boot finished.
   * 'manager': as soon as PID 1 takes commands, while the boot still runs
   * (to send an event while units wait for it).
   */
  until?: 'booted' | 'manager';
  /** Until `systemctl is-system-running --wait` answers; default 90 s. */
  bootTimeoutMs?: number;
  /** How long a clean halt may take before everything is killed; default 30 s. */
  stopTimeoutMs?: number;
}

export interface ExecOptions {
  /** Added to the command's environment, which is otherwise only PATH. */
  env?: Record<string, string>;
  input?: string | Buffer;
  /** Default 60 s; the command and everything it started is then killed. */
  timeoutMs?: number;
}

export type ExecResult = CommandResult;

export interface StopReport {
  /** From SIGTERM to nspawn's exit. */
  haltMs: number;
  /** True when the clean halt took too long and everything was killed. */
  killed: boolean;
}

export interface Container {
  readonly name: string;
  /** The container's PID 1 as the host sees it. */
  readonly leaderPid: number;
  /** From starting nspawn until systemd reported the boot finished. */
  readonly bootMs: number;
  /** What `systemctl is-system-running --wait` said: running or degraded. */
  readonly bootState: string;
  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  systemctl(...args: string[]): Promise<ExecResult>;
  /** The journal (of one unit, or all), with precise realtime timestamps (the host's clock). */
  journal(unit?: string): Promise<string>;
  readFile(path: string): Promise<string>;
  writeFile(path: string, content: string | Buffer, mode?: number): Promise<void>;
  waitFor<T>(poll: () => Promise<T | undefined | false> | T | undefined | false, opts: WaitOptions): Promise<T>;
  /** Halts the container, removes its temp dirs, and throws if any process, mount or cgroup of it is left. */
  stop(): Promise<StopReport>;
}

/** The host's node binary at CONTAINER_NODE, read-only. */
export function nodeBind(): Bind {
  return { host: realpathSync(process.execPath), container: CONTAINER_NODE, readOnly: true };
}

/** A checkout at CONTAINER_SRC, read-only. */
export function checkoutBind(dir: string): Bind {
  return { host: realpathSync(dir), container: CONTAINER_SRC, readOnly: true };
}

const PREFIX = 'ap-persist-';
// Machine names, cgroups and temp dirs (name.XXXXXX) of a test process.
const ownName = /^ap-persist-(\d+)-[a-z0-9]+(?:\.[A-Za-z0-9]+)?$/;

function uniqueName(): string {
  return `${PREFIX}${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * Our own cgroup directory in each hierarchy systemd uses: the unified one
 * (cgroup v2, or the hybrid /sys/fs/cgroup/unified) and the v1 name=systemd one.
 */
function systemdCgroupDirs(): string[] {
  const mounts = new Map<string, { root: string; at: string }>();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const f = left.split(' ');
    const [fstype, , superOpts] = right.split(' ');
    const at = { root: f[3]!, at: f[4]! };
    if (fstype === 'cgroup2' && !mounts.has('0')) mounts.set('0', at);
    if (fstype === 'cgroup' && superOpts?.split(',').includes('name=systemd')) mounts.set('name=systemd', at);
  }
  const dirs: string[] = [];
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1] === '0' && m[2] === '' ? '0' : m[2] === 'name=systemd' ? 'name=systemd' : undefined;
    const mount = key && mounts.get(key);
    if (!mount) continue;
    const rel = mount.root !== '/' && m[3]!.startsWith(mount.root) ? m[3]!.slice(mount.root.length) : m[3]!;
    dirs.push(join(mount.at, rel));
  }
  return dirs;
}

/** Removes a cgroup subtree, killing what still runs in it; returns what could not be removed. */
function removeCgroup(dir: string, killInside: boolean): string[] {
  if (!existsSync(dir)) return [];
  const left: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) left.push(...removeCgroup(join(dir, entry.name), killInside));
  }
  for (let attempt = 0; ; attempt++) {
    try {
      rmdirSync(dir);
      return left;
    } catch {
      let pids: number[] = [];
      try {
        pids = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
      } catch {
        if (!existsSync(dir)) return left;
      }
      if (!killInside || attempt >= 20) return [...left, `${dir} (processes ${pids.join(' ') || 'none'})`];
      pids.forEach(kill);
      sleepSync(50);
    }
  }
}

/** Containers of test processes that are gone: their cgroups and temp dirs (never ones in use). */
function sweepLeftovers(base: string): void {
  const dead = (name: string): boolean => {
    const m = ownName.exec(name);
    return m !== null && !isAlive(Number(m[1]));
  };
  for (const dir of systemdCgroupDirs()) {
    for (const entry of existsSync(dir) ? readdirSync(dir) : []) if (dead(entry)) removeCgroup(join(dir, entry), false);
  }
  for (const entry of readdirSync(base)) {
    if (!dead(entry)) continue;
    try {
      removeTree(join(base, entry));
    } catch {
      // something is still mounted there: leave it
    }
  }
}

function tempBase(): string {
  // nspawn gets a tmpfs over /run, which would hide a temp dir below it.
  const t = tmpdir();
  return t === '/run' || t.startsWith('/run/') ? '/var/tmp' : t;
}

const live = new Set<NspawnContainer>();
let exitHandlersInstalled = false;

function installExitHandlers(): void {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  process.on('exit', () => {
    for (const c of live) c.killSync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      for (const c of live) c.killSync();
      process.removeListener(sig, handler);
      process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

// Runs in the cgroups given by AP_CGROUP_PROCS, then in a private mount
// namespace: the tree read-only at AP_LOWER, a tmpfs on /run, then nspawn.
const LAUNCHER = `
for f in $AP_CGROUP_PROCS; do echo $$ > "$f" || exit 97; done
exec setpriv --pdeathsig TERM unshare -m --propagation private sh -c '
  mount --bind "$AP_ROOTFS" "$AP_LOWER" &&
  mount -o remount,bind,ro "$AP_LOWER" &&
  mount -t tmpfs -o mode=0755 ap-persist-run /run &&
  exec "$@"' sh "$@"
`;

function writeLayer(upper: string, files: readonly LayerFile[]): void {
  for (const f of files) {
    if (!f.path.startsWith('/') || f.path.split('/').includes('..')) throw new Error(`layer file path must be absolute and plain: ${f.path}`);
    const at = join(upper, f.path);
    mkdirSync(dirname(at), { recursive: true });
    if ('symlink' in f) symlinkSync(f.symlink, at);
    else {
      writeFileSync(at, f.content);
      chmodSync(at, f.mode ?? 0o644);
    }
  }
}

class NspawnContainer implements Container {
  leaderPid = 0;
  bootMs = 0;
  bootState = '';
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private nspawnLog = '';
  private readonly cgroups: string[];
  private readonly namespaces = new Set<string>();
  private readonly execs = new Set<number>();
  private stopped = false;

  constructor(
    readonly name: string,
    private readonly dir: string,
    private readonly rootfs: string,
    private readonly opts: BootOptions,
  ) {
    this.cgroups = systemdCgroupDirs().map((d) => join(d, name));
  }

  async start(): Promise<void> {
    const lower = join(this.dir, 'lower');
    const upper = join(this.dir, 'upper');
    mkdirSync(lower);
    mkdirSync(upper);
    writeLayer(upper, this.opts.files ?? []);
    for (const p of [this.rootfs, upper, ...(this.opts.binds ?? []).flatMap((b) => [b.host, b.container])]) {
      if (p.includes(':')) throw new Error(`nspawn cannot take a path with ':' in it: ${p}`);
    }
    for (const d of this.cgroups) mkdirSync(d);
    const argv = [
      'systemd-nspawn', '-q', '-D', lower, `--overlay=${lower}:${upper}:/`,
      '--boot', '--register=no', '--keep-unit', '--console=pipe', '-M', this.name, '--private-network',
      ...(this.opts.binds ?? []).map((b) => `--bind${b.readOnly ? '-ro' : ''}=${b.host}:${b.container}`),
    ];
    const started = Date.now();
    const child = spawn('sh', ['-c', LAUNCHER, 'sh', ...argv], {
      env: {
        PATH: CONTAINER_PATH,
        AP_CGROUP_PROCS: this.cgroups.map((d) => join(d, 'cgroup.procs')).join(' '),
        AP_ROOTFS: this.rootfs,
        AP_LOWER: lower,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    live.add(this);
    const keep = (d: Buffer): void => void (this.nspawnLog = (this.nspawnLog + d.toString()).slice(-64 * 1024));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.exited = new Promise((r) => child.on('close', () => r()));
    const timeoutMs = this.opts.bootTimeoutMs ?? 90_000;
    const deadline = started + timeoutMs;
    const nspawn = child.pid!;
    const hopeless = (): string | undefined =>
      child.exitCode !== null || child.signalCode !== null ? `nspawn exited (${child.exitCode ?? child.signalCode}):\n${this.nspawnLog.trim()}` : undefined;

    // PID 1 of the container: a descendant of nspawn that is pid 1 in its
    // own pid namespace, once it has become systemd.
    this.leaderPid = await waitFor(
      () => {
        const queue = childrenOf(nspawn);
        for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
          try {
            const status = readFileSync(`/proc/${pid}/status`, 'utf8');
            const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/);
            if (nspid && nspid.length >= 2 && nspid.at(-1) === '1' && /^Name:\s+systemd$/m.test(status)) return pid;
          } catch {
            // gone meanwhile
          }
          queue.push(...childrenOf(pid));
        }
        return undefined;
      },
      { timeoutMs, intervalMs: 10, what: "the container's systemd to start", hopeless },
    );
    // By now nspawn runs in its private mount namespace. Our own namespaces
    // never count as the container's: cleanup kills what is in them.
    const ours = new Set([namespaceOf(process.pid, 'pid'), namespaceOf(process.pid, 'mnt')]);
    for (const ns of [namespaceOf(nspawn, 'mnt'), namespaceOf(this.leaderPid, 'pid'), namespaceOf(this.leaderPid, 'mnt')]) {
      if (ns && !ours.has(ns)) this.namespaces.add(ns);
    }

    // Until PID 1 listens on its private socket, systemctl cannot connect; retry.
    this.bootState = await waitFor(
      async () => {
        const left = deadline - Date.now();
        const early = this.opts.until === 'manager';
        const r = await this.exec(['systemctl', 'is-system-running', ...(early ? [] : ['--wait'])], { timeoutMs: Math.max(left, 1) });
        const state = r.stdout.trim();
        // "offline": systemctl could not reach PID 1 yet (its private socket is not up): ask again.
        if (state === '' || state === 'offline' || (!early && (state === 'starting' || state === 'initializing'))) throw new Error(r.stderr.trim() || `no answer (${state || 'empty'})`);
        return state;
      },
      { timeoutMs, intervalMs: 50, what: 'the boot to finish', hopeless },
    );
    this.bootMs = Date.now() - started;
    if (this.opts.until !== 'manager' && this.bootState !== 'running' && this.bootState !== 'degraded') {
      const failed = await this.systemctl('--failed', '--no-legend');
      throw new Error(`container boot ended "${this.bootState}"; failed units:\n${failed.stdout}`);
    }
  }

  exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    if (this.stopped) return Promise.reject(new Error(`container ${this.name} is stopped`));
    let pid = 0;
    return runCommand(['nsenter', '-t', String(this.leaderPid), '-a', ...argv], {
      env: { PATH: CONTAINER_PATH, ...opts.env },
      input: opts.input,
      timeoutMs: opts.timeoutMs ?? 60_000,
      onSpawn: (p) => this.execs.add((pid = p)),
    }).finally(() => this.execs.delete(pid));
  }

  systemctl(...args: string[]): Promise<ExecResult> {
    return this.exec(['systemctl', '--no-pager', ...args]);
  }

  async journal(unit?: string): Promise<string> {
    const r = await this.exec(['journalctl', '--no-pager', '-q', '-o', 'short-iso-precise', ...(unit ? ['-u', unit] : [])]);
    if (r.code !== 0) throw new Error(`journalctl failed: ${r.stderr}`);
    return r.stdout;
  }

  async readFile(path: string): Promise<string> {
    const r = await this.exec(['cat', '--', path]);
    if (r.code !== 0) throw new Error(`cannot read ${path} in the container: ${r.stderr.trim()}`);
    return r.stdout;
  }

  async writeFile(path: string, content: string | Buffer, mode = 0o644): Promise<void> {
    const r = await this.exec(['sh', '-c', 'mkdir -p "${1%/*}" && cat > "$1" && chmod "$2" "$1"', 'sh', path, mode.toString(8)], { input: content });
    if (r.code !== 0) throw new Error(`cannot write ${path} in the container: ${r.stderr.trim()}`);
  }

  waitFor<T>(poll: () => Promise<T | undefined | false> | T | undefined | false, opts: WaitOptions): Promise<T> {
    return waitFor(poll, opts);
  }

  private killExecs(): void {
    for (const pid of this.execs) kill(-pid);
  }

  private killAll(): void {
    this.killExecs();
    // Killing PID 1 of a pid namespace kills every process in it.
    kill(this.leaderPid);
    kill(this.child?.pid ?? 0);
  }

  async stop(): Promise<StopReport> {
    if (this.stopped) return { haltMs: 0, killed: false };
    this.stopped = true;
    this.killExecs();
    if (!this.exited) {
      const problems = await this.cleanUp();
      if (problems.length) throw new Error(`container ${this.name} left behind:\n${problems.join('\n')}`);
      return { haltMs: 0, killed: false };
    }
    const t0 = Date.now();
    let killed = false;
    const timeout = this.opts.stopTimeoutMs ?? 30_000;
    const exited = this.exited;
    const exitedWithin = (ms: number): Promise<boolean> => Promise.race([exited.then(() => true), sleep(ms).then(() => false)]);
    // SIGTERM to nspawn halts the container the way a shutdown does.
    if (this.child?.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    if (!(await exitedWithin(timeout))) {
      killed = true;
      this.killAll();
      await exitedWithin(5_000);
    }
    const haltMs = Date.now() - t0;
    const problems = await this.cleanUp();
    if (problems.length) throw new Error(`container ${this.name} left behind:\n${problems.join('\n')}\nnspawn said:\n${this.nspawnLog}`);
    return { haltMs, killed };
  }

  /** Removes cgroups and temp dirs; returns what is still there. */
  private async cleanUp(): Promise<string[]> {
    const problems: string[] = [];
    // The pid namespace dies with its PID 1; nsenter'd commands are in it too.
    let stray: number[] = [];
    for (let i = 0; i < 50; i++) {
      stray = processesIn(this.namespaces);
      if (!stray.length) break;
      stray.forEach(kill);
      await sleep(20);
    }
    if (stray.length) problems.push(`processes ${stray.join(' ')}`);
    if (this.child && isAlive(this.child.pid!)) problems.push(`nspawn (pid ${this.child.pid}) still running`);
    for (const d of this.cgroups) problems.push(...removeCgroup(d, true).map((c) => `cgroup ${c}`));
    const mounted = [...mountsUnder(this.dir), ...mountsUnder(this.rootfs)];
    if (mounted.length) problems.push(`mounts ${mounted.join(' ')}`);
    else removeTree(this.dir);
    live.delete(this);
    return problems;
  }

  /** Last resort at process exit: kill everything, remove what can be removed. */
  killSync(): void {
    this.stopped = true;
    this.killAll();
    for (let i = 0; i < 40 && processesIn(this.namespaces).length; i++) sleepSync(25);
    for (const d of this.cgroups) removeCgroup(d, true);
    try {
      removeTree(this.dir);
    } catch {
      // still mounted (cannot happen: all mounts are in namespaces now gone)
    }
    live.delete(this);
  }
}

/**
 * Boots a container from the cached tree (building it first if needed) and
 * resolves once systemd reports the boot finished (running or degraded).
 */
export async function bootContainer(opts: BootOptions = {}): Promise<Container> {
  const rootfs = opts.rootfs ?? (await ensureRootfs()).path;
  const name = opts.name ?? uniqueName();
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name)) throw new Error(`invalid machine name: ${name}`);
  const base = tempBase();
  sweepLeftovers(base);
  installExitHandlers();
  const dir = mkdtempSync(join(base, `${name}.`));
  const c = new NspawnContainer(name, dir, rootfs, opts);
  try {
    await c.start();
  } catch (e) {
    await c.stop().catch((stopError: Error) => {
      (e as Error).message += `\n(and stopping it failed: ${stopError.message})`;
    });
    throw e;
  }
  return c;
}
