// Host commands (modprobe, systemctl, udevadm, mdevctl) behind one small
// interface. On `/` (or with --exec) they run through execa, each bounded in
// time; anywhere else they are only recorded, so every command is testable
// on a plain folder and says what it would have run.

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

/** Runs through execa, loaded only when a command really runs (it is not cheap to load). */
export function hostRunner(): CommandRunner {
  const log: string[] = [];
  return {
    log,
    async run(file, args, options = {}) {
      log.push(commandLine(file, args));
      const { execa } = await import('execa');
      const r = await execa(file, [...args], {
        reject: false,
        timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        forceKillAfterDelay: 1000,
        stdin: 'ignore',
      });
      return {
        exitCode: typeof r.exitCode === 'number' ? r.exitCode : 1,
        stdout: String(r.stdout ?? ''),
        stderr: String(r.stderr ?? r.message ?? ''),
        timedOut: Boolean(r.timedOut),
        ran: true,
      };
    },
  };
}
