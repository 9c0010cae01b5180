// Shared by the callout tests: a fake host for the kernel documentation's
// example 3, the callout run in-process with stdin, device JSON as mdevctl
// writes it, and the build of the CLI for tests that run it as a process.

import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FakeHost } from '../../src/fakehost/builder.js';
import { HostPaths } from '../../src/host/paths.js';
import { parseIdList } from '../../src/model/idlist.js';
import { runCallout, type CalloutOptions } from '../../src/runtime/callout.js';
import { FileSysfs } from '../../src/sysfs/file-sysfs.js';
import type { RunResult } from '../support/host.js';

export const PROJECT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

// Kernel vfio-ap.rst, example 3: guest1 adapters 1,2 domains 5,6 and guest2
// adapter 1 domains 6,7 both want APQN 01.0006.
export const GUEST1 = '11111111-1111-4111-8111-111111111111';
export const GUEST2 = '22222222-2222-4222-8222-222222222222';
export const GUEST3 = '33333333-3333-4333-8333-333333333333';
export const ACTIVE = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

/** The host keeps adapters 0 and 3-255 and domains 0-4 and 8-255: 1,2 x 5,6,7 are free. */
export const STORE_MASKS = '[masks]\napmask = 0,3-255\naqmask = 0-4,8-255\n';

export const GUEST1_STORE = `${STORE_MASKS}
[mdev.${GUEST1}]
name = guest1
adapters = 1,2
domains = 5,6
start = auto
`;

export function exampleHost(extra: Partial<FakeHost> = {}): FakeHost {
  return {
    cards: [0, 1, 2, 3].map((adapter) => ({ adapter, hwtype: 13 })),
    domains: [4, 5, 6, 7, 8, 9],
    masks: { apmask: parseIdList('0,3-255'), aqmask: parseIdList('0-4,8-255') },
    vfioAp: true,
    store: STORE_MASKS,
    ...extra,
  };
}

/** The compact JSON mdevctl writes on the callout's stdin. */
export function deviceJson(
  start: 'auto' | 'manual',
  adapters: (number | string)[],
  domains: (number | string)[],
  controlDomains: (number | string)[] = [],
  type = 'vfio_ap-passthrough',
): string {
  const attrs = [
    ...adapters.map((id) => ({ assign_adapter: `${id}` })),
    ...domains.map((id) => ({ assign_domain: `${id}` })),
    ...controlDomains.map((id) => ({ assign_control_domain: `${id}` })),
  ];
  return JSON.stringify({ mdev_type: type, start, attrs });
}

export interface Call {
  event: string;
  action: string;
  uuid: string;
  type?: string;
  parent?: string;
  state?: string;
}

export function calloutArgs(call: Call): string[] {
  return ['-t', call.type ?? 'vfio_ap-passthrough', '-e', call.event, '-a', call.action, '-s', call.state ?? 'none', '-u', call.uuid, '-p', call.parent ?? 'matrix'];
}

/** Runs the callout in-process on the fake root, as mdevctl would with `stdin`. */
export async function callout(root: string, call: Call, stdin = '', options: CalloutOptions = {}): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const io = { stdout: (t: string) => void (stdout += t), stderr: (t: string) => void (stderr += t), env: {}, stdin: () => stdin };
  const code = await runCallout(calloutArgs(call), io, new FileSysfs(root), new HostPaths(root), { parentPid: process.pid, ...options });
  return { code, stdout, stderr };
}

/** The CLI as a process: one build per run (test/support/cli-build.ts). */
export { buildCli } from '../support/cli-build.js';
