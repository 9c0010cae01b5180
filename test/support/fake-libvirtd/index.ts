// The fake libvirtd (daemon.ts) in a booted host (booted-host.ts): its
// program, a drop-in that makes the rig's libvirtd.service run it, and the
// domain definitions it starts; virsh to drive it; the hook runs it recorded.

import { fileURLToPath } from 'node:url';
import { CONTAINER_NODE, type Container, type ExecResult } from '../container/index.js';
import { RECORD, SIM } from '../booted-host.js';
import type { HookRecord } from './daemon.js';
import { withoutId } from './domain-xml.js';

export type { HookRecord };

/** Where the program is in the container. */
export const FAKE_LIBVIRTD = '/usr/local/lib/fake-libvirtd/fake-libvirtd.cjs';

let bundle: Promise<string> | undefined;

/** daemon.ts bundled into one CommonJS file, once per test file. */
function program(): Promise<string> {
  bundle ??= (async () => {
    const { build } = await import('esbuild');
    const r = await build({
      entryPoints: [fileURLToPath(new URL('./daemon.ts', import.meta.url))],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node18',
      write: false,
      logLevel: 'warning',
    });
    return r.outputFiles[0]!.text;
  })();
  return bundle;
}

/**
 * Files under the root (BootedHostOptions.files): the program, the drop-in
 * that runs it as libvirtd.service (still ordered after ap-persist-wait), and
 * each domain's definition in /etc/libvirt/qemu/, by name.
 */
export async function fakeLibvirtdFiles(domains: Record<string, string>): Promise<Record<string, string>> {
  return {
    [FAKE_LIBVIRTD.slice(1)]: await program(),
    'etc/systemd/system/libvirtd.service.d/fake-libvirtd.conf': `# test rig: libvirtd runs the qemu hooks as libvirt does
[Service]
ExecStart=
ExecStart=${CONTAINER_NODE} ${FAKE_LIBVIRTD} daemon --sim ${SIM}/control --record ${RECORD}
`,
    ...Object.fromEntries(Object.entries(domains).map(([name, xml]) => [`etc/libvirt/qemu/${name}.xml`, withoutId(xml)])),
  };
}

/** virsh in the container: `start NAME`, `destroy NAME`, `domstate NAME`. */
export function virsh(c: Container, ...args: string[]): Promise<ExecResult> {
  return c.exec([CONTAINER_NODE, FAKE_LIBVIRTD, 'virsh', ...args], { timeoutMs: 120_000 });
}

/** Every hook run of this boot so far, oldest first. */
export async function hookRuns(c: Container): Promise<HookRecord[]> {
  const r = await c.exec(['cat', `${RECORD}/hooks.jsonl`]);
  if (r.code !== 0) return [];
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as HookRecord);
}
