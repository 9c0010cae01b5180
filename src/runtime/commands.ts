// Host commands (modprobe, systemctl, udevadm, mdevctl) behind one small
// interface. On `/` (or with --exec) they run, each bounded in time, with
// its whole process group killed at its deadline; anywhere else they are
// only recorded, so every command is testable on a plain folder and says
// what it would have run.

import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** False when the command was only recorded, not run. */
  ran: boolean;
}

export interface CommandRunner {
  run(file: string, args: readonly string[], options?: { timeoutMs?: number }): Promise<CommandResult>;
  /** What was asked for, in order: `modprobe vfio_ap`. */
  readonly log: string[];
}

export const DEFAULT_TIMEOUT_MS = 15_000;

/**
 * A step's bound: `capMs`, or less where `deadline` (epoch ms: the caller's
 * own end) comes first; a moment at least, so that a step past the deadline
 * is ended at once rather than left unbounded.
 */
export function boundBy(capMs: number, deadline: number | undefined): number {
  return deadline === undefined ? capMs : Math.max(100, Math.min(capMs, deadline - Date.now()));
}

export function commandLine(file: string, args: readonly string[]): string {
  return [file, ...args].join(' ');
}

/** Runs nothing; records what would have run. */
export function recordingRunner(): CommandRunner {
  const log: string[] = [];
  return {
    log,
    async run(file, args) {
      log.push(commandLine(file, args));
      return { exitCode: 0, stdout: '', stderr: '', timedOut: false, ran: false };
    },
  };
}

/** What a command may print before the rest is dropped: host commands say little. */
const MAX_OUTPUT = 1 << 20;
/** After SIGTERM at the deadline, SIGKILL this much later. */
const KILL_AFTER_MS = 1000;
/** After the command exited, how long its output may still come from a child that kept the pipe. */
const DRAIN_MS = 100;

/** The process groups of the host commands still running, by their leader's PID. */
const running = new Set<number>();

/**
 * Kills every host command still running, with its whole group: a command
 * that gives up on its bound (the hook's, the libvirt hook's) exits at once,
 * and must not leave an mdevctl or systemctl to act after it has answered.
 */
export function killRunningCommands(): void {
  for (const pid of running) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // the group is gone already
    }
  }
  running.clear();
}

/**
 * A run's whole bound (the boot hook's, libvirt's qemu hook's), set now and
 * never keeping the process up: at `ms`, `say` says why, every host command
 * still running is killed (an mdevctl left running would make the mdev after
 * the caller was told no) and the process ends with `code` (through `exit`:
 * tests give their own).
 */
export function giveUpAfter(ms: number, say: () => void, code: number, exit: (code: number) => void = (c) => process.exit(c)): NodeJS.Timeout {
  const timer = setTimeout(
    () => {
      say();
      killRunningCommands();
      exit(code);
    },
    Math.max(0, ms),
  );
  timer.unref();
  return timer;
}

/**
 * Runs host commands with node's own child_process: loading execa cost about
 * 90 ms in every process of the boot path (hook, each mdev start, wait). Each
 * command runs in a process group of its own; at its deadline the whole group
 * is killed (TERM, then KILL), and we stop waiting for pipes a left-behind
 * grandchild may hold open.
 */
export function hostRunner(): CommandRunner {
  const log: string[] = [];
  return {
    log,
    run(file, args, options = {}) {
      log.push(commandLine(file, args));
      const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      return new Promise((resolve) => {
        let stdout = '';
        let stderr = '';
        let timedOut = false;
        let settled = false;
        const timers: NodeJS.Timeout[] = [];
        const child = spawn(file, [...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
        if (child.pid) running.add(child.pid);
        const group = (signal: NodeJS.Signals): void => {
          try {
            if (child.pid) process.kill(-child.pid, signal);
          } catch {
            // the group is gone already
          }
        };
        const finish = (exitCode: number, extra = ''): void => {
          if (settled) return;
          settled = true;
          if (child.pid) running.delete(child.pid);
          for (const t of timers) clearTimeout(t);
          // Timed out: whatever of the group outlived TERM (a child that ignores it) is killed now.
          // Done: nothing the command left in its group outlives it.
          group(timedOut ? 'SIGKILL' : 'SIGTERM');
          child.stdout?.destroy();
          child.stderr?.destroy();
          // Killed at the deadline: 124, as timeout(1) says it.
          if (timedOut) resolve({ exitCode: 124, stdout, stderr: `${stderr}${file}: timed out after ${timeoutMs / 1000} s\n`, timedOut, ran: true });
          else resolve({ exitCode, stdout, stderr: `${stderr}${extra}`, timedOut, ran: true });
        };
        const collect = (which: 'out' | 'err') => (chunk: Buffer) => {
          if (which === 'out' && stdout.length < MAX_OUTPUT) stdout += chunk.toString();
          if (which === 'err' && stderr.length < MAX_OUTPUT) stderr += chunk.toString();
        };
        child.stdout.on('data', collect('out'));
        child.stderr.on('data', collect('err'));
        child.on('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ENOENT' ? 127 : 126, `${file}: ${err.message}\n`));
        child.on('exit', (code, signal) => {
          const exitCode = code ?? 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0);
          // Normally 'close' follows at once; a grandchild holding the pipe must not hold us.
          child.on('close', () => finish(exitCode));
          timers.push(setTimeout(() => finish(exitCode), DRAIN_MS));
        });
        timers.push(
          setTimeout(() => {
            timedOut = true;
            group('SIGTERM');
            timers.push(setTimeout(() => group('SIGKILL'), KILL_AFTER_MS));
            timers.push(setTimeout(() => finish(124), KILL_AFTER_MS + DRAIN_MS));
          }, timeoutMs),
        );
      });
    },
  };
}
