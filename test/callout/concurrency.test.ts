// Many mdevctl runs (each a process whose callouts lock for it from pre to
// post) and many `ap-persist mdev define` runs at once, on one fake root:
// every edit must land, the lock must be exclusive while held, and all must
// finish within a bound (no deadlock, no lock left behind).

import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostPaths } from '../../src/host/paths.js';
import { loadStore } from '../../src/store/store.js';
import { givenHost } from '../support/host.js';
import { buildCli, exampleHost } from './support.js';

const MDEVCTL_RUNS = 8;
const DEFINES_PER_RUN = 3;
const CLI_RUNS = 8;
const BOUND_MS = 45_000;

// A stand-in for mdevctl define: pre callout, write the definition, post
// callout, in one process, so both callouts see it as their parent. Between
// pre and post it checks that the lock names it and no one else.
const FAKE_MDEVCTL = `
const { spawnSync } = require('node:child_process');
const { mkdirSync, readFileSync, writeFileSync } = require('node:fs');
const { main, root, lock, devices } = JSON.parse(process.env.FAKE_MDEVCTL);
const owner = () => readFileSync(lock, 'utf8').trim();
for (const { uuid, json } of devices) {
  const callout = (event, state) => spawnSync(process.execPath,
    [main, '--root', root, 'callout', '-t', 'vfio_ap-passthrough', '-e', event, '-a', 'define', '-s', state, '-u', uuid, '-p', 'matrix'],
    { input: json, encoding: 'utf8' });
  const pre = callout('pre', 'none');
  if (pre.status !== 0) { process.stderr.write('pre: ' + pre.stderr); process.exit(10); }
  if (owner() !== String(process.pid)) { process.stderr.write('lock not ours after pre: ' + owner()); process.exit(11); }
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  mkdirSync(root + '/etc/mdevctl.d/matrix', { recursive: true });
  writeFileSync(root + '/etc/mdevctl.d/matrix/' + uuid, json);
  if (owner() !== String(process.pid)) { process.stderr.write('lock lost before post: ' + owner()); process.exit(12); }
  const post = callout('post', 'success');
  if (post.status !== 0) { process.stderr.write('post: ' + post.stderr); process.exit(13); }
}
`;

const uuid = (group: number, i: number): string => `00000000-0000-4000-8000-${String(group * 100 + i).padStart(12, '0')}`;

interface Exit {
  what: string;
  code: number | null;
  stderr: string;
}

function start(what: string, args: string[], env: Record<string, string> = {}): Promise<Exit> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), BOUND_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ what, code, stderr });
    });
  });
}

describe('callouts and CLI edits at once', () => {
  let cli: Awaited<ReturnType<typeof buildCli>>;
  beforeAll(async () => {
    cli = await buildCli();
  }, 120_000);
  afterAll(() => cli?.cleanup());

  it('lose no edit, share the lock with no one and all finish', async () => {
    // The host keeps only APQN 00.0000, so every mdev below is free of conflicts.
    const host = givenHost(exampleHost({ store: '[masks]\napmask = 0\naqmask = 0\n' }));
    const paths = new HostPaths(host.root);
    const mdevctlUuids: string[] = [];
    const runs: Promise<Exit>[] = [];
    for (let r = 0; r < MDEVCTL_RUNS; r++) {
      const devices = Array.from({ length: DEFINES_PER_RUN }, (_, i) => {
        const id = uuid(1, r * DEFINES_PER_RUN + i);
        mdevctlUuids.push(id);
        const attrs = [{ assign_adapter: `${100 + r}` }, { assign_domain: `${10 + i}` }];
        return { uuid: id, json: JSON.stringify({ mdev_type: 'vfio_ap-passthrough', start: 'auto', attrs }) };
      });
      const env = { FAKE_MDEVCTL: JSON.stringify({ main: cli.main, root: host.root, lock: paths.lock, devices }) };
      runs.push(start(`mdevctl ${r}`, ['-e', FAKE_MDEVCTL], env));
    }
    const storeUuids = Array.from({ length: CLI_RUNS }, (_, i) => uuid(2, i));
    storeUuids.forEach((id, i) => {
      runs.push(start(`mdev define ${id}`, [cli.main, '--root', host.root, 'mdev', 'define', id, '--adapters', `${i + 1}`, '--domains', '1', '--start', 'auto']));
    });

    const began = Date.now();
    const exits = await Promise.all(runs);
    expect(Date.now() - began).toBeLessThan(BOUND_MS);
    expect(exits.filter((e) => e.code !== 0)).toEqual([]);

    expect(readdirSync(join(host.root, 'etc/mdevctl.d/matrix')).sort()).toEqual(mdevctlUuids.sort());
    expect(loadStore(paths.store).store.mdevs.map((m) => m.uuid).sort()).toEqual(storeUuids.sort());
    expect(host.exists('run/lock/s390apconfig.lock')).toBe(false);
  }, 60_000);
});
