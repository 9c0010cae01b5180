// Small process helpers for the container harness: run a command with a
// bounded lifetime, and ask /proc about processes and namespaces.

import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface CommandResult {
  /** Exit status, or null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the timeout killed it. */
  timedOut: boolean;
}

export interface CommandOptions {
  /** The WHOLE environment of the command (nothing is inherited). */
  env?: Record<string, string>;
  input?: string | Buffer;
  timeoutMs?: number;
  /** Called with the child's pid once it runs (to kill it from elsewhere). */
  onSpawn?: (pid: number) => void;
}

// Output beyond this is dropped (with a note): a runaway command must not eat the test's memory.
const MAX_OUTPUT = 16 * 1024 * 1024;

/**
 * Runs argv in its own process group, so that a timeout kills everything it
 * started (nsenter forks into the container; the fork keeps the group).
 */
export function runCommand(argv: readonly string[], opts: CommandOptions = {}): Promise<CommandResult> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('runCommand: empty argv');
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    const collect = (into: Buffer[]) => (d: Buffer) => {
      if (size + d.length <= MAX_OUTPUT) into.push(d);
      size += d.length;
    };
    child.stdout!.on('data', collect(out));
    child.stderr!.on('data', collect(err));
    let timedOut = false;
    const killGroup = (): void => kill(-(child.pid ?? 0));
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    if (child.pid) opts.onSpawn?.(child.pid);
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => undefined); // the command may exit without reading
      child.stdin!.end(opts.input);
    }
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // Whatever the command left behind in its group goes with it.
      if (timedOut) killGroup();
      const truncated = size > MAX_OUTPUT ? `\n[output truncated at ${MAX_OUTPUT} bytes]` : '';
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8') + truncated,
        timedOut,
      });
    });
  });
}

/** Throws with the command's output unless it exited 0. */
export function mustSucceed(what: string, r: CommandResult): CommandResult {
  if (r.code !== 0) {
    const how = r.timedOut ? 'timed out' : r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
    throw new Error(`${what}: ${how}\n${r.stderr.slice(-4000)}${r.stdout.slice(-2000)}`);
  }
  return r;
}

/** SIGKILL to a process (or, negative, a process group) that may be gone already. */
export function kill(pid: number): void {
  try {
    if (pid) process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

export function isAlive(pid: number): boolean {
  try {
    // A zombie has exited; only its parent's wait is missing.
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** The namespace link of a process (`mnt:[4026531841]`), or undefined when it is gone. */
export function namespaceOf(pid: number, ns: 'pid' | 'mnt'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/${ns}`);
  } catch {
    return undefined;
  }
}

/** Every live process whose pid or mount namespace is one of `namespaces`. */
export function processesIn(namespaces: ReadonlySet<string>): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const pidNs = namespaceOf(pid, 'pid');
    const mntNs = namespaceOf(pid, 'mnt');
    if ((pidNs && namespaces.has(pidNs)) || (mntNs && namespaces.has(mntNs))) {
      if (isAlive(pid)) found.push(pid);
    }
  }
  return found;
}

/** The pids of `pid`'s direct children. */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Blocks the thread (for cleanup in an `exit` handler, where nothing async runs). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** What is awaited, for the error message. */
  what?: string;
  /** Checked before each poll: a reason to stop waiting at once (e.g. the container died). */
  hopeless?: () => string | undefined;
}

/**
 * Polls until `poll` returns something other than undefined/false and
 * returns it; throws after the timeout (with the last poll error, if any).
 */
export async function waitFor<T>(poll: () => Promise<T | undefined | false> | T | undefined | false, opts: WaitOptions): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    const hopeless = opts.hopeless?.();
    if (hopeless) throw new Error(`gave up waiting for ${opts.what ?? 'a condition'}: ${hopeless}`);
    try {
      const v = await poll();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what ?? 'a condition'}${why}`);
    }
    await sleep(opts.intervalMs ?? 100);
  }
}
