// What every command gets: the host paths, sysfs, output and the global flags.

import { describeFailure } from '../errors.js';
import { HostPaths } from '../host/paths.js';
import { FileSysfs } from '../sysfs/file-sysfs.js';
import type { Sysfs } from '../sysfs/sysfs.js';
import { hostRunner, recordingRunner, type CommandRunner } from '../runtime/commands.js';

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Record<string, string | undefined>;
  /** Standard input, for the callout. */
  stdin?: () => string;
  /** stdout is the journal (run by a unit): lines may carry `<N>` priorities. */
  journal?: boolean;
  /** The terminal's width when stdout is one; undefined otherwise (status then fits 160 columns). */
  columns?: number;
}

export interface GlobalOptions {
  root?: string;
  config?: string;
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
  exec?: boolean;
}

export interface Context {
  paths: HostPaths;
  sysfs: Sysfs;
  io: Io;
  json: boolean;
  verbose: boolean;
  quiet: boolean;
  /** Host commands (modprobe, systemctl, udevadm, mdevctl) run only on `/` or with --exec. */
  exec: boolean;
  /** Runs host commands when `exec`, else records what would run. */
  runner: CommandRunner;
  out(line?: string): void;
  /** Progress and notes: hidden by -q and under --json. */
  info(line: string): void;
  warn(line: string): void;
  printJson(doc: unknown): void;
}

export interface ContextOverrides {
  sysfs?: Sysfs;
  runner?: CommandRunner;
}

export function makeContext(opts: GlobalOptions, io: Io, overrides: ContextOverrides = {}): Context {
  const paths = new HostPaths(opts.root ?? '/', opts.config);
  const json = Boolean(opts.json);
  const quiet = Boolean(opts.quiet);
  const exec = paths.isRealRoot || Boolean(opts.exec);
  return {
    paths,
    sysfs: overrides.sysfs ?? new FileSysfs(paths.root),
    io,
    json,
    verbose: Boolean(opts.verbose),
    quiet,
    exec,
    runner: overrides.runner ?? (exec ? hostRunner() : recordingRunner()),
    out: (line = '') => io.stdout(`${line}\n`),
    info: (line) => {
      if (!quiet && !json) io.stdout(`${line}\n`);
    },
    warn: (line) => io.stderr(`${line}\n`),
    printJson: (doc) => io.stdout(`${JSON.stringify(doc, null, 2)}\n`),
  };
}

/** A command that failed: `ap-persist: what` (and where, and what to do) on stderr; its exit code. */
export function reportFailure(io: Io, err: unknown): number {
  const failure = describeFailure(err);
  io.stderr(`ap-persist: ${failure.message}\n`);
  return failure.exitCode;
}
