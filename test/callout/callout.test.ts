import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/cli/program.js';
import { parseIdList } from '../../src/model/idlist.js';
import { givenHost } from '../support/host.js';
import { BINDINGS_COMPLETE, givenSimulatedHost } from '../support/sim-host.js';
import { GUEST3 as THREE_GUEST3, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { ACTIVE, callout, calloutArgs, deviceJson, exampleHost, GUEST1, GUEST1_STORE, GUEST2, GUEST3 } from './support.js';

const LOCK = 'run/lock/s390apconfig.lock';

describe('callout arguments', () => {
  it('is not my type (exit 2, silent) for any type but vfio_ap-passthrough', async () => {
    const host = givenHost(exampleHost());
    const r = await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST1, type: 'nvidia-35' }, deviceJson('auto', [1], [5]));
    expect(r).toEqual({ code: 2, stdout: '', stderr: '' });
  });

  it('rejects a parent other than matrix', async () => {
    const host = givenHost(exampleHost());
    const r = await callout(host.root, { event: 'pre', action: 'start', uuid: GUEST1, parent: '0000:00:02.0' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("parent '0000:00:02.0' is not 'matrix'");
  });

  it('rejects missing, repeated and unknown options and a bad UUID with exit 1', async () => {
    const host = givenHost(exampleHost());
    const args = calloutArgs({ event: 'pre', action: 'define', uuid: GUEST1 });
    const cases: [string[], string][] = [
      [args.slice(0, -2), 'missing --parent'],
      [[...args, '-e', 'post'], '-e is given twice'],
      [[...args, '-x', '1'], "unknown argument '-x'"],
      [[...args.slice(0, 8), '-u', 'not-a-uuid', '-p', 'matrix'], "'not-a-uuid' is not a UUID"],
    ];
    for (const [argv, message] of cases) {
      const r = await host.run('callout', ...argv);
      expect(r.code, argv.join(' ')).toBe(1);
      expect(r.stderr).toContain(message);
      expect(r.stderr).toContain('usage: ap-persist callout -t TYPE');
    }
  });

  it('takes --long and --long=value forms', async () => {
    const host = givenHost(exampleHost());
    const r = await host.run('callout', '--type=vfio_ap-passthrough', '--event', 'notify', '--action=define', '--state', 'none', '--uuid', GUEST1, '--parent', 'matrix');
    expect(r.code).toBe(0);
  });

  it('accepts events and actions it has nothing to say about', async () => {
    const host = givenHost(exampleHost());
    for (const [event, action] of [['notify', 'start'], ['pre', 'test'], ['get', 'other']] as const) {
      expect((await callout(host.root, { event, action, uuid: GUEST1 })).code).toBe(0);
    }
    expect(host.exists(LOCK)).toBe(false);
  });
});

describe('pre define and modify: auto definitions against each other and the persistent masks', () => {
  it('accepts a clean auto definition and keeps the lock for mdevctl', async () => {
    const host = givenHost(exampleHost({ store: GUEST1_STORE }));
    const r = await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST2 }, deviceJson('auto', [1], [7]));
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(host.read(LOCK)).toBe(`${process.pid}\n`);
  });

  it("mdevctl define --auto of an active mdev without a JSON file (no attributes in the pre event): its live matrix is checked", async () => {
    // mdevctl takes the attributes from the running mdev after the pre event: 01.0006, which guest1 starts at boot.
    const host = givenHost(exampleHost({ store: GUEST1_STORE, activeMdevs: [{ uuid: ACTIVE, adapters: [1], domains: [6] }] }));
    const r = await callout(host.root, { event: 'pre', action: 'define', uuid: ACTIVE }, '{"mdev_type":"vfio_ap-passthrough","start":"auto","attrs":[]}');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`refused to define mdev ${ACTIVE}: APQN 01.0006 (1.6) is defined for autostart by ${GUEST1} (guest1)`);
    // Not active: an empty definition holds nothing.
    const idle = await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST2 }, '{"mdev_type":"vfio_ap-passthrough","start":"auto","attrs":[]}');
    expect(idle.code, idle.stderr).toBe(0);
  });

  it('rejects an APQN shared with an auto mdev of the store (kernel example 3)', async () => {
    const host = givenHost(exampleHost({ store: GUEST1_STORE }));
    const r = await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST2 }, deviceJson('auto', [1], [6, 7]));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `refused to define mdev ${GUEST2}: APQN 01.0006 (1.6) is defined for autostart by ${GUEST1} (guest1)\n` +
        "  give the mdev other APQNs, define it with start manual, or free the APQNs ('ap-persist check' shows all conflicts)\n",
    );
    expect(host.exists(LOCK)).toBe(false);
  });

  it("rejects an APQN shared with mdevctl's own auto definition", async () => {
    const host = givenHost(exampleHost({ mdevctl: [{ uuid: GUEST1, start: 'auto', adapters: [1, 2], domains: [5, 6] }] }));
    const r = await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST2 }, deviceJson('auto', ['0x01'], ['6', '7']));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`APQN 01.0006 (1.6) is defined for autostart by ${GUEST1}\n`);
  });

  it('lists every conflicting APQN with every other owner', async () => {
    const host = givenHost(
      exampleHost({ store: GUEST1_STORE, mdevctl: [{ uuid: GUEST3, start: 'auto', adapters: [2], domains: [6] }] }),
    );
    const r = await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST2 }, deviceJson('auto', [1, 2, 3], [6, 8]));
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')).toEqual([
      `refused to define mdev ${GUEST2}:`,
      `  APQN 01.0006 (1.6) is defined for autostart by ${GUEST1} (guest1)`,
      `  APQN 02.0006 (2.6) is defined for autostart by ${GUEST1} (guest1)`,
      `  APQN 02.0006 (2.6) is defined for autostart by ${GUEST3}`,
      '  APQN 03.0008 (3.8) belongs to the host by the persistent masks',
      expect.stringContaining('give the mdev other APQNs'),
      '',
    ]);
  });

  it('rejects an APQN the persistent masks give to the host', async () => {
    const host = givenHost(exampleHost());
    const r = await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST2 }, deviceJson('auto', [0, 1], [4, 5]));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`refused to define mdev ${GUEST2}: APQN 00.0004 (0.4) belongs to the host by the persistent masks\n`);
  });

  it('uses the active masks for a side the store does not set', async () => {
    // The store frees nothing of its own; the active masks free 1,2 x 5-7.
    const host = givenHost(exampleHost({ store: '' }));
    expect((await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST2 }, deviceJson('auto', [1], [5]))).code).toBe(0);
  });

  it('accepts a manual definition without checks: it never starts at boot', async () => {
    const host = givenHost(exampleHost({ store: GUEST1_STORE }));
    const r = await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST2 }, deviceJson('manual', [0, 1], [4, 6]));
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('does not hold a modified definition against its own old version', async () => {
    const host = givenHost(exampleHost({ mdevctl: [{ uuid: GUEST1, start: 'manual', adapters: [1, 2], domains: [5, 6] }] }));
    const r = await callout(host.root, { event: 'pre', action: 'modify', uuid: GUEST1 }, deviceJson('auto', [1, 2], [5, 6, 7]));
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('rejects an ID that is not one (zz), naming the attribute, never reading it as 0', async () => {
    const host = givenHost(exampleHost());
    const r = await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST2 }, deviceJson('manual', ['zz'], [5]));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`refused to define mdev ${GUEST2}: the device JSON on stdin: attrs[0].assign_adapter: 'zz' is not a valid adapter`);
    expect(host.exists(LOCK)).toBe(false);
  });

  it('rejects a value that is not a string and JSON that is not JSON', async () => {
    const host = givenHost(exampleHost());
    const number = JSON.stringify({ mdev_type: 'vfio_ap-passthrough', start: 'auto', attrs: [{ assign_domain: 5 }] });
    const r1 = await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST2 }, number);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toContain('attrs[0].assign_domain is 5, not a string');
    const r2 = await callout(host.root, { event: 'pre', action: 'modify', uuid: GUEST2 }, '');
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain('not valid JSON');
  });

  it('counts an ap_config attribute as assignments', async () => {
    const host = givenHost(exampleHost({ store: GUEST1_STORE }));
    const config = [parseIdList('1'), parseIdList('6'), parseIdList('6')].map((s) => s.toKernelHex()).join(',');
    const json = JSON.stringify({ mdev_type: 'vfio_ap-passthrough', start: 'auto', attrs: [{ ap_config: config }] });
    const r = await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST2 }, json);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('APQN 01.0006 (1.6) is defined for autostart by');
  });

  it('rejects when the store cannot be read, saying where', async () => {
    const host = givenHost(exampleHost({ store: '[masks]\nbogus = 1\n' }));
    const r = await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST2 }, deviceJson('auto', [1], [5]));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ap-persist\.conf:2: unknown key 'bogus'/);
  });
});

describe('pre start and live modify: against the active mdevs and masks', () => {
  const withActive = () => exampleHost({ activeMdevs: [{ uuid: ACTIVE, adapters: [1], domains: [6] }] });

  it('accepts a start that collides with nothing running', async () => {
    const host = givenHost(withActive());
    const r = await callout(host.root, { event: 'pre', action: 'start', uuid: GUEST2 }, deviceJson('manual', [2], [5, 6]));
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(host.read(LOCK)).toBe(`${process.pid}\n`);
  });

  it('rejects a start that shares an APQN with an active mdev', async () => {
    const host = givenHost(withActive());
    const r = await callout(host.root, { event: 'pre', action: 'start', uuid: GUEST2 }, deviceJson('manual', [1, 2], [6]));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`refused to start mdev ${GUEST2}: APQN 01.0006 (1.6) is in use by active mdev ${ACTIVE}\n`);
    expect(host.exists(LOCK)).toBe(false);
  });

  it('rejects a start on an APQN the active masks give to the host', async () => {
    const host = givenHost(withActive());
    const r = await callout(host.root, { event: 'pre', action: 'start', uuid: GUEST2 }, deviceJson('manual', [3], [8]));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('APQN 03.0008 (3.8) belongs to the host by the active masks');
  });

  it('rejects control domains without a usage domain', async () => {
    const host = givenHost(withActive());
    const r = await callout(host.root, { event: 'pre', action: 'start', uuid: GUEST2 }, deviceJson('manual', [2], [], [7]));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('control domains but no usage domain');
  });

  it('rejects a start while vfio_ap is not loaded', async () => {
    const host = givenHost(exampleHost({ vfioAp: false }));
    const r = await callout(host.root, { event: 'pre', action: 'start', uuid: GUEST2 }, deviceJson('manual', [2], [5]));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the vfio_ap module is not loaded');
  });

  it('live modify writes ap_config when the kernel has it', async () => {
    const host = givenHost(withActive());
    const apConfig = `sys/devices/vfio_ap/matrix/${ACTIVE}/ap_config`;
    writeFileSync(join(host.root, apConfig), '');
    const r = await callout(host.root, { event: 'live', action: 'modify', uuid: ACTIVE }, deviceJson('manual', [1, 2], [6, 7], [7]));
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    const expected = [parseIdList('1,2'), parseIdList('6,7'), parseIdList('7')].map((s) => s.toKernelHex()).join(',');
    expect(host.read(apConfig)).toBe(`${expected}\n`);
    expect(host.exists(LOCK)).toBe(false);
  });

  it('live modify is refused on a kernel without ap_config', async () => {
    const host = givenHost(withActive());
    const r = await callout(host.root, { event: 'live', action: 'modify', uuid: ACTIVE }, deviceJson('manual', [1], [6, 7]));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('this kernel does not support live updates of vfio_ap mdevs');
  });
});

describe('pre stop: never a remove the kernel would block on', () => {
  it('refuses while a process holds the mdev open (QEMU), gives the lock back, and lets the stop through once it is gone', async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0');
    await host.run(['hook'], BINDINGS_COMPLETE);
    const group = host.kernel().read(`devices/vfio_ap/matrix/${THREE_GUEST3}/iommu_group`);
    mkdirSync(join(host.root, 'proc/4242/fd'), { recursive: true });
    symlinkSync(`/dev/vfio/${group}`, join(host.root, 'proc/4242/fd/31'));
    writeFileSync(join(host.root, 'proc/4242/comm'), 'qemu-system-s39\n');
    const stop = calloutArgs({ event: 'pre', action: 'stop', uuid: THREE_GUEST3 });
    const r = await host.run(['callout', ...stop], {}, '{"mdev_type":"vfio_ap-passthrough","start":"auto","attrs":[]}');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`refused to stop mdev ${THREE_GUEST3}: mdev ${THREE_GUEST3} is in use by process 4242 (qemu-system-s39): removing it would block until the guest releases it`);
    expect(existsSync(join(host.root, LOCK))).toBe(false);
    rmSync(join(host.root, 'proc/4242'), { recursive: true });
    const again = await host.run(['callout', ...stop], {}, '{"mdev_type":"vfio_ap-passthrough","start":"auto","attrs":[]}');
    expect(again.code, again.stderr).toBe(0);
  });
});

describe('get', () => {
  it('prints the attributes of an active mdev: decimal, adapters, domains, control domains', async () => {
    const host = givenHost(exampleHost({ activeMdevs: [{ uuid: ACTIVE, adapters: [6, 5], domains: [171, 4], controlDomains: [171] }] }));
    const r = await callout(host.root, { event: 'get', action: 'attributes', uuid: ACTIVE });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      '[{"assign_adapter":"5"},{"assign_adapter":"6"},{"assign_domain":"4"},{"assign_domain":"171"},{"assign_control_domain":"171"}]\n',
    );
    expect(host.exists(LOCK)).toBe(false);
  });

  it('prints [] for an mdev that is not active', async () => {
    const host = givenHost(exampleHost());
    expect(await callout(host.root, { event: 'get', action: 'attributes', uuid: GUEST1 })).toEqual({ code: 0, stdout: '[]\n', stderr: '' });
  });

  it("answers mdevctl's version-2 handshake with what both sides support", async () => {
    const host = givenHost(exampleHost());
    const provides = {
      provides: { version: 2, actions: ['start', 'stop', 'define', 'undefine', 'modify', 'attributes', 'capabilities'], events: ['pre', 'post', 'notify', 'get', 'live'] },
    };
    const r = await callout(host.root, { event: 'get', action: 'capabilities', uuid: GUEST1 }, JSON.stringify(provides));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      supports: { version: 2, actions: ['define', 'modify', 'start', 'stop', 'undefine', 'attributes', 'capabilities'], events: ['pre', 'post', 'get', 'live'] },
    });
    const older = { provides: { version: 2, actions: ['start', 'define', 'capabilities'], events: ['pre', 'get'] } };
    const r2 = await callout(host.root, { event: 'get', action: 'capabilities', uuid: GUEST1 }, JSON.stringify(older));
    expect(r2.stdout).toBe('{"supports":{"version":2,"actions":["define","start","capabilities"],"events":["pre","get"]}}\n');
  });

  it('rejects a handshake without provides', async () => {
    const host = givenHost(exampleHost());
    const r = await callout(host.root, { event: 'get', action: 'capabilities', uuid: GUEST1 }, '{"version":2}');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('provides.version is missing');
  });
});

describe('the configuration lock, held for mdevctl from pre to post', () => {
  it('is taken in pre for the parent PID and released in post', async () => {
    const host = givenHost(exampleHost());
    const mdevctl = process.ppid;
    for (const action of ['define', 'modify', 'start', 'stop', 'undefine']) {
      const stdin = deviceJson('manual', [1], [5]);
      expect((await callout(host.root, { event: 'pre', action, uuid: GUEST1 }, stdin, { parentPid: mdevctl })).code).toBe(0);
      expect(host.read(LOCK)).toBe(`${mdevctl}\n`);
      // Another mdevctl's post must not release it.
      await callout(host.root, { event: 'post', action, uuid: GUEST1, state: 'success' }, stdin, { parentPid: process.pid });
      expect(host.read(LOCK)).toBe(`${mdevctl}\n`);
      await callout(host.root, { event: 'post', action, uuid: GUEST1, state: 'failure' }, stdin, { parentPid: mdevctl });
      expect(host.exists(LOCK)).toBe(false);
    }
  });

  it('refuses when another process keeps the lock past the bound', async () => {
    const host = givenHost(exampleHost({ files: { [LOCK]: `${process.ppid}\n` } }));
    const r = await callout(host.root, { event: 'pre', action: 'define', uuid: GUEST1 }, deviceJson('manual', [1], [5]), { lockTimeoutMs: 100 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`refused to define mdev ${GUEST1}: ${join(host.root, LOCK)}: the AP configuration lock is held by PID ${process.ppid}`);
    expect(readFileSync(join(host.root, LOCK), 'utf8')).toBe(`${process.ppid}\n`);
  });

  it('takes over a lock whose owner is gone', async () => {
    const host = givenHost(exampleHost({ files: { [LOCK]: '999999999\n' } }));
    expect((await callout(host.root, { event: 'pre', action: 'stop', uuid: GUEST1 }, '')).code).toBe(0);
    expect(host.read(LOCK)).toBe(`${process.pid}\n`);
  });
});

describe('through the command line', () => {
  it('works on a fake root with --root, stdin included', async () => {
    const host = givenHost(exampleHost({ store: GUEST1_STORE }));
    let stderr = '';
    const io = { stdout: () => {}, stderr: (t: string) => void (stderr += t), env: {}, stdin: () => deviceJson('auto', [1], [6, 7]) };
    const code = await run(['--root', host.root, 'callout', ...calloutArgs({ event: 'pre', action: 'define', uuid: GUEST2 })], io);
    expect(code).toBe(1);
    expect(stderr).toContain('APQN 01.0006 (1.6) is defined for autostart by');
  });

  it('shows the protocol in --help', async () => {
    const host = givenHost(exampleHost());
    const r = await host.run('callout', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('callout -t TYPE -e EVENT -a ACTION -s STATE -u UUID -p PARENT');
    expect(r.stdout).toContain('get capabilities');
  });
});
