// Runs real host tools (mdevctl, udevadm) against synthetic system files: a
// bash script in a private mount namespace (`unshare -m --propagation
// private`), where tmpfs mounts hide the real /sys, /etc/... and /run/lock.
// Nothing mounted or written there reaches the host, and it all goes away
// when the script ends. Needs root (or the right capabilities) and unshare.

import { itWith, MOUNT_NAMESPACE, requireTools, runInMountNamespace, type ScriptRun } from './real-tools.js';

/** Why these tools or a private mount namespace are not available here; undefined when they are. */
export function missingTools(tools: readonly string[]): string | undefined {
  return requireTools(...tools, MOUNT_NAMESPACE).missing;
}

/**
 * it() for a test that needs `tools` and a private mount namespace: skipped
 * with the reason in its name where they are missing; with
 * AP_PERSIST_REQUIRE_TOOLS=1 (CI) it fails instead.
 */
export function itWithTools(name: string, tools: readonly string[], fn: () => Promise<void>, timeoutMs?: number): void {
  itWith(requireTools(...tools, MOUNT_NAMESPACE), name, fn, timeoutMs);
}

/**
 * bash helpers for the script: `fresh_dir DIR` mounts an empty tmpfs on DIR.
 * When DIR does not exist its parent is first shadowed, so that not even an
 * empty directory is created on the host: an overlay whose upper layer is a
 * tmpfs (what is written there stays in the namespace) with the mounts that
 * were below the parent (earlier fresh dirs among them) bound back in place;
 * where no overlay can be mounted, a tmpfs holding recursive bind mounts of
 * the parent's entries (a mount each: about a second for /etc, where the
 * overlay takes a hundredth of that). Before each `step` every fresh dir is
 * checked to still be its own tmpfs, so no command ever runs against a host
 * directory. The script refuses to start in the mount namespace of the test
 * that launched it.
 */
const PRELUDE = `shadowed=" "
declare -A fresh overlay
# The mount points below DIR, the top-most of each tree (mountinfo's field 5, escapes undone).
mounts_below() {
  local dir=$1 mp last=
  while read -r _ _ _ _ mp _; do
    printf -v mp '%b' "$mp"
    case "$mp" in "$dir"/*) echo "$mp" ;; esac
  done </proc/self/mountinfo | sort -u | while read -r mp; do
    if [ -n "$last" ]; then case "$mp" in "$last"/*) continue ;; esac; fi
    echo "$mp"
    last=$mp
  done
}
shadow() {
  local dir=$1 keep layers mp entry name
  case "$shadowed" in *" $dir "*) return ;; esac
  keep=$(mktemp -d "$NS_WORK/keep.XXXXXX")
  mount --rbind "$dir" "$keep"
  layers=$(mktemp -d "$NS_WORK/layers.XXXXXX")
  mount -t tmpfs ap-persist-test "$layers"
  mkdir "$layers/upper" "$layers/work"
  if mount -t overlay ap-persist-test -o "lowerdir=$keep,upperdir=$layers/upper,workdir=$layers/work" "$dir" 2>/dev/null; then
    overlay[$dir]=$(stat -c %d "$dir")
    # An overlay shows its lower directory's own files, not what is mounted below it.
    mounts_below "$keep" | while read -r mp; do mount --rbind "$mp" "$dir/\${mp#"$keep"/}"; done
    shadowed="$shadowed$dir "
    return
  fi
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
    [ "$(stat -f -c %T "$parent")" = tmpfs ] || [ "$(stat -c %d "$parent")" = "\${overlay[$parent]-}" ] || { echo "refusing to create $dir outside a tmpfs" >&2; exit 98; }
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

export type NamespaceRun = ScriptRun;

/**
 * Runs `body` (bash, after the helpers above) in a private mount namespace.
 * `work` is a host directory for the script and its keep mounts; steps write
 * their results to `out`.
 */
export function runInNamespace(body: string, work: string, out: string, timeoutMs = 60_000): Promise<NamespaceRun> {
  return runInMountNamespace(`${PRELUDE}\n${body}`, timeoutMs, { NS_WORK: work, NS_OUT: out });
}

/** vfio_ap's mdev type directory, as mdevctl looks for it. */
export const VFIO_AP_TYPE_DIR = '/sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough';

/**
 * Script lines for a /sys that mdevctl accepts as a vfio_ap host: the fake
 * root's sys/ (`root`), and the mdev core's parts mdevctl looks at (the
 * matrix parent in mdev_bus, the type's name, API and instances).
 */
export function mdevSysfsScript(root: string): string {
  return `fresh_dir /sys
cp -a ${root}/sys/. /sys/
mkdir -p ${VFIO_AP_TYPE_DIR} /sys/class/mdev_bus /sys/bus/mdev/devices
ln -s ../../devices/vfio_ap/matrix /sys/class/mdev_bus/matrix
echo 65535 >${VFIO_AP_TYPE_DIR}/available_instances
echo 'VFIO AP Passthrough Device' >${VFIO_AP_TYPE_DIR}/name
echo vfio-ap >${VFIO_AP_TYPE_DIR}/device_api`;
}
