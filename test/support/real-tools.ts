// Real-component tests run the host's udevadm, systemd-analyze, systemctl,
// and a private mount namespace. Where one is missing the test is skipped
// and its title says why; with AP_PERSIST_REQUIRE_TOOLS=1 (set by .ci/run)
// nothing may skip: a missing tool fails the test instead.

import { spawn, spawnSync } from 'node:child_process';
import { readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'vitest';
import { tempDir } from './host.js';

/** A command on PATH, or a private mount namespace in which /sys can be replaced. */
export type Need = string | typeof MOUNT_NAMESPACE;

export const MOUNT_NAMESPACE = 'a private mount namespace (unshare -m)';

export interface Requirement {
  /** Why the tests cannot run here; undefined when everything is there. */
  missing: string | undefined;
}

const strict = (): boolean => process.env['AP_PERSIST_REQUIRE_TOOLS'] === '1';

function onPath(tool: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool], { stdio: 'ignore' }).status === 0;
}

/**
 * The command prefix that gives a private mount namespace where a tmpfs can
 * be mounted over /sys: as root `unshare -m`, otherwise inside a user
 * namespace that maps us to root. Undefined with the reason when neither works.
 */
function probeNamespace(): { prefix: string[] } | { reason: string } {
  if (!onPath('unshare')) return { reason: 'unshare (util-linux) is not installed' };
  const candidates = process.getuid?.() === 0 ? [['unshare', '-m', '--propagation', 'private']] : [['unshare', '-r', '-m', '--propagation', 'private']];
  let last = '';
  for (const prefix of candidates) {
    const r = spawnSync(prefix[0]!, [...prefix.slice(1), 'sh', '-c', 'mount -t tmpfs tmpfs /sys'], { encoding: 'utf8' });
    if (r.status === 0) return { prefix };
    last = (r.stderr || r.error?.message || `exit ${r.status}`).trim();
  }
  return { reason: `cannot mount a tmpfs over /sys in a private mount namespace: ${last}` };
}

let namespace: ReturnType<typeof probeNamespace> | undefined;

export interface ScriptRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

// Mounts in the script must never land on the host: it stops unless it runs
// in a mount namespace other than the test's own.
const GUARD = `set -euo pipefail
if [ "$(readlink /proc/self/ns/mnt)" = "$AP_PERSIST_HOST_MNT_NS" ]; then
  echo "not in a private mount namespace; refusing to mount anything" >&2
  exit 99
fi
`;

/**
 * Runs a bash script in a private mount namespace (check requireTools with
 * MOUNT_NAMESPACE first). What it mounts goes away with it.
 */
export function runInMountNamespace(script: string, timeoutMs = 15_000, env: Record<string, string> = {}): Promise<ScriptRun> {
  namespace ??= probeNamespace();
  if ('reason' in namespace) throw new Error(namespace.reason);
  const file = join(tempDir('ap-persist-ns-'), 'script.sh');
  writeFileSync(file, `${GUARD}${script}\n`);
  const [cmd, ...args] = namespace.prefix;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd!, [...args, 'bash', file], {
      env: { ...process.env, ...env, AP_PERSIST_HOST_MNT_NS: readlinkSync('/proc/self/ns/mnt') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => void (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export function requireTools(...needs: Need[]): Requirement {
  const reasons: string[] = [];
  for (const need of needs) {
    if (need === MOUNT_NAMESPACE) {
      namespace ??= probeNamespace();
      if ('reason' in namespace) reasons.push(namespace.reason);
    } else if (!onPath(need)) reasons.push(`${need} is not installed`);
  }
  return { missing: reasons.length ? reasons.join('; ') : undefined };
}

/**
 * `it` for a test that needs real tools: skipped with the reason in its title
 * when they are missing, failed instead when AP_PERSIST_REQUIRE_TOOLS=1.
 */
export function itWith(req: Requirement, title: string, fn: () => Promise<void> | void, timeoutMs = 20_000): void {
  const skip = req.missing !== undefined && !strict();
  if (skip) process.stderr.write(`skipping "${title}": ${req.missing}\n`);
  it.skipIf(skip)(
    skip ? `${title} [skipped: ${req.missing}]` : title,
    async () => {
      if (req.missing !== undefined) throw new Error(`AP_PERSIST_REQUIRE_TOOLS=1 and ${req.missing}: real-component tests may not skip`);
      await fn();
    },
    timeoutMs,
  );
}
