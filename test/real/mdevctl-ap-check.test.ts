// mdevctl takes the answer of the first callout that handles a type. Given a
// host with s390-tools' ap-check installed as mdevctl's callout (here a
// stand-in that records each call and accepts, as ap-check does whatever it
// cannot see), after `ap-persist install` the real mdevctl asks ours: a
// conflicting define is refused with our reasons, and ap-check is never run.

import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { GUEST1, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { buildCli } from '../callout/support.js';
import { givenHost, tempDir } from '../support/host.js';
import { itWithTools, missingTools, mdevSysfsScript, runInNamespace } from '../support/namespace.js';

const TOOLS = ['mdevctl', 'bash'];
const NEW = '66666666-6666-4666-8666-666666666666';
const AP_CHECK = 'usr/lib/mdevctl/scripts.d/callouts/ap-check';
const AP_CHECK_SH = 'etc/mdevctl.d/scripts.d/callouts/ap-check.sh';

describe("the real mdevctl asks ap-persist's callout once install has set ap-check aside", () => {
  const cli = { build: undefined as Awaited<ReturnType<typeof buildCli>> | undefined };
  beforeAll(async () => {
    if (!missingTools(TOOLS)) cli.build = await buildCli();
  }, 120_000);
  afterAll(() => cli.build?.cleanup());

  itWithTools(
    'a define sharing guest1’s 05.0004 is refused by ours; ap-check is never run; mdevctl lists our auto mdevs as auto',
    TOOLS,
    async () => {
      const work = tempDir('ap-persist-ap-check-mdevctl-');
      const out = join(work, 'out');
      mkdirSync(out);
      const calls = join(work, 'ap-check-calls');
      const host = givenHost(threeGuestsHost());
      // s390-tools 2.40's layout: the program in /usr/lib (mdevctl 1.3+), the wrapper in /etc (mdevctl 1.2).
      for (const rel of [AP_CHECK, AP_CHECK_SH]) {
        const path = join(host.root, rel);
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, `#!/bin/sh\necho "$0 $*" >>${calls}\nexit 0\n`);
        chmodSync(path, 0o755);
      }
      const install = await host.run('install', '--bin', cli.build!.main, '--node', process.execPath, '--no-reload');
      expect(install.code, install.stderr).toBe(0);
      expect(install.stdout).toContain(`set aside s390-tools' ap-check callout ${join(host.root, AP_CHECK_SH)}`);

      const conflict = join(work, 'conflict.json');
      writeFileSync(conflict, JSON.stringify({ mdev_type: 'vfio_ap-passthrough', start: 'auto', attrs: [{ assign_adapter: '5' }, { assign_domain: '4' }] }));
      const body = `
${mdevSysfsScript(`${host.root}`)}
for dir in /etc/mdevctl.d /etc/ap-persist /etc/udev/rules.d; do
  fresh_dir $dir
  cp -a ${host.root}$dir/. $dir/
done
# What the mdevctl package itself ships.
mkdir -p /etc/mdevctl.d/scripts.d/notifiers
fresh_dir /run/lock
step callouts ls /etc/mdevctl.d/scripts.d/callouts
step define mdevctl define -u ${NEW} -p matrix --jsonfile ${conflict}
step list mdevctl list -d
`;
      const ns = await runInNamespace(body, work, out, 60_000);
      expect(ns, ns.stderr).toMatchObject({ code: 0 });
      const step = (name: string) => ({ rc: Number(readFileSync(join(out, `${name}.rc`), 'utf8')), out: readFileSync(join(out, `${name}.out`), 'utf8'), err: readFileSync(join(out, `${name}.err`), 'utf8') });

      expect(step('callouts').out.trim().split('\n')).toEqual(['ap-persist']);
      const define = step('define');
      expect(define.rc).not.toBe(0);
      expect(define.err).toContain(`ap-persist: refused to define mdev ${NEW}: APQN 05.0004 (5.4) is defined for autostart by ${GUEST1} (guest1)`);
      // No one asked ap-check, and the refused define left no file.
      expect(() => readFileSync(calls, 'utf8')).toThrow();
      expect(step('list').out).not.toContain(NEW);
      expect(step('list').out).toContain(`${GUEST1} matrix vfio_ap-passthrough auto`);
      // The set-aside copy is whole, for uninstall to put back.
      expect(readFileSync(join(host.root, 'var/lib/ap-persist/set-aside', AP_CHECK), 'utf8')).toContain(calls);
    },
    90_000,
  );
});
