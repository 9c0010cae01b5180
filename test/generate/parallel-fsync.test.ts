// generate of many mdevs makes its new files durable together: written
// first, then fsynced in parallel by a worker thread through libuv's pool
// (src/fsio/fsync-files.ts); a few files are synced one by one. Run as the
// built CLI, as the admin runs it: a preload says, as the process exits, how
// many threads it has (libuv's pool keeps its threads) and whether the pool's
// size leaked into the environment of what it runs next.

import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grid, storeOf } from '../../bench/hosts.js';
import { buildFakeHost } from '../../src/fakehost/builder.js';
import { WriteBatch } from '../../src/fsio/atomic.js';
import { fsyncFiles, PARALLEL_FROM } from '../../src/fsio/fsync-files.js';
import { buildCli, runBuilt } from '../support/cli-build.js';
import { tempDir } from '../support/host.js';

let cli: Awaited<ReturnType<typeof buildCli>>;
beforeAll(async () => {
  cli = await buildCli();
});
afterAll(() => cli.cleanup());

/**
 * generate on a host whose store holds `n` auto mdevs and no boot files yet; what the preload saw at exit.
 * `workersFail`: the preload throws in every worker thread (node passes its flags on to them).
 */
function generateOf(n: number, workersFail = false): { code: number | null; stderr: string; threads: number; poolSizeLeft: string; root: string } {
  const root = join(tempDir(), 'host');
  buildFakeHost(root, { cards: [{ adapter: 0, hwtype: 12 }], domains: [0], vfioAp: true, store: storeOf(grid(Math.sqrt(n), 1)) });
  const preload =
    (workersFail ? "if (!require('node:worker_threads').isMainThread) throw new Error('no worker here');\n" : '') +
    // The main thread's exit.
    "if (require('node:worker_threads').isMainThread) process.on('exit', () => require('node:fs').writeSync(2, `\\nthreads=${require('node:fs').readdirSync('/proc/self/task').length} pool=${process.env.UV_THREADPOOL_SIZE ?? '-'}\\n`));\n";
  const r = runBuilt(cli.main, root, ['-q', 'generate'], { preload });
  const m = /^threads=(\d+) pool=(\S+)$/m.exec(r.stderr);
  return { code: r.code, stderr: r.stderr, threads: m ? Number(m[1]) : Number.NaN, poolSizeLeft: m?.[2] ?? '?', root };
}

describe('generate makes many new files durable in parallel', () => {
  it('given 81 mdevs and no boot files: every definition written, no temporary file left, libuv pool started with 16 threads, the pool size not passed on', () => {
    const many = generateOf(81);
    expect(many.code, many.stderr).toBe(0);
    const defs = readdirSync(join(many.root, 'etc/mdevctl.d/matrix'));
    expect(defs).toHaveLength(81);
    expect(defs.filter((d) => d.startsWith('.'))).toEqual([]);
    // A few files (below PARALLEL_FROM) are synced one by one: no pool, no worker.
    const few = generateOf(4);
    expect(few.code, few.stderr).toBe(0);
    expect(readdirSync(join(few.root, 'etc/mdevctl.d/matrix'))).toHaveLength(4);
    expect(many.threads - few.threads).toBeGreaterThanOrEqual(16);
    expect(many.poolSizeLeft).toBe('-');
  });

  it('given a worker that cannot start: generate still writes every file, syncing them one by one', () => {
    const r = generateOf(81, true);
    expect(r.code, r.stderr).toBe(0);
    const defs = readdirSync(join(r.root, 'etc/mdevctl.d/matrix'));
    expect(defs).toHaveLength(81);
    expect(defs.filter((d) => d.startsWith('.'))).toEqual([]);
    expect(r.poolSizeLeft).toBe('-');
  });

  it('moves no staged file into place before it is durable', () => {
    const dir = tempDir();
    const batch = new WriteBatch();
    const [deferred, synced] = [join(dir, 'deferred'), join(dir, 'synced')];
    batch.stage(deferred, 'new\n', 0o644, true);
    batch.stage(synced, 'new\n', 0o644, false);
    expect(() => batch.commit(deferred)).toThrow(/before flush/);
    batch.commit(synced);
    expect(readdirSync(dir).sort()).toEqual([expect.stringMatching(/^\.deferred\.tmp-/), 'synced']);
    batch.flush();
    batch.commit(deferred);
    expect(readdirSync(dir).sort()).toEqual(['deferred', 'synced']);
  });

  it('says which file could not be made durable, after trying every one (both ways: one by one and in parallel)', () => {
    const poolSize = process.env.UV_THREADPOOL_SIZE;
    for (const n of [3, PARALLEL_FROM + 6]) {
      const dir = tempDir();
      const paths = Array.from({ length: n }, (_, i) => join(dir, `f${i}`));
      paths.forEach((p) => writeFileSync(p, 'x'));
      expect(fsyncFiles(paths)).toBeUndefined();
      // One gone before its fsync (as a temporary file another process removed): named, with its errno.
      const gone = join(dir, 'gone');
      expect(fsyncFiles([...paths.slice(0, 2), gone, ...paths.slice(2)])).toEqual({ path: gone, code: 'ENOENT' });
      expect(process.env.UV_THREADPOOL_SIZE).toBe(poolSize);
    }
  });
});
