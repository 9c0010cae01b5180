// Everything at once on one root with boot files: CLI edits (mdev define,
// relative mask set), mdevctl runs whose callouts hold the lock from pre to
// post, hook runs, and faults among them (an mdevctl killed between its pre
// and post, holding the lock for a dead PID; an mdev define killed at a
// random point). Every edit that said it succeeded must be in the store,
// the store must parse, check and generate must then succeed, and no lock
// or temporary file may stay.

import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFakeHost } from '../../src/fakehost/builder.js';
import { threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { HostPaths } from '../../src/host/paths.js';
import { loadStore } from '../../src/store/store.js';
import { tempDir } from '../support/host.js';
import { CLI, crashed, isTemp, lockTemps, note, runCli, runHere, tally, treeOf, violation, type ProcessRun } from './support.js';

const BOUND_MS = 45_000;

/** One mdevctl: `define` for each device, the callout's pre before and post after writing the definition. */
const FAKE_MDEVCTL = `
const { spawnSync } = require('node:child_process');
const { mkdirSync, writeFileSync } = require('node:fs');
const { node, cli, root, devices, hangAfterPre } = JSON.parse(process.env.FAKE_MDEVCTL);
for (const { uuid, json } of devices) {
  const callout = (event, state) => spawnSync(node,
    [cli, '--root', root, 'callout', '-t', 'vfio_ap-passthrough', '-e', event, '-a', 'define', '-s', state, '-u', uuid, '-p', 'matrix'],
    { input: json, encoding: 'utf8' });
  const pre = callout('pre', 'none');
  if (pre.status !== 0) { process.stderr.write('pre: ' + pre.stderr); process.exit(10); }
  if (hangAfterPre) { writeFileSync(hangAfterPre, String(process.pid)); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600000); }
  mkdirSync(root + '/etc/mdevctl.d/matrix', { recursive: true });
  writeFileSync(root + '/etc/mdevctl.d/matrix/' + uuid, json);
  const post = callout('post', 'success');
  if (post.status !== 0) { process.stderr.write('post: ' + post.stderr); process.exit(13); }
}
`;

/** A link (to the unit as the target system sees it: not under the test's root). */
const isLink = (path: string): boolean => {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
};

const uuid = (group: number, i: number): string => `00000000-0000-4000-8000-${String(group * 100 + i).padStart(12, '0')}`;

const deviceJson = (adapter: number, domain: number): string =>
  JSON.stringify({ mdev_type: 'vfio_ap-passthrough', start: 'auto', attrs: [{ assign_adapter: `${adapter}` }, { assign_domain: `${domain}` }] });

export interface RacePlan {
  defines: number;
  mdevctlRuns: number;
  definesPerRun: number;
  hooks: number;
  /** 0..1: when one define is killed, from the moment the lock's dead owner is killed to 2.5 s later. */
  killAt: number;
}

export interface RaceOutcome {
  ms: number;
  problems: string[];
  counts: Record<string, number>;
}

async function waitFor(path: string, ms: number): Promise<boolean> {
  for (const t0 = Date.now(); Date.now() - t0 < ms; ) {
    if (existsSync(path)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

export async function race(plan: RacePlan): Promise<RaceOutcome> {
  const root = tempDir('ap-persist-fault-race-');
  // The host keeps adapter 0 and domain 0 only: every mdev below is free of conflicts.
  buildFakeHost(root, { ...threeGuestsHost(), store: '[masks]\napmask = 0\naqmask = 0\n' });
  mkdirSync(join(root, 'run'), { recursive: true });
  if ((await runHere(root, 'generate')).code !== 0) throw new Error('generate before the race failed');
  const paths = new HostPaths(root);
  const problems: string[] = [];
  const counts: Record<string, number> = {};
  const count = (k: string): void => void (counts[k] = (counts[k] ?? 0) + 1);

  type Job = { what: string; run: Promise<ProcessRun>; uuids: string[]; kind: 'define' | 'mdevctl' | 'mask' | 'hook' | 'killed-define' | 'killed-mdevctl' };
  const jobs: Job[] = [];
  const spawnMdevctl = (r: number, hangAfterPre?: string): Job => {
    const devices = Array.from({ length: plan.definesPerRun }, (_, i) => ({ uuid: uuid(1, r * 10 + i), json: deviceJson(100 + r, 10 + i) }));
    const env = { ...process.env, FAKE_MDEVCTL: JSON.stringify({ node: process.execPath, cli: CLI, root, devices, hangAfterPre }) } as Record<string, string>;
    // node -e: the fake mdevctl itself, not the CLI.
    const run = new Promise<ProcessRun>((done) => {
      void import('node:child_process').then(({ spawn }) => {
        const t0 = performance.now();
        const child = spawn(process.execPath, ['-e', FAKE_MDEVCTL], { env, stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
        const timer = setTimeout(() => child.kill('SIGKILL'), BOUND_MS);
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          done({ code, signal, ms: performance.now() - t0, stdout: '', stderr, pid: child.pid ?? 0, killed: signal === 'SIGKILL' });
        });
      });
    });
    return { what: `mdevctl ${r}`, run, uuids: devices.map((d) => d.uuid), kind: hangAfterPre ? 'killed-mdevctl' : 'mdevctl' };
  };

  const began = performance.now();
  // First the mdevctl that dies holding the lock: the others queue behind a lock whose owner is gone.
  const hung = join(root, 'hung-mdevctl.pid');
  const doomed = spawnMdevctl(9, hung);
  jobs.push(doomed);
  if (!(await waitFor(hung, 10_000))) problems.push('the doomed mdevctl never got past its pre callout');
  for (let r = 0; r < plan.mdevctlRuns; r++) jobs.push(spawnMdevctl(r));
  for (let i = 0; i < plan.defines; i++) {
    const id = uuid(2, i);
    jobs.push({ what: `mdev define ${id}`, kind: 'define', uuids: [id], run: runCli(['--root', root, 'mdev', 'define', id, '--adapters', `${10 + i}`, '--domains', '1'], { boundMs: BOUND_MS }) });
  }
  const killedId = uuid(3, 0);
  jobs.push({ what: `mdev define ${killedId} (killed)`, kind: 'killed-define', uuids: [killedId], run: runCli(['--root', root, 'mdev', 'define', killedId, '--adapters', '99', '--domains', '2'], { killAfterMs: 300 + plan.killAt * 2_500, boundMs: BOUND_MS }) });
  jobs.push({ what: 'mask set apmask=+200', kind: 'mask', uuids: [], run: runCli(['--root', root, 'mask', 'set', '--persistent', 'apmask=+200'], { boundMs: BOUND_MS }) });
  jobs.push({ what: 'mask set aqmask=+200', kind: 'mask', uuids: [], run: runCli(['--root', root, 'mask', 'set', '--persistent', 'aqmask=+200'], { boundMs: BOUND_MS }) });
  for (let h = 0; h < plan.hooks; h++) jobs.push({ what: `hook change-${h + 1}`, kind: 'hook', uuids: [], run: runCli(['--root', root, 'hook', '--event', `change-${h + 1}`], { boundMs: BOUND_MS }) });
  // Let the queue build up behind the dead owner's lock, then kill it.
  await new Promise((r) => setTimeout(r, 300));
  process.kill(Number(readFileSync(hung, 'utf8')), 'SIGKILL');
  tally.faults++;

  const exits = await Promise.all(jobs.map(async (j) => ({ j, r: await j.run })));
  const ms = performance.now() - began;
  tally.runs += exits.length;
  if (ms > BOUND_MS) problems.push(`the race took ${Math.round(ms)} ms`);

  const store = (() => {
    try {
      return loadStore(paths.store).store;
    } catch (err) {
      violation('corrupt', `race: the store does not parse: ${(err as Error).message}`);
      return undefined;
    }
  })();
  const inStore = new Set(store?.mdevs.map((m) => m.uuid as string) ?? []);
  const defs = existsSync(paths.mdevctlMatrixDir) ? new Set(readdirSync(paths.mdevctlMatrixDir)) : new Set<string>();
  for (const { j, r } of exits) {
    if (r.stderr.includes('still running after')) problems.push(`${j.what} hung: ${r.stderr.trim()}`);
    if (j.kind === 'killed-mdevctl') {
      count(`killed mdevctl ${r.killed ? 'died holding the lock' : 'exited first'}`);
      continue;
    }
    if (j.kind === 'killed-define') {
      if (r.killed) {
        tally.kills++;
        count(`killed define: ${inStore.has(j.uuids[0]!) ? 'landed' : 'did not land'}`);
      } else if (r.code === 0 && !inStore.has(j.uuids[0]!)) violation('lost', `race: ${j.what} exited 0 before the kill but is not in the store`);
      continue;
    }
    if (crashed(r) || r.code !== 0) {
      // A hook's exit 1 for mdevs it could not start (no vfio_ap here, none of these cards) is the hook's answer, not a failure of the race.
      if (j.kind === 'hook' && r.code === 1 && !crashed(r)) count('hooks answering 1 (mdevs not startable here)');
      else problems.push(`${j.what} exited ${r.code}${r.signal ? ` (${r.signal})` : ''}: ${r.stderr.trim()}`);
      continue;
    }
    count(`${j.kind} ok`);
    for (const id of j.uuids) {
      if (j.kind === 'define' && !inStore.has(id)) violation('lost', `race: ${j.what} exited 0 but ${id} is not in the store`);
      if (j.kind === 'mdevctl' && !defs.has(id)) violation('lost', `race: ${j.what} exited 0 but its definition of ${id} is missing`);
    }
  }
  // Both relative mask changes, made at the same time, are there.
  if (store) {
    if (!store.masks.apmask?.has(200) || !store.masks.apmask?.has(0)) violation('lost', `race: apmask is ${store.masks.apmask?.toRanges()}, not 0,200`);
    if (!store.masks.aqmask?.has(200) || !store.masks.aqmask?.has(0)) violation('lost', `race: aqmask is ${store.masks.aqmask?.toRanges()}, not 0,200`);
  }
  // The last hook's report is whole JSON.
  try {
    JSON.parse(readFileSync(paths.lastHook, 'utf8'));
  } catch (err) {
    violation('corrupt', `race: last-hook.json: ${(err as Error).message}`);
  }

  // What the admin runs next: check, generate (twice: the second has nothing to do).
  const check = await runHere(root, 'check');
  if (crashed(check) || check.code !== 0) problems.push(`check after the race exited ${check.code}: ${check.stderr.trim()}`);
  const g1 = await runHere(root, 'generate');
  if (crashed(g1) || g1.code !== 0) problems.push(`generate after the race exited ${g1.code}: ${g1.stderr.trim()}`);
  const g2 = await runHere(root, 'generate');
  if (g2.code !== 0 || !/nothing to change/.test(g2.stdout)) problems.push(`a second generate after the race: exit ${g2.code}: ${g2.stdout.trim()} ${g2.stderr.trim()}`);
  // Every mdev of the store has its definition and (auto) its unit link.
  for (const id of inStore) {
    if (!defs.has(id) && !existsSync(join(paths.mdevctlMatrixDir, id))) violation('halfApplied', `race: ${id} is in the store but generate wrote no definition`);
    if (!isLink(join(paths.generatedUnitsDir, 'ap-persist-mdevs.target.wants', `ap-persist-mdev@${id}.service`))) violation('halfApplied', `race: ${id} has no unit link`);
  }
  if (existsSync(paths.lock)) violation('halfApplied', 'race: the lock is still there after the final generate');
  const lockTmp = lockTemps(root);
  if (lockTmp.length) note(`race: lock temporary files left by the killed runs (${lockTmp.length})`);
  const temps = [...treeOf(root).keys()].filter(isTemp);
  if (temps.length) note(`race: temporary files left after the final generate: ${temps.join(', ')}`);
  return { ms, problems, counts };
}
