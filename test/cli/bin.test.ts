// The installed bin (dist/bin/ap-persist.cjs, built by `npm test` first): the
// boot hook, the mdevctl callout and the mdev units' start and stop must not
// load commander or handlebars, and say and do what the commander path does.

import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { GUEST1, GUEST3, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { givenHost, tempDir } from '../support/host.js';
import type { FakeHost } from '../../src/fakehost/builder.js';
import { IdSet } from '../../src/model/idset.js';

const BIN = fileURLToPath(new URL('../../dist/bin/ap-persist.cjs', import.meta.url));

/** The same command on two hosts alike: through the bin (its fast path) and through commander in-process. */
async function bothWays(args: string[], spec: FakeHost = threeGuestsHost()): Promise<{ fast: unknown; commander: unknown }> {
  const a = givenHost(spec);
  const b = givenHost(spec);
  const r = spawnSync(process.execPath, [BIN, '--root', a.root, ...args], { encoding: 'utf8', env: { PATH: process.env['PATH'] } });
  const c = await b.run(...args);
  const files = (host: typeof a): Record<string, string> => Object.fromEntries([...host.snapshot()].map(([k, v]) => [k.replace(host.root, 'ROOT'), v.replaceAll(host.root, 'ROOT')]));
  return {
    fast: { code: r.status, stdout: r.stdout.replaceAll(a.root, 'ROOT'), stderr: r.stderr.replaceAll(a.root, 'ROOT'), files: files(a) },
    commander: { code: c.code, stdout: c.stdout.replaceAll(b.root, 'ROOT'), stderr: c.stderr.replaceAll(b.root, 'ROOT'), files: files(b) },
  };
}

describe('the bundled bin', () => {
  it('exists (npm run build makes it)', () => {
    expect(existsSync(BIN), `${BIN} is missing: run npm run build`).toBe(true);
  });

  it('holds the hook, the callout and the units\' mdev start and stop without commander or handlebars', () => {
    // The entry point and the files it requires for them (scripts/bundle.ts).
    const text = ['ap-persist.cjs', 'start.cjs', 'hook.cjs', 'callout.cjs', 'unit.cjs'].map((f) => readFileSync(join(dirname(BIN), f), 'utf8')).join('\n');
    expect(text).toContain('function runFastHook');
    expect(text).toContain('function runCallout');
    expect(text).toContain('function runFastUnit');
    expect(text).not.toMatch(/commander|handlebars/);
  });

  it('runs the hook and a normal command against a fake root', () => {
    const host = givenHost(threeGuestsHost());
    const hook = spawnSync(process.execPath, [BIN, '--root', host.root, 'hook'], {
      encoding: 'utf8',
      env: { ...process.env, ACTION: 'change', DEVPATH: '/devices/ap', BINDINGS: 'complete', COMPLETECOUNT: '1' },
    });
    expect(hook.status, hook.stderr).toBe(0);
    expect(JSON.parse(host.read('run/ap-persist/last-hook.json')).vfio_ap).toBe('would-load');
    const shown = JSON.parse(execFileSync(process.execPath, [BIN, '--root', host.root, '--json', 'mask', 'show'], { encoding: 'utf8' }));
    expect(shown.active).toEqual({ apmask: '0-4,7-255', aqmask: '0-3,5-70,72-170,172-254' });
  });
});

/** The three guests' host after its masks were applied: vfio_ap holds their queues. */
const FREED: FakeHost = { ...threeGuestsHost(), vfioAp: true, masks: { apmask: IdSet.full().minus(IdSet.of([5, 6])), aqmask: IdSet.full().minus(IdSet.of([4, 0x47, 0xab, 0xff])) } };

describe("the mdev units' start and stop through the bin", () => {
  it('never load the commands\' part: they run where program.cjs is not there', () => {
    const top = tempDir('ap-persist-bin-');
    cpSync(dirname(BIN), join(top, 'dist/bin'), { recursive: true, filter: (src) => !src.includes('.v8-cache') && !/(program|handlebars)\.cjs$/.test(src) });
    cpSync(join(dirname(BIN), '../../package.json'), join(top, 'package.json'));
    const host = givenHost(FREED);
    const run = (...args: string[]) => spawnSync(process.execPath, [join(top, 'dist/bin/ap-persist.cjs'), '--root', host.root, ...args], { encoding: 'utf8' });
    expect(run('mdev', 'stop', GUEST1)).toMatchObject({ status: 0, stdout: `mdev ${GUEST1} is not active\n` });
    expect(run('mdev', 'start', 'no-such-guest')).toMatchObject({ status: 2 });
    // The same bin without that part fails for any other command: the test can tell.
    expect(run('mdev', 'list').status).not.toBe(0);
  });

  it('says which file is missing when the entry point has no start.cjs beside it (an install half done)', () => {
    const top = tempDir('ap-persist-bin-');
    cpSync(dirname(BIN), join(top, 'dist/bin'), { recursive: true, filter: (src) => !src.includes('.v8-cache') && !src.endsWith('start.cjs') });
    const r = spawnSync(process.execPath, [join(top, 'dist/bin/ap-persist.cjs'), '--version'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^ap-persist: Error: ENOENT: .*start\.cjs/);
  });

  // What ap-persist-mdev@.service runs: `mdev start UUID` and `mdev stop UUID`, without commander.
  for (const args of [
    ['mdev', 'start', GUEST1],
    ['mdev', 'start', 'guest2'],
    ['--json', 'mdev', 'start', GUEST3],
    ['mdev', 'start', 'deadbeef-0000-4000-8000-000000000009'],
    ['mdev', 'start', 'no-such-guest'],
    ['mdev', 'stop', GUEST1],
    ['-q', 'mdev', 'stop', 'guest2'],
  ]) {
    it(`${args.join(' ')}: the same exit code, output and files as through commander`, async () => {
      for (const spec of [threeGuestsHost(), FREED]) {
        const { fast, commander } = await bothWays(args, spec);
        expect(fast).toEqual(commander);
      }
    });
  }
});

