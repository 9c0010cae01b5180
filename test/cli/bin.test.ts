// The installed bin (dist/bin/ap-persist.cjs, built by `npm test` first): the
// boot hook and the mdevctl callout must not load commander or handlebars,
// and the commander path must still work from the bundle.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { givenHost } from '../support/host.js';

const BIN = fileURLToPath(new URL('../../dist/bin/ap-persist.cjs', import.meta.url));

describe('the bundled bin', () => {
  it('exists (npm run build makes it)', () => {
    expect(existsSync(BIN), `${BIN} is missing: run npm run build`).toBe(true);
  });

  it('holds the hook and the callout without commander or handlebars', () => {
    // The entry point and the files it requires for them (scripts/bundle.ts).
    const text = ['ap-persist.cjs', 'hook.cjs', 'callout.cjs'].map((f) => readFileSync(join(dirname(BIN), f), 'utf8')).join('\n');
    expect(text).toContain('function runFastHook');
    expect(text).toContain('function runCallout');
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
