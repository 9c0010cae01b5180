// A full disk and a read-only or full /run, in a private mount namespace: a
// tiny tmpfs is mounted on a directory of the test's root (what it held is
// copied in first), then filled, or /run is bind-mounted read-only. Each
// command must fail clearly (exit 1, the errno and the path) or carry on as
// designed, leave every file as it was (no half file, no temporary file, no
// lock), never hang, and once the space is back, running it again must end
// exactly where an undisturbed run ends.

import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildFakeHost } from '../../src/fakehost/builder.js';
import { GUEST1, GUEST3, threeGuestsHost, TWO_GUESTS_STORE } from '../../src/fakehost/three-guests.js';
import { grid, storeOf } from '../../bench/hosts.js';
import { runInNamespace } from '../support/namespace.js';
import { tempDir } from '../support/host.js';
import { CLI, copyTree, isTemp, runHere, tally, treeDiff, treeOf, type Entry } from './support.js';

/**
 * A store of about 12 KiB, an admin's long notes first: more than one page of
 * the file system, with the masks and the mdevs beyond the first page.
 */
const BIG_STORE = `${Array.from({ length: 160 }, (_, i) => `; note ${String(i).padStart(3, '0')}: ${'why this host is set up the way it is. '.repeat(2)}`).join('\n')}\n${TWO_GUESTS_STORE}`;

export interface DiskStep {
  args: string[];
  code: number;
  /** What stderr (and stdout) must say. */
  says?: RegExp;
  maxMs: number;
}

export interface DiskCase {
  name: string;
  store?: string;
  /** The store's boot files never generated: the steps' generate is the host's first. */
  firstGenerate?: boolean;
  /** Directories there before the steps (the fault mounts on them), empty. */
  emptyDirs?: string[];
  /** Edits (run to completion) after generate, before the fault. */
  edits?: string[][];
  /** bash: the fault, with $R the root. */
  fault: string;
  steps: DiskStep[];
  /** bash: the space or the write access back. */
  heal: string;
  /** Run again once healed: must end where it ends undisturbed. */
  again: string[];
}

const CLEAR = (errno: string, where: string): RegExp => new RegExp(`${where.replace(/[.]/g, '\\.')}[^\\n]*${errno}|${errno}[^\\n]*${where.replace(/[.]/g, '\\.')}`);

export const DISK_CASES: DiskCase[] = [
  {
    name: "the store's file system full: mask set --persistent",
    fault: 'small_fs "$R/etc/ap-persist" 256k; fill "$R/etc/ap-persist" 0',
    steps: [{ args: ['mask', 'set', '--persistent', 'apmask=-8', 'aqmask=-5'], code: 1, says: CLEAR('ENOSPC', 'ap-persist.conf'), maxMs: 5_000 }],
    heal: 'rm -f "$R/etc/ap-persist/.fill"',
    again: ['mask', 'set', '--persistent', 'apmask=-8', 'aqmask=-5'],
  },
  {
    name: "the store's file system with one page left, the store larger: mask set --persistent --no-generate",
    store: BIG_STORE,
    fault: 'small_fs "$R/etc/ap-persist" 256k; fill "$R/etc/ap-persist" 1',
    steps: [{ args: ['mask', 'set', '--persistent', '--no-generate', 'apmask=-8'], code: 1, says: CLEAR('ENOSPC', 'ap-persist.conf'), maxMs: 5_000 }],
    heal: 'rm -f "$R/etc/ap-persist/.fill"',
    again: ['mask', 'set', '--persistent', '--no-generate', 'apmask=-8'],
  },
  {
    name: 'the rules file system full: mask set --persistent (regenerates 41-ap.rules)',
    fault: 'small_fs "$R/etc/udev/rules.d" 256k; fill "$R/etc/udev/rules.d" 0',
    steps: [{ args: ['mask', 'set', '--persistent', 'apmask=-8', 'aqmask=-5'], code: 1, says: CLEAR('ENOSPC', '41-ap.rules'), maxMs: 5_000 }],
    heal: 'rm -f "$R/etc/udev/rules.d/.fill"',
    again: ['mask', 'set', '--persistent', 'apmask=-8', 'aqmask=-5'],
  },
  {
    name: 'the rules file system full: generate',
    edits: [['mask', 'set', '--persistent', '--no-generate', 'apmask=-8']],
    fault: 'small_fs "$R/etc/udev/rules.d" 256k; fill "$R/etc/udev/rules.d" 0',
    steps: [{ args: ['generate'], code: 1, says: CLEAR('ENOSPC', '41-ap.rules'), maxMs: 5_000 }],
    heal: 'rm -f "$R/etc/udev/rules.d/.fill"',
    again: ['generate'],
  },
  {
    name: "mdevctl's definitions' file system full: mdev define",
    fault: 'small_fs "$R/etc/mdevctl.d/matrix" 256k; fill "$R/etc/mdevctl.d/matrix" 0',
    steps: [{ args: ['mdev', 'define', GUEST3, '--adapters', '6', '--domains', '0x47,0xff'], code: 1, says: CLEAR('ENOSPC', GUEST3), maxMs: 5_000 }],
    heal: 'rm -f "$R/etc/mdevctl.d/matrix/.fill"',
    again: ['mdev', 'define', GUEST3, '--adapters', '6', '--domains', '0x47,0xff'],
  },
  {
    // Past PARALLEL_FROM files: written first, then synced together in a worker thread.
    name: "mdevctl's definitions' file system with room for 16 of 81 new definitions: generate",
    store: storeOf(grid(9, 1)),
    firstGenerate: true,
    emptyDirs: ['etc/mdevctl.d/matrix'],
    fault: 'small_fs "$R/etc/mdevctl.d/matrix" 512k; fill "$R/etc/mdevctl.d/matrix" 16',
    steps: [{ args: ['generate'], code: 1, says: CLEAR('ENOSPC', 'mdevctl.d/matrix/'), maxMs: 10_000 }],
    heal: 'rm -f "$R/etc/mdevctl.d/matrix/.fill"',
    again: ['generate'],
  },
  {
    name: 'a read-only /run: hook, mask set, status, check, wait',
    fault: 'mkdir -p "$R/run/lock" "$R/run/ap-persist"; mount --bind "$R/run" "$R/run"; mount -o remount,bind,ro "$R/run"',
    steps: [
      // No lock, no change: the hook applies nothing without it.
      { args: ['hook', '--event', 'change-1'], code: 1, says: CLEAR('EROFS', 's390apconfig.lock'), maxMs: 5_000 },
      { args: ['mask', 'set', '--persistent', 'apmask=-8'], code: 1, says: CLEAR('EROFS', 's390apconfig.lock'), maxMs: 5_000 },
      { args: ['mdev', 'modify', GUEST1, '--domains', '4'], code: 1, says: CLEAR('EROFS', 's390apconfig.lock'), maxMs: 5_000 },
      // Reading needs no lock.
      { args: ['status'], code: 0, maxMs: 5_000 },
      { args: ['check'], code: 0, maxMs: 5_000 },
      // Runs the hook itself, which cannot lock: not ready, at once.
      { args: ['wait', '--timeout', '3'], code: 1, maxMs: 3_000 + 3_000 },
    ],
    heal: 'umount "$R/run"',
    again: ['mask', 'set', '--persistent', 'apmask=-8'],
  },
  {
    name: 'a full /run: hook, mask set',
    fault: 'small_fs "$R/run" 64k; mkdir -p "$R/run/lock"; fill "$R/run" 0',
    steps: [
      { args: ['hook', '--event', 'change-1'], code: 1, says: CLEAR('ENOSPC', 's390apconfig.lock'), maxMs: 5_000 },
      { args: ['mask', 'set', '--persistent', 'apmask=-8'], code: 1, says: CLEAR('ENOSPC', 's390apconfig.lock'), maxMs: 5_000 },
    ],
    heal: 'rm -f "$R/run/.fill"',
    again: ['mask', 'set', '--persistent', 'apmask=-8'],
  },
];

const SCRIPT_HELPERS = `
# small_fs DIR SIZE: a tmpfs of SIZE on DIR (inside the test's root), holding what DIR held.
small_fs() {
  local dir=$1 size=$2 keep
  case "$dir" in "$NS_ROOTS"/*) ;; *) echo "refusing to mount on $dir, outside the test's roots" >&2; exit 96 ;; esac
  keep=$(mktemp -d "$NS_WORK/keep.XXXXXX")
  mkdir -p "$dir"
  cp -a "$dir/." "$keep/"
  mount -t tmpfs -o "size=$size" ap-persist-fault "$dir"
  cp -a "$keep/." "$dir/"
}
# fill DIR PAGES: fill DIR's file system, then free PAGES pages of 4 KiB.
fill() {
  dd if=/dev/zero of="$1/.fill" bs=4096 2>/dev/null || true
  if [ "$2" -gt 0 ]; then truncate -s "-$(( $2 * 4096 ))" "$1/.fill"; fi
  sync -f "$1"
}
# tstep NAME CMD...: step, with its time in ms.
tstep() {
  local name=$1 t0 t1
  t0=$(date +%s%N)
  step "$@"
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 )) >"$NS_OUT/$name.ms"
}
# snap NAME: the root as it is now, for the test to compare (without the filler).
snap() {
  mkdir -p "$NS_OUT/$1"
  cp -a "$R/." "$NS_OUT/$1/"
  find "$NS_OUT/$1" -name .fill -delete
}
`;

export interface DiskOutcome {
  c: DiskCase;
  steps: { step: DiskStep; code: number; ms: number; stderr: string; stdout: string; after: Map<string, Entry> }[];
  before: Map<string, Entry>;
  reference: Map<string, Entry>;
  again: { code: number; stderr: string; tree: Map<string, Entry> };
}

/** Prepares every case's root on the host, runs all faults in one namespace script, and reads back what each left. */
export async function runDiskCases(cases: readonly DiskCase[]): Promise<DiskOutcome[]> {
  const base = tempDir('ap-persist-fault-disk-');
  const roots = join(base, 'roots');
  const work = join(base, 'work');
  const out = join(base, 'out');
  for (const d of [roots, work, out]) mkdirSync(d, { recursive: true });
  const node = process.execPath;
  let script = `NS_ROOTS=${roots}\n${SCRIPT_HELPERS}`;
  const prepared: { c: DiskCase; root: string; before: Map<string, Entry>; reference: Map<string, Entry> }[] = [];
  for (const [i, c] of cases.entries()) {
    const root = join(roots, `c${i}`);
    buildFakeHost(root, { ...threeGuestsHost(), store: c.store ?? TWO_GUESTS_STORE });
    if (!c.firstGenerate && (await runHere(root, 'generate')).code !== 0) throw new Error(`${c.name}: generate failed`);
    for (const d of c.emptyDirs ?? []) mkdirSync(join(root, d), { recursive: true });
    for (const e of c.edits ?? []) if ((await runHere(root, ...e)).code !== 0) throw new Error(`${c.name}: ${e.join(' ')} failed`);
    mkdirSync(join(root, 'run'), { recursive: true });
    // What the last step leads to when nothing is in the way: the steps, then `again`, on a copy.
    const ref = join(base, `ref${i}`);
    copyTree(root, ref);
    for (const s of c.steps) if (s.code === 0) await runHere(ref, ...s.args);
    await runHere(ref, ...c.again);
    prepared.push({ c, root, before: treeOf(root, ['sys']), reference: treeOf(ref, ['sys', 'run']) });
    rmSync(ref, { recursive: true, force: true });
    const cli = (args: string[]): string => [node, CLI, '--root', '"$R"', ...args.map((a) => `'${a}'`)].join(' ');
    script += `\n# ${c.name}\nR=${root}\n${c.fault}\n`;
    c.steps.forEach((s, j) => {
      script += `tstep c${i}.s${j} ${cli(s.args)}\nsnap c${i}.s${j}\n`;
    });
    script += `${c.heal}\ntstep c${i}.again ${cli(c.again)}\nsnap c${i}.again\n`;
  }
  const ns = await runInNamespace(script, work, out, 120_000);
  if (ns.code !== 0) throw new Error(`the namespace script failed (${ns.code}): ${ns.stderr}`);
  const read = (name: string, ext: string): string => readFileSync(join(out, `${name}.${ext}`), 'utf8');
  return prepared.map(({ c, before, reference }, i) => {
    tally.faults++;
    tally.runs += c.steps.length + 1;
    return {
      c,
      before,
      reference,
      steps: c.steps.map((step, j) => ({
        step,
        code: Number(read(`c${i}.s${j}`, 'rc')),
        ms: Number(read(`c${i}.s${j}`, 'ms')),
        stderr: read(`c${i}.s${j}`, 'err'),
        stdout: read(`c${i}.s${j}`, 'out'),
        after: treeOf(join(out, `c${i}.s${j}`), ['sys']),
      })),
      again: { code: Number(read(`c${i}.again`, 'rc')), stderr: read(`c${i}.again`, 'err'), tree: treeOf(join(out, `c${i}.again`), ['sys', 'run']) },
    };
  });
}

/** Everything wrong with one outcome, in words; empty when the case holds. */
export function diskProblems(o: DiskOutcome): string[] {
  const problems: string[] = [];
  for (const [j, s] of o.steps.entries()) {
    const what = `${o.c.name}, step ${j} (${s.step.args.join(' ')})`;
    if (s.code !== s.step.code) problems.push(`${what}: exit ${s.code}, expected ${s.step.code}: ${s.stderr.trim()}`);
    if (s.step.says && !s.step.says.test(s.stderr + s.stdout)) problems.push(`${what}: does not say ${s.step.says}: ${s.stderr.trim()}`);
    if (/\n\s+at \S/.test(s.stderr)) problems.push(`${what}: a stack trace: ${s.stderr.trim()}`);
    if (s.ms > s.step.maxMs) problems.push(`${what}: took ${s.ms} ms (bound ${s.step.maxMs})`);
    // Nothing changed: not a byte, no temporary file, no lock, no lock's temporary file.
    const diff = treeDiff(o.before, s.after, (p) => p.startsWith('run/'));
    if (diff.length) problems.push(`${what}: changed ${diff.join('; ')}`);
    const temps = [...s.after.keys()].filter(isTemp);
    if (temps.length) problems.push(`${what}: left ${temps.join(', ')}`);
    if (s.after.has('run/lock/s390apconfig.lock')) problems.push(`${what}: left the lock`);
    const lockTmp = [...s.after.keys()].filter((p) => /^run\/lock\/s390apconfig\.lock./.test(p));
    if (lockTmp.length) problems.push(`${what}: left the lock's temporary file(s) ${lockTmp.join(', ')}`);
  }
  if (o.again.code !== 0) problems.push(`${o.c.name}: once healed, '${o.c.again.join(' ')}' exited ${o.again.code}: ${o.again.stderr.trim()}`);
  const healed = treeDiff(o.again.tree, o.reference);
  if (healed.length) problems.push(`${o.c.name}: once healed, the host is not where an undisturbed run ends: ${healed.join('; ')}`);
  return problems;
}
