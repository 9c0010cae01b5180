// The rules under the real udev: `udevadm test` in a private mount namespace
// whose /sys is a tmpfs holding a synthetic AP bus, and whose rules
// directories hold only 41-ap.rules (generated) and 42-ap-persist.rules
// (installed). udevadm test performs the ATTR writes (into the tmpfs) and
// lists the RUN programs without running them.

import { describe, expect } from 'vitest';
import { threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { givenHost } from '../support/host.js';
import { itWith, MOUNT_NAMESPACE, requireTools, runInMountNamespace } from '../support/real-tools.js';

// The kernel documentation's masks for the three-guest host: cards 5 and 6,
// domains 4, 0x47, 0xab and 0xff freed for vfio_ap.
const APMASK = '0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff';
const AQMASK = '0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe';
const KERNEL_DEFAULT = `0x${'f'.repeat(64)}`;
const BIN = '/usr/bin/ap-persist';
const ACTIVE = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
/** Every ID but 5 and 4 (as adapter and domain) with the host: 05.0004 is free for vfio_ap. */
const FREE_MASK = '0xf7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff';

interface ApBusEvent {
  name: string;
  /** vfio_ap is loaded and an mdev holds 05.0004; the active masks keep adapter 5 and domain 4 out of the host pool. */
  activeMdev?: boolean;
  action: 'add' | 'change';
  devpath: '/devices/ap' | '/bus/ap';
  /** /sys/devices/ap/uevent: the properties of the bus's change event. */
  uevent: string;
  /** /sys/bus/ap/bindings_complete_count; undefined: an older kernel without it. */
  completeCount?: number;
}

interface Outcome {
  /** ATTR writes udev made, by attribute name. */
  writes: Record<string, string>;
  /** RUN entries, in the order udev would run them. */
  run: string[];
  /** The masks in /sys afterwards. */
  apmask: string;
  aqmask: string;
  log: string;
}

const EVENTS: ApBusEvent[] = [
  { name: 'first-complete', action: 'change', devpath: '/devices/ap', uevent: 'BINDINGS=complete\nCOMPLETECOUNT=1\n', completeCount: 1 },
  { name: 'later-complete', action: 'change', devpath: '/devices/ap', uevent: 'BINDINGS=complete\nCOMPLETECOUNT=2\n', completeCount: 2 },
  { name: 'plain-change', action: 'change', devpath: '/devices/ap', uevent: '', completeCount: 0 },
  // 5.11-5.13: BINDINGS=complete without COMPLETECOUNT.
  { name: 'complete-no-count', action: 'change', devpath: '/devices/ap', uevent: 'BINDINGS=complete\n' },
  { name: 'coldplug', action: 'add', devpath: '/bus/ap', uevent: '', completeCount: 1 },
  { name: 'coldplug-incomplete', action: 'add', devpath: '/bus/ap', uevent: '', completeCount: 0 },
  { name: 'coldplug-old-kernel', action: 'add', devpath: '/bus/ap', uevent: '' },
];

const sh = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;

/** One bash script: hide every rules directory behind a tmpfs, put ours in, then one fresh /sys per event. */
function script(root: string, events: readonly ApBusEvent[]): string {
  const lines = [
    'mount -t tmpfs tmpfs /run',
    'mount -t tmpfs tmpfs /etc/udev && mkdir /etc/udev/rules.d',
    'for d in /usr/local/lib/udev/rules.d /lib/udev/rules.d /usr/lib/udev/rules.d; do [ ! -d "$d" ] || mount -t tmpfs tmpfs "$d"; done',
    `cp ${sh(`${root}/etc/udev/rules.d/41-ap.rules`)} /etc/udev/rules.d/`,
    `cp ${sh(`${root}/usr/lib/udev/rules.d/42-ap-persist.rules`)} /usr/lib/udev/rules.d/`,
    'export SYSTEMD_DEVICE_VERIFY_SYSFS=0',
  ];
  for (const e of events) {
    lines.push(
      'mount -t tmpfs tmpfs /sys',
      'mkdir -p /sys/devices/ap /sys/bus/ap',
      'ln -s ../../bus/ap /sys/devices/ap/subsystem',
      `printf %s ${sh(e.uevent)} > /sys/devices/ap/uevent`,
      ...(e.activeMdev
        ? [
            `mkdir -p /sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough /sys/devices/vfio_ap/matrix/${ACTIVE}`,
            `echo 05.0004 > /sys/devices/vfio_ap/matrix/${ACTIVE}/matrix`,
            `echo ${FREE_MASK} > /sys/bus/ap/apmask`,
            `echo ${FREE_MASK} > /sys/bus/ap/aqmask`,
          ]
        : [`echo ${KERNEL_DEFAULT} > /sys/bus/ap/apmask`, `echo ${KERNEL_DEFAULT} > /sys/bus/ap/aqmask`]),
      ...(e.completeCount === undefined ? [] : [`echo ${e.completeCount} > /sys/bus/ap/bindings_complete_count`]),
      `echo ${sh(`=== ${e.name}`)}`,
      `udevadm test --action=${e.action} ${e.devpath} 2>&1 || echo "udevadm exit $?"`,
      'echo "=== masks $(cat /sys/bus/ap/apmask) $(cat /sys/bus/ap/aqmask)"',
    );
  }
  return lines.join('\n');
}

function parse(stdout: string): Map<string, Outcome> {
  const out = new Map<string, Outcome>();
  for (const part of stdout.split(/^=== (?=\S+$)/m).slice(1)) {
    const name = part.slice(0, part.indexOf('\n'));
    const masks = /^=== masks (\S+) (\S+)$/m.exec(part);
    const writes: Record<string, string> = {};
    for (const m of part.matchAll(/ATTR '([^']+)' writing '([^']*)'/g)) writes[m[1]!.split('/').pop()!] = m[2]!;
    out.set(name, {
      writes,
      run: [...part.matchAll(/^run: '(.*)'$/gm)].map((m) => m[1]!),
      apmask: masks?.[1] ?? '?',
      aqmask: masks?.[2] ?? '?',
      log: part,
    });
  }
  return out;
}

describe('the rules under udevadm test', () => {
  const req = requireTools('udevadm', MOUNT_NAMESPACE);

  itWith(req, 'AP bus events apply the masks, load vfio_ap and run the hook, in that order, and only when bindings are complete', async () => {
    const host = givenHost(threeGuestsHost());
    expect((await host.run('install', '--bin', BIN)).code).toBe(0);
    const r = await runInMountNamespace(script(host.root, EVENTS));
    expect(r.code, r.stderr).toBe(0);
    const seen = parse(r.stdout);
    const event = (name: string): Omit<Outcome, 'log'> => {
      const o = seen.get(name);
      if (!o) throw new Error(`no output for ${name}:\n${r.stdout}\n${r.stderr}`);
      expect(o.log, name).toContain('Reading rules file: /etc/udev/rules.d/41-ap.rules');
      expect(o.log, name).toContain('Reading rules file: /usr/lib/udev/rules.d/42-ap-persist.rules');
      const { log: _log, ...summary } = o;
      return summary;
    };
    // udevd runs no node: each event queues one instance of the hook's unit with systemctl.
    const hookUnit = (instance: string): string => `/usr/bin/systemctl --no-block start ap-persist-hook@${instance}.service`;
    // The boot's first event queues the target too, ordered after the hook: systemd starts the mdev units then.
    const firstHookUnit = (instance: string): string => `${hookUnit(instance)} ap-persist-mdevs.target`;
    const applied = { writes: { apmask: APMASK, aqmask: AQMASK }, apmask: APMASK, aqmask: AQMASK };
    const untouched = { writes: {}, apmask: KERNEL_DEFAULT, aqmask: KERNEL_DEFAULT };

    // Boot: the bus bound every queue for the first time.
    expect(event('first-complete')).toEqual({ ...applied, run: ['kmod load vfio_ap', firstHookUnit('change-1')] });
    // A card added later: the masks stay as they are (as chzdev's rule does), the hook checks again.
    expect(event('later-complete')).toEqual({ ...untouched, run: [hookUnit('change-2')] });
    // Any other change of the bus runs nothing.
    expect(event('plain-change')).toEqual({ ...untouched, run: [] });
    // Without a count (5.11-5.13) chzdev's lines do not match (the hook applies the masks); the hook still runs.
    expect(event('complete-no-count')).toEqual({ ...untouched, run: [hookUnit('change')] });
    // Coldplug: udevadm trigger replays the bus's add once the bindings completed.
    expect(event('coldplug')).toEqual({ ...applied, run: ['kmod load vfio_ap', firstHookUnit('add')] });
    expect(event('coldplug-incomplete')).toEqual({ ...untouched, run: [] });
    // Kernels without bindings_complete_count: nothing here; `ap-persist wait` runs the hook at boot.
    expect(event('coldplug-old-kernel')).toEqual({ ...untouched, run: [] });
  });

  itWith(req, 'no replay of the rule gives an existing mdev\'s queue to the host, whatever the persistent masks say', async () => {
    // The persistent masks give the host everything, 05.0004 included, while an mdev holds it.
    const host = givenHost({ ...threeGuestsHost(), store: '[masks]\napmask = 0-255\naqmask = 0-255\n' });
    expect((await host.run('install', '--bin', BIN)).code).toBe(0);
    const replays: ApBusEvent[] = [
      { name: 'trigger-add', action: 'add', devpath: '/bus/ap', uevent: '', completeCount: 1, activeMdev: true },
      { name: 'complete-1', action: 'change', devpath: '/devices/ap', uevent: 'BINDINGS=complete\nCOMPLETECOUNT=1\n', completeCount: 1, activeMdev: true },
      { name: 'complete-2', action: 'change', devpath: '/devices/ap', uevent: 'BINDINGS=complete\nCOMPLETECOUNT=2\n', completeCount: 2, activeMdev: true },
      { name: 'trigger-change', action: 'change', devpath: '/devices/ap', uevent: '', completeCount: 2, activeMdev: true },
    ];
    const r = await runInMountNamespace(script(host.root, replays));
    expect(r.code, r.stderr).toBe(0);
    const seen = parse(r.stdout);
    for (const e of replays) {
      const o = seen.get(e.name);
      expect(o, e.name).toBeDefined();
      expect({ writes: o!.writes, apmask: o!.apmask, aqmask: o!.aqmask }, `${e.name}\n${o!.log}`).toEqual({ writes: {}, apmask: FREE_MASK, aqmask: FREE_MASK });
      // The hook still runs for a BINDINGS=complete: it applies what is safe.
      const target = e.completeCount === 1 ? ' ap-persist-mdevs.target' : '';
      if (e.uevent) expect(o!.run, e.name).toEqual([`/usr/bin/systemctl --no-block start ap-persist-hook@change-${e.completeCount}.service${target}`]);
    }
    // The check has teeth: the same events without the mdev write the masks.
    const control = await runInMountNamespace(script(host.root, [{ ...replays[0]!, activeMdev: false }]));
    expect(parse(control.stdout).get('trigger-add')!.writes).toEqual({ apmask: KERNEL_DEFAULT, aqmask: KERNEL_DEFAULT });
  });
});
