// The real mdevctl (Debian's 1.2 here and in CI) driving our callout. In a
// private mount namespace, tmpfs mounts replace /sys (a synthetic vfio_ap
// matrix parent and AP bus), /etc/mdevctl.d (our callout script only),
// /etc/ap-persist (the store) and /run/lock; then a sequence of mdevctl
// commands runs and each one's exit code and output is kept for the asserts.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { buildFakeHost } from '../../src/fakehost/builder.js';
import { packageAssets } from '../../src/generate/assets.js';
import { CALLOUT_NODE_FLAGS } from '../../src/generate/static-files.js';
import { buildCli, exampleHost, GUEST1, GUEST2, GUEST3 } from '../callout/support.js';
import { tempDir } from '../support/host.js';
import { itWithTools, missingTools, mdevSysfsScript, runInNamespace, VFIO_AP_TYPE_DIR } from '../support/namespace.js';

const TOOLS = ['mdevctl', 'bash'];
const ACTIVE = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const HOST_OWNED = '44444444-4444-4444-8444-444444444444';
const GARBAGE = '55555555-5555-4555-8555-555555555555';

function jsonFile(start: 'auto' | 'manual', attrs: Record<string, string>[]): string {
  return JSON.stringify({ mdev_type: 'vfio_ap-passthrough', start, attrs });
}

const attrs = (adapters: string[], domains: string[]): Record<string, string>[] => [
  ...adapters.map((a) => ({ assign_adapter: a })),
  ...domains.map((d) => ({ assign_domain: d })),
];

describe('real mdevctl with the ap-persist callout', () => {
  // Built in beforeAll only where the test can run at all.
  const cli = { build: undefined as Awaited<ReturnType<typeof buildCli>> | undefined };
  beforeAll(async () => {
    if (!missingTools(TOOLS)) cli.build = await buildCli();
  }, 120_000);
  afterAll(() => cli.build?.cleanup());

  itWithTools(
    'accepts what is safe, refuses conflicts with the APQN, and mdevctl keeps only what was accepted',
    TOOLS,
    async () => {
      const work = tempDir('ap-persist-mdevctl-');
      const fake = join(work, 'fake');
      const out = join(work, 'out');
      const json = join(work, 'json');
      mkdirSync(out);
      mkdirSync(json);
      // The store frees adapters 1,2 x domains 5-7 (APQN 03.0008 stays the host's).
      // Running: an mdev, defined nowhere, on APQN 01.0007.
      buildFakeHost(fake, exampleHost({ activeMdevs: [{ uuid: ACTIVE, adapters: [1], domains: [7] }] }));
      const files: Record<string, string> = {
        guest1: jsonFile('auto', attrs(['1', '2'], ['5', '0x06'])),
        guest2: jsonFile('auto', attrs(['1'], ['6', '7'])),
        guest3: jsonFile('manual', attrs(['1'], ['6', '7'])),
        host: jsonFile('auto', attrs(['3'], ['8'])),
        garbage: jsonFile('manual', attrs(['zz'], ['5'])),
      };
      for (const [name, text] of Object.entries(files)) writeFileSync(join(json, `${name}.json`), text);
      // The callout exactly as install writes it: node by absolute path, without its JIT.
      writeFileSync(join(json, 'callout'), packageAssets().renderCallout({ node: process.execPath, nodeFlags: CALLOUT_NODE_FLAGS, bin: cli.build!.main }));
      const define = (uuid: string, name: string): string => `mdevctl define -u ${uuid} -p matrix --jsonfile ${json}/${name}.json`;

      const body = `
${mdevSysfsScript(`${fake}`)}
ln -s ../../../devices/vfio_ap/matrix/${ACTIVE} /sys/bus/mdev/devices/${ACTIVE}
ln -s ../mdev_supported_types/vfio_ap-passthrough /sys/devices/vfio_ap/matrix/${ACTIVE}/mdev_type

fresh_dir /etc/mdevctl.d
mkdir -p /etc/mdevctl.d/scripts.d/callouts /etc/mdevctl.d/scripts.d/notifiers
cp ${json}/callout /etc/mdevctl.d/scripts.d/callouts/ap-persist
chmod 755 /etc/mdevctl.d/scripts.d/callouts/ap-persist
fresh_dir /etc/ap-persist
cp ${fake}/etc/ap-persist/ap-persist.conf /etc/ap-persist/
fresh_dir /run/lock

step define-clean ${define(GUEST1, 'guest1')}
step define-shared ${define(GUEST2, 'guest2')}
step define-manual ${define(GUEST3, 'guest3')}
step define-host ${define(HOST_OWNED, 'host')}
step define-garbage ${define(GARBAGE, 'garbage')}
step modify-auto mdevctl modify -u ${GUEST3} --auto
step list-defined mdevctl list -d
step list-active mdevctl list -v
step start-busy mdevctl start -u ${GUEST3}
cp ${VFIO_AP_TYPE_DIR}/create "$NS_OUT/create-after-busy"
step start-clean mdevctl start -u ${GUEST1}
cp ${VFIO_AP_TYPE_DIR}/create "$NS_OUT/create-after-clean"
step lock-left test -e /run/lock/s390apconfig.lock
`;
      const ns = await runInNamespace(body, work, out, 40_000);
      expect(ns, ns.stderr).toMatchObject({ code: 0 });
      const result = (name: string) => ({
        rc: Number(readFileSync(join(out, `${name}.rc`), 'utf8')),
        out: readFileSync(join(out, `${name}.out`), 'utf8'),
        err: readFileSync(join(out, `${name}.err`), 'utf8'),
      });

      expect(result('define-clean')).toEqual({ rc: 0, out: '', err: '' });

      const shared = result('define-shared');
      expect(shared.rc).not.toBe(0);
      expect(shared.err).toContain(`ap-persist: refused to define mdev ${GUEST2}: APQN 01.0006 (1.6) is defined for autostart by ${GUEST1}`);

      expect(result('define-manual')).toEqual({ rc: 0, out: '', err: '' });

      const host = result('define-host');
      expect(host.rc).not.toBe(0);
      expect(host.err).toContain('APQN 03.0008 (3.8) belongs to the host by the persistent masks');

      const garbage = result('define-garbage');
      expect(garbage.rc).not.toBe(0);
      expect(garbage.err).toContain("attrs[0].assign_adapter: 'zz' is not a valid adapter");

      // Made auto, guest3 would collide with guest1 at boot.
      const modify = result('modify-auto');
      expect(modify.rc).not.toBe(0);
      expect(modify.err).toContain(`refused to modify mdev ${GUEST3}: APQN 01.0006 (1.6) is defined for autostart by ${GUEST1}`);

      // A refused pre callout leaves no file behind, and a refused modify no change.
      const defined = result('list-defined');
      expect(defined.rc).toBe(0);
      expect(defined.out.trim().split('\n')).toEqual([`${GUEST1} matrix vfio_ap-passthrough auto`, `${GUEST3} matrix vfio_ap-passthrough manual`]);

      // mdevctl asked the callout for the running mdev's attributes.
      const active = result('list-active');
      expect(active.rc).toBe(0);
      expect(active.out).toContain(`${ACTIVE} matrix vfio_ap-passthrough manual`);
      expect(active.out).toContain('{"assign_adapter":"1"}');
      expect(active.out).toContain('{"assign_domain":"7"}');

      // guest3 shares 01.0007 with the running mdev: refused before mdevctl creates anything.
      const busy = result('start-busy');
      expect(busy.rc).not.toBe(0);
      expect(busy.err).toContain(`refused to start mdev ${GUEST3}: APQN 01.0007 (1.7) is in use by active mdev ${ACTIVE}`);
      expect(readFileSync(join(out, 'create-after-busy'), 'utf8')).toBe('');

      // guest1 passes the callout; mdevctl then writes `create`, and fails only
      // because no kernel makes the device appear in this synthetic /sys.
      const clean = result('start-clean');
      expect(clean.err).not.toContain('ap-persist:');
      expect(readFileSync(join(out, 'create-after-clean'), 'utf8')).toBe(GUEST1);

      // Every pre took the lock for mdevctl; every post or refusal gave it back.
      expect(result('lock-left').rc).toBe(1);
    },
    60_000,
  );
});
