// Shared by the fault suite: the built CLI run as a child process (and killed
// with SIGKILL when asked), a seeded PRNG so that a failure reproduces, the
// tree of a fake root as it is on disk, and the tally every part adds to and
// that the suite prints at its end.

import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'vitest';
import type { Requirement } from '../support/real-tools.js';

export const PROJECT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** The bundle `npm run build` makes: what the units and the callout run. */
export const BUILT_CLI = join(PROJECT, 'dist/bin/ap-persist.cjs');
/** The CLI the suite runs: a copy of the bundle (see snapshotBundle). */
export let CLI = BUILT_CLI;
/** The commander half of the same bundle, which the CLI loads for every command but the hook and the callout. */
let PROGRAM = programIn(join(PROJECT, 'dist/bin'));

/** dist/bin's commander half: program.cjs (with handlebars.cjs beside it), or program.js of an older build. */
function programIn(dir: string): string {
  return ['program.cjs', 'program.js'].map((name) => join(dir, name)).find((path) => existsSync(path)) ?? join(dir, 'program.cjs');
}

/**
 * Runs the suite on a copy of the bundle (every file of dist/bin), so that a
 * rebuild while it runs (a colleague's `npm run build`) cannot change the CLI
 * between the reference run and the killed one. The copy lives in the
 * project's node_modules/.cache so that it finds the packages and the
 * package's own files as dist/bin does.
 */
export function snapshotBundle(): () => void {
  const cache = join(PROJECT, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const dir = mkdtempSync(join(cache, 'ap-persist-fault-'));
  const bin = join(PROJECT, 'dist/bin');
  for (const name of readdirSync(bin)) if (/\.(c|m)?js$/.test(name)) copyFileSync(join(bin, name), join(dir, name));
  // A program.js is an ES module; node_modules ends the search for the project's "type".
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
  CLI = join(dir, 'ap-persist.cjs');
  PROGRAM = programIn(dir);
  return () => rmSync(dir, { recursive: true, force: true });
}

// ---- the tally

export interface Tally {
  /** Commands run as a process, killed or not. */
  runs: number;
  /** SIGKILLs that landed before the command exited. */
  kills: number;
  /** Other faults injected: a hanging host command, a full disk, a read-only /run, a killed peer in a race. */
  faults: number;
  /** An edit that went through (or a file that was there) and is gone. */
  lost: number;
  /** A file that is neither its old nor its new content, or a store that does not parse. */
  corrupt: number;
  /** A host that a following command did not bring back to exactly the old or the new state. */
  halfApplied: number;
  /** Everything else worth a line in CI's log (states seen, timings). */
  notes: Map<string, number>;
  /** What went wrong, each with enough to reproduce it. */
  violations: string[];
}

export const tally: Tally = { runs: 0, kills: 0, faults: 0, lost: 0, corrupt: 0, halfApplied: 0, notes: new Map(), violations: [] };

export function note(key: string, by = 1): void {
  tally.notes.set(key, (tally.notes.get(key) ?? 0) + by);
}

export type ViolationKind = 'lost' | 'corrupt' | 'halfApplied';

export function violation(kind: ViolationKind, text: string): void {
  tally[kind]++;
  tally.violations.push(`${kind}: ${text}`);
}

export function summaryLine(): string {
  return `fault suite: runs=${tally.runs} kills=${tally.kills} faults=${tally.faults} lost=${tally.lost} corrupt=${tally.corrupt} half-applied=${tally.halfApplied}`;
}

// ---- a seeded PRNG (mulberry32): AP_PERSIST_FAULT_SEED=N reproduces a run

export const SEED = (() => {
  const given = process.env['AP_PERSIST_FAULT_SEED'];
  if (given !== undefined && /^[0-9]+$/.test(given)) return Number(given) >>> 0;
  return (Date.now() ^ (process.pid << 16)) >>> 0;
})();

export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- the CLI as a process

export interface ProcessRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** From spawn to exit. */
  ms: number;
  stdout: string;
  stderr: string;
  pid: number;
  /** True when our SIGKILL ended it (it had not exited yet). */
  killed: boolean;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  /** SIGKILL after this many ms. */
  killAfterMs?: number;
  /** SIGKILL `afterMs` after the first change under `dir` (inotify): the kill lands among the writes. */
  killOnWrite?: { dir: string; afterMs: number };
  /** Hard bound: SIGKILL and say so in stderr (a hang is a finding, not a stuck suite). */
  boundMs?: number;
  input?: string;
}

export function runCli(args: readonly string[], options: SpawnOptions = {}): Promise<ProcessRun> {
  return new Promise((done, fail) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], {
      env: options.env ?? { ...process.env },
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
    let stdout = '';
    let stderr = '';
    let killed = false;
    let exited = false;
    let overBound = false;
    child.stdout!.on('data', (d: Buffer) => void (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => void (stderr += d.toString()));
    const timers: NodeJS.Timeout[] = [];
    if (options.killAfterMs !== undefined) {
      timers.push(
        setTimeout(() => {
          if (!exited) killed = child.kill('SIGKILL');
        }, options.killAfterMs),
      );
    }
    if (options.boundMs !== undefined) {
      timers.push(
        setTimeout(() => {
          if (!exited) {
            overBound = true;
            child.kill('SIGKILL');
          }
        }, options.boundMs),
      );
    }
    let watcher: FSWatcher | undefined;
    if (options.killOnWrite) {
      const { afterMs } = options.killOnWrite;
      watcher = watch(options.killOnWrite.dir, { recursive: true }, () => {
        watcher?.close();
        watcher = undefined;
        timers.push(
          setTimeout(() => {
            if (!exited) killed = child.kill('SIGKILL');
          }, afterMs),
        );
      });
    }
    child.on('error', fail);
    child.on('exit', () => {
      exited = true;
      watcher?.close();
    });
    child.on('close', (code, signal) => {
      for (const t of timers) clearTimeout(t);
      const ms = performance.now() - t0;
      if (overBound) stderr += `\n[fault suite: still running after ${options.boundMs} ms, killed]\n`;
      // A kill that came after the exit (the signal then reached nothing) does not count.
      done({ code, signal, ms, stdout, stderr, pid: child.pid ?? 0, killed: killed && signal === 'SIGKILL' && !overBound });
    });
  });
}

type Run = (argv: readonly string[], io: { stdout(t: string): void; stderr(t: string): void; env: Record<string, string | undefined>; journal?: boolean }) => Promise<number>;
let bundled: Promise<Run> | undefined;

/**
 * The built CLI's commands in this process: the quick follow-ups after a
 * fault, and the preparations. The same bundle as the processes run (not
 * src/, which may be ahead of the build), without a process start each time.
 */
export async function runHere(root: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  // A CommonJS program.cjs imports as its exports (named, and as the default).
  bundled ??= (import(PROGRAM) as Promise<{ run?: Run; default?: { run: Run } }>).then((m) => m.run ?? m.default!.run);
  const run = await bundled;
  let stdout = '';
  let stderr = '';
  const t0 = performance.now();
  const code = await run(['--root', root, ...args], { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env: {}, journal: false });
  return { code, stdout, stderr, ms: performance.now() - t0 };
}

/** A stack trace or an exit code the CLI never gives: a crash, not an error it handled. */
export function crashed(r: { code: number | null; stderr: string }): boolean {
  return /\n\s+at \S/.test(r.stderr) || r.code === null || ![0, 1, 2, 3].includes(r.code);
}

// ---- the tree on disk

/** What one path holds: a file's content and mode, a link's target, a directory. */
export type Entry = string;

/** Every entry under `root` but `skip` (top-level names: sys, run). */
export function treeOf(root: string, skip: readonly string[] = ['sys', 'run']): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const rel = relative(root, path);
      if (dir === root && skip.includes(name)) continue;
      const st = lstatSync(path);
      if (st.isSymbolicLink()) out.set(rel, `link -> ${readlinkSync(path)}`);
      else if (st.isDirectory()) {
        out.set(rel, 'dir');
        walk(path);
      } else if (st.isFile()) out.set(rel, `file ${(st.mode & 0o7777).toString(8)} ${readFileSync(path, 'latin1')}`);
      else out.set(rel, 'other');
    }
  };
  walk(root);
  return out;
}

/** A temporary file of the atomic writer (`.NAME.tmp-PID-TIME`) or of a link (`.NAME.tmp-PID`). */
export const isTemp = (rel: string): boolean => /(^|\/)\.[^/]+\.tmp-[0-9]+(-[0-9]+)?$/.test(rel);
/** generate's temporary link (`.NAME.tmp-PID`), made by symlink() then renamed over NAME. */
export const isLinkTemp = (rel: string): boolean => /(^|\/)\.[^/]+\.tmp-[0-9]+$/.test(rel);

/** The lock's temporary files: libap's (the lock's name, the PID, hex) and ours (.NAME.tmp-PID-hex, as our atomic writes). */
export function lockTemps(root: string): string[] {
  const dir = join(root, 'run/lock');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => (n.startsWith('s390apconfig.lock') && n !== 's390apconfig.lock') || n.startsWith('.s390apconfig.lock.tmp-'));
}

export function copyTree(from: string, to: string): void {
  rmSync(to, { recursive: true, force: true });
  mkdirSync(to, { recursive: true });
  cpSync(from, to, { recursive: true, verbatimSymlinks: true });
}

/** `a` and `b` differ where: one line per path, for a message. */
export function treeDiff(a: Map<string, Entry>, b: Map<string, Entry>, ignore: (rel: string) => boolean = () => false): string[] {
  const out: string[] = [];
  for (const p of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    if (ignore(p)) continue;
    const x = a.get(p);
    const y = b.get(p);
    if (x !== y) out.push(`${p}: ${firstDifference(x, y)}`);
  }
  return out;
}

/** Where two entries part: the first line that differs, each side's. */
function firstDifference(x: Entry | undefined, y: Entry | undefined): string {
  if (x === undefined || y === undefined || !x.startsWith('file ') || !y.startsWith('file ')) return `${short(x)} / ${short(y)}`;
  const a = x.split('\n');
  const b = y.split('\n');
  const i = a.findIndex((line, k) => line !== b[k]);
  const at = i < 0 ? a.length : i;
  const lines = (l: string[]): string => JSON.stringify(l.slice(at, at + 2).join('\n') || '(end)');
  return `from line ${at + 1}: ${lines(a)} / ${lines(b)} (${a.length} / ${b.length} lines)`;
}

const short = (e: Entry | undefined): string => (e === undefined ? 'absent' : e.length > 60 ? `${e.slice(0, 57).replace(/\n/g, '\\n')}...` : e.replace(/\n/g, '\\n'));

/** Processes whose command line holds `marker` (a stub left running). */
export function processesWith(marker: string): string {
  return spawnSync('pgrep', ['-af', marker], { encoding: 'utf8' }).stdout.trim();
}

// ---- skipping where the tools are missing, concurrently

/**
 * `it.concurrent` for a part that needs real tools: as itWith (test/support),
 * skipped with the reason in its title where they are missing, failed instead
 * with AP_PERSIST_REQUIRE_TOOLS=1; concurrent, so that a part that mostly
 * waits (hanging commands) overlaps one that works (the kills).
 */
export function concurrentWith(req: Requirement, title: string, fn: () => Promise<void>, timeoutMs: number): void {
  const skip = req.missing !== undefined && process.env['AP_PERSIST_REQUIRE_TOOLS'] !== '1';
  if (skip) process.stderr.write(`skipping "${title}": ${req.missing}\n`);
  (skip ? it.skip : it.concurrent)(
    skip ? `${title} [skipped: ${req.missing}]` : title,
    async () => {
      if (req.missing !== undefined) throw new Error(`AP_PERSIST_REQUIRE_TOOLS=1 and ${req.missing}: real-component tests may not skip`);
      await fn();
    },
    timeoutMs,
  );
}
