// The scenarios our mdevctl callout and the real s390-tools ap-check are run
// on, with ap-check's answers as recorded from the real ap-check 2.40.0, and
// the one run of both that each test file asks for: ap-check-differential
// (`npm test`) checks ours against the recorded answers; ap-check-live
// (`npm run test:system`) checks the real ap-check, where it can be built
// (test/support/ap-check.ts), against the same record. Together: ours against
// the real ap-check.
//
// Each scenario is an admin's story: a host (the store, the boot files our
// `generate` wrote from it, maybe a 41-ap.rules chzdev changed since, mdevctl
// definitions of ours and of mdevctl's own, the live AP masks and the active
// mdevs) and one callout call mdevctl would make, with its device JSON on
// stdin. Each callout gets the call on a fresh copy of the host, in a private
// mount namespace where /sys, /etc/mdevctl.d, /etc/udev/rules.d,
// /etc/ap-persist and /run (the lock) are the test's own.
//
// The rule (DESIGN.md): ours refuses at least everything ap-check refuses, and
// names every APQN ap-check names. Where ap-check accepts, the table says what
// ours does, and why where that is more.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FakeHost } from '../../src/fakehost/builder.js';
import { packageAssets } from '../../src/generate/assets.js';
import { CALLOUT_NODE_FLAGS } from '../../src/generate/static-files.js';
import { parseIdList } from '../../src/model/idlist.js';
import { IdSet } from '../../src/model/idset.js';
import { ACTIVE, exampleHost, GUEST1, GUEST2, GUEST3, STORE_MASKS } from '../callout/support.js';
import { chzdevRulesText } from '../support/chzdev.js';
import { givenHost, tempDir } from '../support/host.js';
import { runInNamespace } from '../support/namespace.js';

// ---- the hosts ------------------------------------------------------------------

const GUEST4 = '44444444-4444-4444-8444-444444444444';
/** mdevctl's own auto definition, which the store does not know. */
const PEER = '55555555-5555-4555-8555-555555555555';
/** mdevctl's own auto definition written with an unassign_* (mdevctl modify --addattr=unassign_domain). */
const UNASSIGNING = '77777777-7777-4777-8777-777777777777';

/**
 * The kernel example's host (cards 0-3, domains 4-9; the masks give adapters
 * 1,2 and domains 5-7 to vfio_ap) with, in the store: guest1 auto 1,2 x 5,6;
 * guest3 manual 1 x 6,7; guest4 auto 2 x 8. mdevctl's own PEER auto 0 x 7.
 * Running: ACTIVE, defined nowhere, on 2.7.
 */
const STORE = `${STORE_MASKS}
[mdev.${GUEST1}]
name = guest1
adapters = 1,2
domains = 5,6
start = auto

[mdev.${GUEST3}]
name = guest3
adapters = 1
domains = 6,7
start = manual

[mdev.${GUEST4}]
name = guest4
adapters = 2
domains = 8
start = auto
`;

const RULES = 'etc/udev/rules.d/41-ap.rules';
const AQMASK = parseIdList('0-4,8-255');

interface HostSetup {
  spec: FakeHost;
  /** Files changed after generate, as a peer would (chzdev rewriting 41-ap.rules). */
  after?: Record<string, string>;
}

function base(extra: Partial<FakeHost> = {}): FakeHost {
  return exampleHost({
    store: STORE,
    mdevctl: [{ uuid: PEER, start: 'auto', adapters: [0], domains: [7] }],
    activeMdevs: [{ uuid: ACTIVE, adapters: [2], domains: [7] }],
    ...extra,
  });
}

const HOSTS = {
  base: { spec: base() },
  // chzdev -t ap -p apmask=+1: adapter 1 goes back to the host at the next boot; the store does not know.
  'chzdev gave adapter 1 to the host': { spec: base(), after: { [RULES]: chzdevRulesText(parseIdList('0,1,3-255'), AQMASK) } },
  // chzdev -t ap -p apmask=-3: adapter 3 goes to vfio_ap at the next boot; the store does not know.
  'chzdev freed adapter 3': { spec: base(), after: { [RULES]: chzdevRulesText(parseIdList('0,4-255'), AQMASK) } },
  // Booted without the rule applied (or masks reset by hand): everything is the host's now.
  "live masks are the kernel's default": { spec: base({ masks: undefined, activeMdevs: [] }) },
  'vfio_ap not loaded': { spec: base({ vfioAp: false, activeMdevs: [] }) },
  // UNASSIGNING: assign 1 x 9,7 then unassign 7; at its start vfio_ap holds 1.7 between the writes.
  'an mdevctl auto definition unassigns': {
    spec: base({
      files: {
        [`etc/mdevctl.d/matrix/${UNASSIGNING}`]: JSON.stringify({
          mdev_type: 'vfio_ap-passthrough',
          start: 'auto',
          attrs: [{ assign_adapter: '1' }, { assign_domain: '9' }, { assign_domain: '7' }, { unassign_domain: '7' }],
        }),
      },
    }),
  },
} satisfies Record<string, HostSetup>;
type HostName = keyof typeof HOSTS;

// ---- the calls --------------------------------------------------------------------

export type Outcome = 'accept' | 'not-mine' | 'refuse';
export const outcome = (code: number): Outcome => (code === 0 ? 'accept' : code === 2 ? 'not-mine' : 'refuse');

export interface Scenario {
  name: string;
  host: HostName;
  /** The callout's arguments. */
  args: string[];
  /** The device JSON mdevctl writes on stdin. */
  stdin?: string;
  /** What the real ap-check does: checked too, so that a scenario means what it says. APQNs as ap-check prints them (decimal a.d). */
  apCheck: Outcome;
  apqns?: string[];
  /** What ours does. */
  ours: Outcome;
  /** Why ours answers otherwise than ap-check; required where it does. */
  why?: string;
  /** Ours refuses for a reason of its own, naming no APQN: what it says. */
  oursSays?: RegExp;
  /** What ap-check prints for get attributes; ours must print the same. */
  attributes?: unknown;
}

const call = (event: string, action: string, uuid: string, o: { type?: string; parent?: string; omit?: string } = {}): string[] =>
  (
    [
      ['-t', o.type ?? 'vfio_ap-passthrough'],
      ['-e', event],
      ['-a', action],
      ['-s', 'none'],
      ['-u', uuid],
      ['-p', o.parent ?? 'matrix'],
    ] as const
  )
    .filter(([flag]) => flag !== o.omit)
    .flat();

type Attr = [key: string, value: string];
const a = (v: string): Attr => ['assign_adapter', v];
const d = (v: string): Attr => ['assign_domain', v];
const cd = (v: string): Attr => ['assign_control_domain', v];
const ud = (v: string): Attr => ['unassign_domain', v];
/** ap_config's three masks (adapters, usage domains, control domains) for one adapter and one domain. */
const apConfig = (adapter: number, domain: number): Attr => ['ap_config', [IdSet.of([adapter]), IdSet.of([domain]), IdSet.empty()].map((m) => m.toKernelHex()).join(',')];
/** The compact device JSON mdevctl writes on the callout's stdin. */
const dev = (start: 'auto' | 'manual', ...attrs: Attr[]): string =>
  JSON.stringify({ mdev_type: 'vfio_ap-passthrough', start, attrs: attrs.map(([k, v]) => ({ [k]: v })) });

export const SCENARIOS: Scenario[] = [
  // define / modify: the persistent scope (auto definitions, 41-ap.rules)
  {
    name: 'define auto sharing 1.6 with the store auto mdev guest1',
    host: 'base',
    args: call('pre', 'define', GUEST2),
    stdin: dev('auto', a('1'), d('6'), d('7')),
    apCheck: 'refuse',
    apqns: ['1.6'],
    ours: 'refuse',
  },
  {
    name: "define auto sharing 0.7 with mdevctl's own auto definition",
    host: 'base',
    args: call('pre', 'define', GUEST2),
    stdin: dev('auto', a('0'), d('7')),
    apCheck: 'refuse',
    apqns: ['0.7'],
    ours: 'refuse',
  },
  {
    name: 'define manual sharing 1.6 with guest1 (not checked: it never starts at boot)',
    host: 'base',
    args: call('pre', 'define', GUEST2),
    stdin: dev('manual', a('1'), d('6'), d('7')),
    apCheck: 'accept',
    ours: 'accept',
  },
  {
    name: 'define auto on 1.7, free for vfio_ap and in no auto definition',
    host: 'base',
    args: call('pre', 'define', GUEST2),
    stdin: dev('auto', a('1'), d('7')),
    apCheck: 'accept',
    ours: 'accept',
  },
  {
    name: 'define auto on 2.7, which the running ACTIVE (defined nowhere) holds',
    host: 'base',
    args: call('pre', 'define', GUEST2),
    stdin: dev('auto', a('2'), d('7')),
    apCheck: 'accept',
    ours: 'accept',
  },
  {
    name: "define auto on 3.8, which 41-ap.rules (ours, the store's masks) gives the host",
    host: 'base',
    args: call('pre', 'define', GUEST2),
    stdin: dev('auto', a('3'), d('8')),
    apCheck: 'refuse',
    apqns: ['3.8'],
    ours: 'refuse',
  },
  {
    name: 'define auto on 1.8 after chzdev gave adapter 1 to the host in 41-ap.rules (drift the store does not know)',
    host: 'chzdev gave adapter 1 to the host',
    args: call('pre', 'define', GUEST2),
    stdin: dev('auto', a('1'), d('8')),
    apCheck: 'refuse',
    apqns: ['1.8'],
    ours: 'refuse',
  },
  {
    name: 'define auto on 3.8 after chzdev freed adapter 3 in 41-ap.rules (drift the store does not know)',
    host: 'chzdev freed adapter 3',
    args: call('pre', 'define', GUEST2),
    stdin: dev('auto', a('3'), d('8')),
    apCheck: 'accept',
    ours: 'accept',
  },
  {
    name: 'modify the manual guest3 (1 x 6,7) to auto: it would share 1.6 with guest1 at boot',
    host: 'base',
    args: call('pre', 'modify', GUEST3),
    stdin: dev('auto', a('1'), d('6'), d('7')),
    apCheck: 'refuse',
    apqns: ['1.6'],
    ours: 'refuse',
  },
  {
    name: 'modify guest1 with its own matrix (not held against its old version)',
    host: 'base',
    args: call('pre', 'modify', GUEST1),
    stdin: dev('auto', a('1'), a('2'), d('5'), d('6')),
    apCheck: 'accept',
    ours: 'accept',
  },

  // values as the kernel reads them (kstrtoul base 0) and as ap-check does (strtol base 0)
  {
    name: 'hex values "0x01" x "0x05" are 1.5, guest1\'s',
    host: 'base',
    args: call('pre', 'define', GUEST2),
    stdin: dev('auto', a('0x01'), d('0x05')),
    apCheck: 'refuse',
    apqns: ['1.5'],
    ours: 'refuse',
  },
  {
    name: 'domain "010" is octal 8: 2.8 is guest4\'s (as decimal 10 it would be free)',
    host: 'base',
    args: call('pre', 'define', GUEST2),
    stdin: dev('auto', a('0x02'), d('010')),
    apCheck: 'refuse',
    apqns: ['2.8'],
    ours: 'refuse',
  },
  {
    name: 'domain "0010" is octal 8 too',
    host: 'base',
    args: call('pre', 'define', GUEST2),
    stdin: dev('auto', a('2'), d('0010')),
    apCheck: 'refuse',
    apqns: ['2.8'],
    ours: 'refuse',
  },
  {
    name: 'domain "08" is no number for the kernel; ap-check reads it as 0 (2.0 is free)',
    host: 'base',
    args: call('pre', 'define', GUEST2),
    stdin: dev('auto', a('2'), d('08')),
    apCheck: 'accept',
    ours: 'refuse',
    why: 'the kernel refuses "08" (kstrtoul: 8 is no octal digit), so mdevctl would define an mdev that cannot start; ap-check reads it as 0 with strtol',
    oursSays: /'08' is not a valid domain/,
  },
  {
    name: 'adapter "0,1" in one attribute: ap-check reads two adapters (0.7 is PEER\'s), the kernel none',
    host: 'base',
    args: call('pre', 'define', GUEST2),
    stdin: dev('auto', a('0,1'), d('7')),
    apCheck: 'refuse',
    apqns: ['0.7'],
    ours: 'refuse',
    why: 'ours refuses the value itself: the kernel refuses "0,1" (one ID per write)',
    oursSays: /'0,1' is not a valid adapter/,
  },
  {
    name: 'assign lists with duplicates ("1", "1", "0x1" x "6", "6") are 1.6, guest1\'s',
    host: 'base',
    args: call('pre', 'define', GUEST2),
    stdin: dev('auto', a('1'), a('1'), a('0x1'), d('6'), d('6')),
    apCheck: 'refuse',
    apqns: ['1.6'],
    ours: 'refuse',
  },
  {
    name: "assign 1 x 6,9 then unassign_domain 6: the mdev ends with 1.9 but holds guest1's 1.6 on the way (and ap-check ignores unassign_*)",
    host: 'base',
    args: call('pre', 'define', GUEST2),
    stdin: dev('auto', a('1'), d('6'), d('9'), ud('6')),
    apCheck: 'refuse',
    apqns: ['1.6'],
    ours: 'refuse',
  },
  {
    name: "define auto on 1.7, which the other auto definition UNASSIGNING assigns and unassigns again (held while mdevctl starts it)",
    host: 'an mdevctl auto definition unassigns',
    args: call('pre', 'define', GUEST2),
    stdin: dev('auto', a('1'), d('7')),
    apCheck: 'refuse',
    apqns: ['1.7'],
    ours: 'refuse',
  },
  {
    name: "assign 1 x 6 then ap_config 1.7: vfio_ap holds guest1's 1.6 until the ap_config; ap-check sees only 1.7",
    host: 'base',
    args: call('pre', 'define', GUEST2),
    stdin: dev('auto', a('1'), d('6'), apConfig(1, 7)),
    apCheck: 'accept',
    ours: 'refuse',
    why: "vfio_ap checks the assign_domain 6 write on its own: at boot it fails with EADDRINUSE (guest1 holds 1.6), so the mdev could not start; ap-check lets ap_config clear what came before",
    oursSays: /APQN 01\.0006 \(1\.6\) is defined for autostart by 11111111-1111-4111-8111-111111111111 \(guest1\)/,
  },
  {
    name: 'device JSON of another mdev_type than -t says',
    host: 'base',
    args: call('pre', 'define', GUEST2),
    stdin: JSON.stringify({ mdev_type: 'vfio_ccw-io', start: 'auto', attrs: [] }),
    apCheck: 'refuse',
    ours: 'refuse',
  },

  // start / live: the active scope (running mdevs, live sysfs masks)
  {
    name: 'start on 2.7, which the running ACTIVE holds',
    host: 'base',
    args: call('pre', 'start', GUEST2),
    stdin: dev('manual', a('2'), d('7')),
    apCheck: 'refuse',
    apqns: ['2.7'],
    ours: 'refuse',
  },
  {
    name: 'start on 3.8, which the live sysfs masks give the host',
    host: 'base',
    args: call('pre', 'start', GUEST2),
    stdin: dev('manual', a('3'), d('8')),
    apCheck: 'refuse',
    apqns: ['3.8'],
    ours: 'refuse',
  },
  {
    name: "start guest1 while the live masks are the kernel's default (all to the host)",
    host: "live masks are the kernel's default",
    args: call('pre', 'start', GUEST1),
    stdin: dev('auto', a('1'), a('2'), d('5'), d('6')),
    apCheck: 'refuse',
    apqns: ['1.5', '1.6', '2.5', '2.6'],
    ours: 'refuse',
  },
  {
    name: 'start guest1, clashing with nothing running',
    host: 'base',
    args: call('pre', 'start', GUEST1),
    stdin: dev('auto', a('1'), a('2'), d('5'), d('6')),
    apCheck: 'accept',
    ours: 'accept',
  },
  {
    name: 'start with a control domain but no usage domain',
    host: 'base',
    args: call('pre', 'start', GUEST2),
    stdin: dev('manual', a('1'), cd('7')),
    apCheck: 'refuse',
    ours: 'refuse',
  },
  {
    name: 'start while vfio_ap is not loaded',
    host: 'vfio_ap not loaded',
    args: call('pre', 'start', GUEST1),
    stdin: dev('auto', a('1'), a('2'), d('5'), d('6')),
    apCheck: 'refuse',
    ours: 'refuse',
  },

  // the rest of the protocol
  {
    name: 'get attributes of the running ACTIVE',
    host: 'base',
    args: call('get', 'attributes', ACTIVE),
    apCheck: 'accept',
    ours: 'accept',
    attributes: [{ assign_adapter: '2' }, { assign_domain: '7' }],
  },
  {
    name: 'post define',
    host: 'base',
    args: call('post', 'define', GUEST2),
    stdin: dev('auto', a('1'), d('7')),
    apCheck: 'accept',
    ours: 'accept',
  },
  {
    name: 'a bad call: no -u',
    host: 'base',
    args: call('pre', 'define', GUEST2, { omit: '-u' }),
    stdin: dev('auto', a('1'), d('7')),
    apCheck: 'refuse',
    ours: 'refuse',
  },
  {
    name: 'a bad call: parent other than matrix',
    host: 'base',
    args: call('pre', 'define', GUEST2, { parent: '0.0.1234' }),
    stdin: dev('auto', a('1'), d('7')),
    apCheck: 'refuse',
    ours: 'refuse',
  },
  {
    name: 'another mdev type (vfio_ccw-io): not ours to judge',
    host: 'base',
    args: call('pre', 'define', GUEST2, { type: 'vfio_ccw-io' }),
    stdin: JSON.stringify({ mdev_type: 'vfio_ccw-io', start: 'auto', attrs: [] }),
    apCheck: 'not-mine',
    ours: 'not-mine',
  },
];

// ---- running them -----------------------------------------------------------------

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The APQNs a message names, as decimal "a.d": ap-check's "APQN 1.6" (and its typo "AQPN 1.6"), ours' "APQN 01.0006 (1.6)". */
export function apqnsNamed(stderr: string, style: 'ap-check' | 'ours'): string[] {
  const found = new Set<string>();
  if (style === 'ap-check') for (const m of stderr.matchAll(/\bA(?:PQ|QP)N (\d+)\.(\d+)\b/g)) found.add(`${Number(m[1])}.${Number(m[2])}`);
  else for (const m of stderr.matchAll(/\bAPQN ([0-9a-f]{2})\.([0-9a-f]{4})\b/gi)) found.add(`${parseInt(m[1]!, 16)}.${parseInt(m[2]!, 16)}`);
  return [...found].sort();
}

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export interface Answers {
  apCheck?: Run;
  ours?: Run;
}

/**
 * Runs every scenario through the callouts given (`ours`: the CLI's main
 * module, run as install writes the callout; `apCheck`: the real ap-check's
 * binary), each on a fresh copy of its host, all in one private mount
 * namespace. Their answers by scenario name.
 */
export async function runScenarios(callouts: { ours?: string; apCheck?: string }): Promise<Map<string, Answers>> {
  const work = tempDir('ap-persist-ap-check-');
  const out = join(work, 'out');
  mkdirSync(out);
  // Each host as generate leaves it, then the peers' changes.
  const roots: Partial<Record<HostName, string>> = {};
  for (const [name, setup] of Object.entries(HOSTS) as [HostName, HostSetup][]) {
    const host = givenHost(setup.spec);
    const g = await host.run('generate', '--no-reload');
    if (g.code !== 0) throw new Error(`generate on host "${name}": exit ${g.code}: ${g.stderr}`);
    for (const [rel, text] of Object.entries(setup.after ?? {})) writeFileSync(join(host.root, rel), text);
    roots[name] = host.root;
  }
  // The callout exactly as install writes it: node by absolute path, without its JIT.
  const callout = join(work, 'callout');
  if (callouts.ours) writeFileSync(callout, packageAssets().renderCallout({ node: process.execPath, nodeFlags: CALLOUT_NODE_FLAGS, bin: callouts.ours }), { mode: 0o755 });

  const env = `env -i LANG=C PATH=/usr/sbin:/usr/bin:/sbin:/bin`;
  const lines = SCENARIOS.map((s, i) => {
    const stdin = join(work, `${i}.json`);
    writeFileSync(stdin, s.stdin ?? '');
    const args = s.args.map(q).join(' ');
    const theirs = callouts.apCheck ? `setup ${q(roots[s.host]!)}\nstep ${i}.ap-check ${env} ${q(callouts.apCheck)} ${args} <${q(stdin)}\n` : '';
    const ours = callouts.ours ? `setup ${q(roots[s.host]!)}\nstep ${i}.ours ${env} ${q(callout)} ${args} <${q(stdin)}\n` : '';
    return `${theirs}${ours}`;
  });
  const body = `
# A fresh copy of the host for each run: every directory either callout reads or writes.
copy_into() { if [ -d "$1" ]; then cp -a "$1/." "$2/"; fi; }
setup() {
  local src=$1 dir
  for dir in /sys /etc/mdevctl.d /etc/udev/rules.d /etc/ap-persist; do
    fresh_dir "$dir"
    copy_into "$src$dir" "$dir"
  done
  # The lock, /run/lock/s390apconfig.lock, and anything else under /run.
  fresh_dir /run
  mkdir -p /run/lock
}
${lines.join('')}
`;
  const ns = await runInNamespace(body, work, out, 240_000);
  if (ns.code !== 0) throw new Error(`the namespace script failed (exit ${ns.code}): ${ns.stderr}`);
  const read = (name: string): Run => ({
    code: Number(readFileSync(join(out, `${name}.rc`), 'utf8')),
    stdout: readFileSync(join(out, `${name}.out`), 'utf8'),
    stderr: readFileSync(join(out, `${name}.err`), 'utf8'),
  });
  const answers = new Map<string, Answers>();
  SCENARIOS.forEach((s, i) =>
    answers.set(s.name, { ...(callouts.apCheck ? { apCheck: read(`${i}.ap-check`) } : {}), ...(callouts.ours ? { ours: read(`${i}.ours`) } : {}) }),
  );
  return answers;
}
