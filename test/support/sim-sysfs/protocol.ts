// What the test helper, the model server and the FUSE adapter agree on: the
// server's start-up config and the requests the adapter forwards (one JSON
// object a line each way, on the server's stdin and stdout).

import type { FakeHost } from '../../../src/fakehost/builder.js';
import type { KernelFlavour, SysfsNodeInfo } from '../../../src/sysfs/sim-kernel.js';

/** The parts of a FakeHost the kernel holds, with the masks as the mask files read (IdSet does not survive JSON). */
export type KernelHost = Pick<FakeHost, 'cards' | 'domains' | 'maxAdapterId' | 'maxDomainId' | 'vfioAp' | 'activeMdevs'> & {
  masks?: { apmask: string; aqmask: string };
};

export interface ServerConfig {
  host: KernelHost;
  kernel: KernelFlavour;
  mtty: boolean;
}

/** Paths are the FUSE mount's, starting with `/`: `/sys/bus/ap/apmask`, `/control`. */
export type Request =
  | { op: 'stat'; path: string }
  | { op: 'list'; path: string }
  | { op: 'read'; path: string }
  | { op: 'write'; path: string; data: string };

/** A refused request carries the errno's name (`EADDRINUSE`). */
export type Response = { errno: string } | { node: SysfsNodeInfo } | { entries: string[] } | { data: string } | { done: true };

/** At the FUSE root, beside `sys/`: write one command per write(); read the model's state as JSON. */
export const CONTROL = 'control';
export const STATE = 'state';
