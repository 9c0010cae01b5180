// Runs real host tools (mdevctl, udevadm) against synthetic system files: a
// bash script in a private mount namespace (`unshare -m --propagation
// private`), where tmpfs mounts hide the real /sys, /etc/... and /run/lock.
// Nothing mounted or written there reaches the host, and it all goes away
// when the script ends. Needs root (or the right capabilities) and unshare.

import { spawn, spawnSync } from 'node:child_process';
import { readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'vitest';

/** Why these tools or a private mount namespace are not available here; undefined when they are. */
export function missingTools(tools: readonly string[]): string | undefined {
  for (const tool of ['unshare', ...tools]) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  }
  const probe = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs ap-persist-probe /tmp'], { encoding: 'utf8' });
  if (probe.status !== 0) return `cannot mount in a private mount namespace (${probe.stderr.trim() || `exit ${probe.status}`}); run as root`;
  return undefined;
}

/**
 * it() for a test that needs `tools` and a private mount namespace. Where they
 * are missing the test is skipped, with the reason in its name; with
 * AP_PERSIST_REQUIRE_TOOLS=1 (CI) it fails instead.
 */
export function itWithTools(name: string, tools: readonly string[], fn: () => Promise<void>, timeoutMs?: number): void {
  const reason = missingTools(tools);
  if (!reason) {
    it(name, fn, timeoutMs);
  } else if (process.env['AP_PERSIST_REQUIRE_TOOLS'] === '1') {
    it(name, () => {
      throw new Error(`${reason}, and AP_PERSIST_REQUIRE_TOOLS=1 forbids skipping`);
    });
  } else {
    it.skip(`${name} (skipped: ${reason})`, fn);
  }
}

/**
 * bash helpers for the script: `fresh_dir DIR` mounts an empty tmpfs on DIR.
 * When DIR does not exist its parent is first replaced by a tmpfs holding
 * recursive bind mounts of the parent's entries (so earlier fresh dirs below
 * it stay in place), and not even an empty directory is created on the host.
 * Before each `step` every fresh dir is checked to still be its own tmpfs, so
 * no command ever runs against a host directory. The script refuses to start
 * in the mount namespace of the test that launched it.
 */
const PRELUDE = `set -euo pipefail
if [ "$(readlink /proc/self/ns/mnt)" = "$NS_HOST_MNT" ]; then
  echo "not in a private mount namespace; refusing to mount anything" >&2
  exit 99
fi
shadowed=" "
declare -A fresh
shadow() {
  local dir=$1 keep entry name
  case "$shadowed" in *" $dir "*) return ;; esac
  keep=$(mktemp -d "$NS_WORK/keep.XXXXXX")
  mount --rbind "$dir" "$keep"
  mount -t tmpfs ap-persist-test "$dir"
  for entry in "$keep"/* "$keep"/.[!.]*; do
    [ -e "$entry" ] || [ -L "$entry" ] || continue
    name=\${entry##*/}
    if [ -L "$entry" ]; then cp -P "$entry" "$dir/$name"
    elif [ -d "$entry" ]; then mkdir "$dir/$name"; mount --rbind "$entry" "$dir/$name"
    else touch "$dir/$name"; mount --bind "$entry" "$dir/$name"
    fi
  done
  shadowed="$shadowed$dir "
}
fresh_dir() {
  local dir=$1 parent=\${1%/*}
  if [ ! -d "$dir" ]; then
    if [ -d "$parent" ]; then shadow "$parent"; else fresh_dir "$parent"; fi
    [ "$(stat -f -c %T "$parent")" = tmpfs ] || { echo "refusing to create $dir outside a tmpfs" >&2; exit 98; }
    mkdir "$dir"
  fi
  mount -t tmpfs ap-persist-test "$dir"
  fresh[$dir]=$(stat -c %d "$dir")
}
check_fresh() {
  local dir
  for dir in "\${!fresh[@]}"; do
    [ "$(stat -c %d "$dir")" = "\${fresh[$dir]}" ] || { echo "$dir is no longer the test's tmpfs" >&2; exit 97; }
  done
}
# step NAME CMD...: runs CMD, keeping its exit code and output in $NS_OUT/NAME.{rc,out,err}.
step() {
  local name=$1 rc=0
  shift
  check_fresh
  "$@" >"$NS_OUT/$name.out" 2>"$NS_OUT/$name.err" || rc=$?
  echo "$rc" >"$NS_OUT/$name.rc"
}
`;

export interface NamespaceRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `body` (bash, after the helpers above) in a private mount namespace.
 * `work` is a host directory for the script and its keep mounts; steps write
 * their results to `out`.
 */
export function runInNamespace(body: string, work: string, out: string, timeoutMs = 60_000): Promise<NamespaceRun> {
  const script = join(work, 'namespace.sh');
  writeFileSync(script, `${PRELUDE}\n${body}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', ['-m', '--propagation', 'private', 'bash', script], {
      env: { ...process.env, NS_WORK: work, NS_OUT: out, NS_HOST_MNT: readlinkSync('/proc/self/ns/mnt') },
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
