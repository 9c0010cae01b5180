// kill -9 at random points of define, generate, import and mask set: the
// command runs as the built CLI, is killed after a seeded random delay, and
// the root must then hold, path by path, what it held before or what the
// same command run to completion leaves (computed on a copy); the store must
// parse; the next commands must neither crash nor wait on the dead run's
// lock; and they must bring the host to exactly the completed run's state,
// with no temporary file left.

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFakeHost } from '../../src/fakehost/builder.js';
import { HostPaths } from '../../src/host/paths.js';
import { GUEST1, GUEST2, GUEST3, threeGuestsHost, TWO_GUESTS_STORE } from '../../src/fakehost/three-guests.js';
import { renderMdevctlJson } from '../../src/store/mdevctl-defs.js';
import { IdSet } from '../../src/model/idset.js';
import { loadStore } from '../../src/store/store.js';
import { grid, storeOf } from '../../bench/hosts.js';
import { copyTree, crashed, isLinkTemp, isTemp, lockTemps, note, prng, runCli, runHere, SEED, tally, treeDiff, treeOf, violation, type Entry } from './support.js';

const STORE = 'etc/ap-persist/ap-persist.conf';
const RULES = 'etc/udev/rules.d/41-ap.rules';
const LOCK = 'run/lock/s390apconfig.lock';


interface Scenario {
  name: string;
  /** Lays out the host before the command, on an empty directory. */
  prepare(root: string): Promise<void>;
  args: string[];
  /**
   * Commands whose completed result is a legitimate stage of this one: import records the
   * files it takes over (as `import --no-generate` does), then regenerates and records again.
   */
  stages?: string[][];
}

async function must(root: string, ...args: string[]): Promise<void> {
  const r = await runHere(root, ...args);
  if (r.code !== 0) throw new Error(`preparing the host: ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
}

/** The host with boot files: guest1 and guest2 in the store, generate run. */
async function generated(root: string): Promise<void> {
  buildFakeHost(root, { ...threeGuestsHost(), store: TWO_GUESTS_STORE });
  await must(root, 'generate');
}

export const SCENARIOS: Scenario[] = [
  {
    name: 'mdev define',
    prepare: generated,
    // The store, a new mdevctl definition, a new wants link and the record.
    args: ['mdev', 'define', GUEST3, '--adapters', '6', '--domains', '0x47,0xff', '--name', 'guest3'],
  },
  {
    name: 'mask set --persistent',
    prepare: generated,
    // The store, 41-ap.rules and the record.
    args: ['mask', 'set', '--persistent', 'apmask=-8', 'aqmask=-5'],
  },
  {
    name: 'generate',
    async prepare(root) {
      await generated(root);
      // Edited with --no-generate: generate writes, rewrites, removes and links.
      await must(root, 'mask', 'set', '--persistent', '--no-generate', 'apmask=-9');
      await must(root, 'mdev', 'undefine', GUEST2, '--no-generate');
      await must(root, 'mdev', 'modify', GUEST1, '--domains', '4', '--no-generate');
      await must(root, 'mdev', 'define', GUEST3, '--adapters', '6', '--domains', '0x47,0xff', '--no-generate');
    },
    args: ['generate'],
  },
  {
    // 81 new definitions: their fsyncs run in parallel, in a worker thread (src/fsio/fsync-files.ts).
    name: 'generate of 81 mdevs',
    async prepare(root) {
      buildFakeHost(root, { ...threeGuestsHost(), store: storeOf(grid(9, 1)) });
    },
    args: ['generate'],
  },
  {
    name: 'import',
    async prepare(root) {
      await generated(root);
      // chzdev -t ap -p apmask=-8 rewrote 41-ap.rules (without our guard line), mdevctl undefined
      // guest2 and defined guest3: import takes all three, records the files and regenerates.
      const scratch = `${root}.scratch`;
      copyTree(root, scratch);
      await must(scratch, 'mask', 'set', '--persistent', 'apmask=-8');
      const chzdev = readFileSync(join(scratch, RULES), 'utf8')
        .split('\n')
        .filter((l) => !l.startsWith('# ap-persist: once vfio_ap') && !l.startsWith('TEST=='))
        .join('\n');
      rmSync(scratch, { recursive: true, force: true });
      writeFileSync(join(root, RULES), chzdev);
      rmSync(join(root, `etc/mdevctl.d/matrix/${GUEST2}`));
      writeFileSync(join(root, `etc/mdevctl.d/matrix/${GUEST3}`), renderMdevctlJson({ adapters: IdSet.of([6]), domains: IdSet.of([0x47, 0xff]), controlDomains: IdSet.empty() }, 'auto'));
    },
    args: ['import', '--from', 'chzdev,mdevctl'],
    stages: [['import', '--from', 'chzdev,mdevctl', '--no-generate']],
  },
];

interface Prepared {
  scenario: Scenario;
  template: string;
  before: Map<string, Entry>;
  after: Map<string, Entry>;
  /** The hosts of the command's stages (see Scenario.stages). */
  stages: Map<string, Entry>[];
  storeAfter: string;
  /** The command's time to exit when nothing kills it. */
  durationMs: number;
  /** What `status` reports changed in the boot files by other tools, on the host before, after and at each stage: a kill may leave no other. */
  drift: Set<string>;
}

const withoutTemps = (t: Map<string, Entry>): Map<string, Entry> => new Map([...t].filter(([p]) => !isTemp(p)));

/** The pending list, as treeOf names it (relative to the root). */
const PENDING = new HostPaths('/').generatedPending.slice(1);

/** What is wrong with the list a killed generate left (`entry` as treeOf has it), measured against the completed run's host. */
function pendingProblem(entry: Entry, after: Map<string, Entry>): string | undefined {
  const m = /^file 644 ([\s\S]*)$/.exec(entry);
  if (!m) return `not a file of mode 644: ${entry.slice(0, 80)}`;
  let files: { path?: unknown; content?: unknown; symlink?: unknown }[];
  try {
    files = JSON.parse(Buffer.from(m[1]!, 'latin1').toString('utf8')).files;
  } catch (err) {
    return `does not parse: ${(err as Error).message}`;
  }
  if (!Array.isArray(files) || files.length === 0) return 'names no file';
  for (const f of files) {
    const done = typeof f.path === 'string' ? after.get(f.path) : undefined;
    const expected = typeof f.symlink === 'string' ? `link -> ${f.symlink}` : typeof f.content === 'string' ? Buffer.from(f.content, 'utf8').toString('latin1') : undefined;
    if (done === undefined || expected === undefined || done.replace(/^file [0-7]+ /, '') !== expected) return `names ${String(f.path)} otherwise than the completed run leaves it`;
  }
  return undefined;
}

/**
 * Builds the host before, and the host after the command ran to completion
 * (on a copy), `runs` times (at least 2): every run must leave the same host.
 */
export async function prepare(scenario: Scenario, work: string, runs = 3): Promise<Prepared> {
  const template = join(work, 'template');
  mkdirSync(template, { recursive: true });
  await scenario.prepare(template);
  const reference = join(work, 'reference');
  const times: number[] = [];
  let after: Map<string, Entry> | undefined;
  for (let i = 0; i < Math.max(2, runs); i++) {
    copyTree(template, reference);
    const r = await runCli(['--root', reference, ...scenario.args]);
    tally.runs++;
    if (r.code !== 0) throw new Error(`${scenario.name} run to completion exited ${r.code}: ${r.stderr}`);
    times.push(r.ms);
    const t = treeOf(reference);
    if (after && treeDiff(after, t).length) throw new Error(`${scenario.name} is not deterministic: ${treeDiff(after, t).join('; ')}`);
    after = t;
  }
  // What status reports there (the template is left as it was: status changes nothing).
  const drift = new Set([...(await driftOf(template)), ...(await driftOf(reference))]);
  const stages: Map<string, Entry>[] = [];
  for (const args of scenario.stages ?? []) {
    copyTree(template, reference);
    const r = await runHere(reference, ...args);
    if (r.code !== 0) throw new Error(`${scenario.name}: stage ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    stages.push(treeOf(reference));
    for (const d of await driftOf(reference)) drift.add(d);
  }
  const before = treeOf(template);
  const storeOf = (t: Map<string, Entry>): string => t.get(STORE) ?? 'absent';
  return { scenario, template, before, after: after!, stages, storeAfter: storeOf(after!), durationMs: times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!, drift };
}

export type KillState = 'old' | 'new' | 'mixed';

/** When to kill: after a time from the start, or after the first write under etc/. */
export type KillWhen = { afterMs: number } | { afterFirstWriteMs: number };

/**
 * One kill: a fresh copy of the host, the command killed when `when` says,
 * then the checks; what it finds goes to the tally.
 */
export async function killOnce(p: Prepared, root: string, when: KillWhen, label: string): Promise<void> {
  copyTree(p.template, root);
  const cmd = `--root ROOT ${p.scenario.args.join(' ')}`;
  const r = await runCli(['--root', root, ...p.scenario.args], {
    ...('afterMs' in when ? { killAfterMs: when.afterMs } : { killOnWrite: { dir: join(root, 'etc'), afterMs: when.afterFirstWriteMs } }),
    boundMs: 30_000,
  });
  tally.runs++;
  const at = 'afterMs' in when ? `${when.afterMs.toFixed(1)} ms` : `${when.afterFirstWriteMs.toFixed(1)} ms after its first write`;
  const where = `${label} (${p.scenario.name}, kill ${at}${r.killed ? '' : `, exited ${r.code} first`})`;
  if (r.killed) tally.kills++;
  else if (r.code !== 0) violation('halfApplied', `${where}: the command itself failed: ${r.stderr.trim()}`);

  // 1. Path by path, the old content or the new: never half a file, never a third thing.
  const seen = treeOf(root);
  const temps = [...seen.keys()].filter(isTemp);
  if (temps.length) note('kills leaving a temporary file');
  const allowed = [p.before, p.after, ...p.stages];
  // A generate's list of the files it is putting in place, there only until its record is: whole, and
  // naming nothing but files the completed run has, as it has them.
  const pending = seen.get(PENDING);
  if (pending !== undefined) {
    note('kills leaving the list of files a generate is putting in place');
    const wrong = pendingProblem(pending, p.after);
    if (wrong) violation('corrupt', `${where}: ${PENDING}: ${wrong}`);
  }
  const bad = [...new Set([...seen.keys(), ...p.before.keys(), ...p.after.keys()])].filter((path) => path !== PENDING && !isTemp(path) && !allowed.some((t) => t.get(path) === seen.get(path)));
  for (const path of bad) violation('corrupt', `${where}: ${path} is neither the old nor the new: ${JSON.stringify(seen.get(path)?.slice(0, 200))}`);
  const clean = withoutTemps(new Map([...seen].filter(([path]) => path !== PENDING)));
  const state: KillState = treeDiff(clean, p.before).length === 0 ? 'old' : treeDiff(clean, p.after).length === 0 ? 'new' : 'mixed';
  note(`killed state ${state}`);
  if (!r.killed && state !== 'new') violation('lost', `${where}: exited 0 but the host is ${state}: ${treeDiff(clean, p.after).join('; ')}`);

  // 2. The store parses.
  try {
    loadStore(join(root, STORE));
  } catch (err) {
    violation('corrupt', `${where}: the store does not parse: ${(err as Error).message}`);
    return;
  }

  // 3. The lock, if left, names the dead process: the next command breaks it.
  if (existsSync(join(root, LOCK))) {
    note('kills leaving the lock');
    const owner = readFileSync(join(root, LOCK), 'utf8').trim();
    if (owner !== String(r.pid)) violation('halfApplied', `${where}: the lock names ${owner}, not the killed ${r.pid}`);
  }
  const lockLeft = lockTemps(root);
  if (lockLeft.length) note("known: kills leaving a lock's temporary file");

  // 4. What the admin runs next: status and check answer, generate completes or refuses cleanly.
  for (const args of [['status'], ['check']]) {
    const s = await runHere(root, ...args);
    if (crashed(s) || s.code !== 0) violation('halfApplied', `${where}: then '${args.join(' ')}' exited ${s.code}: ${s.stderr.trim()}`);
    if (s.ms > 5_000) violation('halfApplied', `${where}: then '${args.join(' ')}' took ${Math.round(s.ms)} ms (a stale lock?)`);
  }
  // No file the killed command's generate wrote looks like another tool's change (the list it named them in says
  // they are generate's). Not after import: it takes a peer's change in, so between its store and its record the
  // host truly is half way (the store has chzdev's masks, 41-ap.rules not yet generate's), and status says so.
  if (p.scenario.args[0] !== 'import') {
    for (const d of await driftOf(root)) if (!p.drift.has(d)) violation('halfApplied', `${where}: then status reports a change no other tool made: ${d}`);
  }
  const g = await runHere(root, 'generate');
  if (g.ms > 5_000) violation('halfApplied', `${where}: then 'generate' took ${Math.round(g.ms)} ms (a stale lock?)`);
  if (crashed(g) || (g.code !== 0 && g.code !== 3)) violation('halfApplied', `${where}: then 'generate' exited ${g.code}: ${g.stderr.trim()}`);
  if (g.code === 3) {
    note(state === 'old' ? 'generate refusing (exit 3) the old host' : `generate refusing (exit 3) after a kill (${p.scenario.name}, ${state})`);
    if (!/refused: .*file\(s\) in the way/.test(g.stderr) || !g.stderr.includes(root)) violation('halfApplied', `${where}: generate refused without naming the files: ${g.stderr.trim()}`);
  }

  // 5. Running the command again (where the store does not hold it yet, or generate refused)
  //    ends exactly where one uninterrupted run ends, temporary files and lock gone.
  const storeNow = treeOf(root).get(STORE) ?? 'absent';
  if (treeDiff(withoutTemps(treeOf(root)), p.after).length || storeNow !== p.storeAfter || g.code === 3 || p.scenario.args[0] === 'generate') {
    const again = await runHere(root, ...p.scenario.args);
    if (crashed(again) || again.code !== 0) {
      // define of an mdev the store already holds says so (exit 2): the host must then be complete already.
      const defined = p.scenario.args[1] === 'define' && again.code === 2 && storeNow === p.storeAfter;
      if (!defined) violation('halfApplied', `${where}: running '${cmd}' again exited ${again.code}: ${again.stderr.trim()}`);
    }
  }
  const end = treeOf(root);
  // A link's temporary file is not removed by any later write (KNOWN in fault.test.ts): counted, not failed.
  const linkTemps = [...end.keys()].filter(isLinkTemp);
  if (linkTemps.length) note("known: a link's temporary file left after the follow-up commands");
  const left = treeDiff(end, p.after, isLinkTemp);
  if (left.length) violation('halfApplied', `${where}: after the follow-up commands the host is not the completed run's: ${left.join('; ')}`);
  if (existsSync(join(root, LOCK))) violation('halfApplied', `${where}: the lock is still there after the follow-up commands`);
  const lockTempsLeft = lockTemps(root);
  if (lockTempsLeft.length) note("known: a lock's temporary file left after the follow-up commands");
}

export interface KillPlan {
  total: number;
  workers: number;
  /** Uninterrupted runs of each command before the kills (3: their median times the kills "anywhere"). */
  referenceRuns?: number;
}

/**
 * Kills every scenario `total / scenarios` times, on `workers` roots at once.
 * A quarter of the kills come after a random time anywhere in the run; the
 * rest a random 0-15 ms after the command's first write under etc/ (seen
 * with inotify), so that most land among the writes.
 */
export async function killLoop(plan: KillPlan, log: (line: string) => void): Promise<void> {
  const base = join(tmpdir(), `ap-persist-fault-kill-${process.pid}-${Date.now()}`);
  try {
    const prepared: Prepared[] = [];
    for (const [i, s] of SCENARIOS.entries()) prepared.push(await prepare(s, join(base, `s${i}`), plan.referenceRuns));
    log(`kill -9: seed ${SEED} (AP_PERSIST_FAULT_SEED=${SEED} repeats the draws); uninterrupted: ${prepared.map((p) => `${p.scenario.name} ${Math.round(p.durationMs)} ms`).join(', ')}`);
    const random = prng(SEED);
    const jobs = Array.from({ length: plan.total }, (_, i) => ({ s: i % prepared.length, anywhere: random() < 0.25, u: random(), label: `kill #${i} (seed ${SEED})` }));
    let next = 0;
    const worker = async (w: number): Promise<void> => {
      const root = join(base, `w${w}`);
      for (let j = next++; j < jobs.length; j = next++) {
        const job = jobs[j]!;
        const p = prepared[job.s]!;
        const when: KillWhen = job.anywhere ? { afterMs: job.u * p.durationMs } : { afterFirstWriteMs: job.u * 15 };
        await killOnce(p, root, when, job.label);
      }
    };
    await Promise.all(Array.from({ length: plan.workers }, (_, w) => worker(w)));
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

/** The boot files' drift `status` reports on `root`, each as JSON. */
async function driftOf(root: string): Promise<string[]> {
  const r = await runHere(root, '--json', 'status');
  const doc = JSON.parse(r.stdout) as { boot_files?: { drift?: unknown[] } };
  return (doc.boot_files?.drift ?? []).map((d) => JSON.stringify(d));
}
