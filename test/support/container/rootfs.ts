// The Debian tree the containers boot from. Built once with debootstrap and
// cached outside the checkout (a build takes about 40 s), never modified by a
// boot (each boot gets its own writable overlay). It is built into a temp
// directory and renamed into place when complete, under a lock, so a
// half-built tree is never used and concurrent test files build it once. A
// stamp with the recipe makes a changed package list rebuild it.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isAlive, mustSucceed, runCommand } from './process.js';

export const DEFAULT_ROOTFS = '/var/cache/ap-persist-test/debian-bookworm';
/** Overrides where the tree is cached. */
export const ROOTFS_ENV = 'AP_PERSIST_TEST_ROOTFS';
/** Overrides the Debian mirror (else the first apt source that serves the suite). */
export const MIRROR_ENV = 'AP_PERSIST_TEST_MIRROR';

const SUITE = 'bookworm';
// systemd as PID 1 (systemd-sysv), udevadm, mdevctl; dbus because systemd-run
// --wait/--pipe needs the system bus (systemctl alone does not); libstdc++6 for
// the host's node binary that is bind-mounted in; procps (ps, pgrep) and kmod
// (modprobe) as on a real host; fuse3 for FUSE-backed fake sysfs.
export const PACKAGES = ['systemd', 'systemd-sysv', 'udev', 'dbus', 'mdevctl', 'libstdc++6', 'fuse3', 'procps', 'kmod'] as const;
// Bump when the steps after debootstrap change.
const RECIPE_VERSION = 2;
const STAMP = '.ap-persist-test-rootfs.json';
const BUILD_TIMEOUT_MS = 15 * 60_000;

export interface Rootfs {
  path: string;
  /** True when this call built it. */
  built: boolean;
  /** How long the build took (0 when it was cached). */
  buildMs: number;
}

function recipe(): string {
  return JSON.stringify({ recipe: RECIPE_VERSION, suite: SUITE, variant: 'minbase', packages: [...PACKAGES].sort() });
}

export function rootfsPath(): string {
  return process.env[ROOTFS_ENV] || DEFAULT_ROOTFS;
}

function isCurrent(path: string): boolean {
  try {
    return readFileSync(join(path, STAMP), 'utf8') === recipe();
  } catch {
    return false;
  }
}

/** The stamp file: anything in the tree newer than it was changed after the build. */
export function rootfsStamp(path: string): string {
  return join(path, STAMP);
}

/** One enabled `deb` entry of the machine's apt sources. */
export interface AptSource {
  uri: string;
  suites: string[];
  /** The keyring its Signed-By names, when it names a file. */
  signedBy: string | undefined;
}

/**
 * The machine's enabled `deb` sources, in apt's order: deb822 `.sources`
 * files, then one-line `.list` files (`/etc/apt/sources.list` first).
 */
export function aptSources(): AptSource[] {
  const sources: AptSource[] = [];
  const dir = '/etc/apt/sources.list.d';
  const files = existsSync(dir) ? readdirSync(dir).sort().map((f) => join(dir, f)) : [];
  for (const file of files.filter((f) => f.endsWith('.sources'))) {
    for (const stanza of readFileSync(file, 'utf8').split(/\n\s*\n/)) {
      const field = (name: string): string[] => {
        const m = new RegExp(`^${name}:[ \\t]*(.*)$`, 'mi').exec(stanza);
        return m ? m[1]!.trim().split(/\s+/).filter(Boolean) : [];
      };
      if (!field('Types').includes('deb') || field('Enabled')[0]?.toLowerCase() === 'no') continue;
      const uri = field('URIs')[0];
      const signedBy = field('Signed-By')[0];
      if (uri) sources.push({ uri, suites: field('Suites'), signedBy: signedBy?.startsWith('/') ? signedBy : undefined });
    }
  }
  for (const file of ['/etc/apt/sources.list', ...files.filter((f) => f.endsWith('.list'))]) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      // deb [options] URI suite component...
      const m = /^\s*deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)/.exec(line);
      if (!m) continue;
      const signedBy = /(?:^|\s)signed-by=(\S+)/.exec(m[1] ?? '')?.[1];
      sources.push({ uri: m[2]!, suites: [m[3]!], signedBy: signedBy?.startsWith('/') ? signedBy : undefined });
    }
  }
  return sources;
}

/**
 * The mirror for debootstrap, from the machine's own apt sources (deb822
 * `.sources` files, then one-line `.list` files): the first URI of an enabled
 * `deb` entry that lists the suite.
 */
export function debianMirror(suite = SUITE): string {
  const override = process.env[MIRROR_ENV];
  if (override) return override;
  const source = aptSources().find((s) => s.suites.includes(suite));
  if (source) return source.uri;
  throw new Error(`no apt source of this machine serves Debian ${suite}; set ${MIRROR_ENV} to a Debian mirror`);
}

/** The machine's own Debian release (VERSION_CODENAME of /etc/os-release), else the containers' suite. */
function ownSuite(): string {
  try {
    return /^VERSION_CODENAME=["']?([^"'\n]+)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? SUITE;
  } catch {
    return SUITE;
  }
}

/**
 * The Debian archive to fetch `suite` from, for a suite this machine need
 * not have in its sources (say forky on a bookworm host): the apt source that
 * lists the suite, else the one this machine's own release comes from (a
 * Debian archive serves every suite). `keyring` is that source's Signed-By
 * file, if any. AP_PERSIST_TEST_MIRROR overrides the URI.
 */
export function debianArchive(suite: string): { uri: string; keyring: string | undefined } {
  const override = process.env[MIRROR_ENV];
  if (override) return { uri: override, keyring: undefined };
  const sources = aptSources();
  const source = sources.find((s) => s.suites.includes(suite)) ?? sources.find((s) => s.suites.includes(ownSuite()));
  if (source) return { uri: source.uri, keyring: source.signedBy };
  throw new Error(`no apt source of this machine serves Debian ${suite} or ${ownSuite()}; set ${MIRROR_ENV} to a Debian mirror`);
}

/**
 * Holds an exclusive flock(1) on `file` while the returned release function
 * has not been called. The lock belongs to a child process that exits when
 * its stdin closes, so it is released even when this process is killed.
 */
async function lock(file: string, timeoutMs: number): Promise<() => Promise<void>> {
  const child = spawn('flock', ['-x', '-w', String(Math.ceil(timeoutMs / 1000)), file, 'sh', '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
  const locked = await new Promise<boolean>((resolve, reject) => {
    child.on('error', reject);
    child.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && resolve(true));
    void exited.then(() => resolve(false));
  });
  if (!locked) throw new Error(`could not lock ${file} within ${timeoutMs} ms: ${stderr.trim()}`);
  return async () => {
    child.stdin.end();
    await exited;
  };
}

/** Mount points at or below `path` in this process's mount namespace. */
export function mountsUnder(path: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => m !== undefined && (m === path || m.startsWith(`${path}/`)));
}

/** Removes a directory tree, refusing when anything is mounted in it. */
export function removeTree(path: string): void {
  const mounted = mountsUnder(path);
  if (mounted.length) throw new Error(`refusing to remove ${path}: mounted inside: ${mounted.join(', ')}`);
  rmSync(path, { recursive: true, force: true });
}

async function build(target: string, log: string): Promise<void> {
  const mirror = debianMirror();
  // In a private mount namespace: debootstrap mounts /proc and /sys inside
  // the target, and those mounts must vanish with it even if it is killed.
  // It dies with this process (pdeathsig), so no orphan writes on.
  const r = await runCommand(
    [
      'setpriv', '--pdeathsig', 'KILL', 'unshare', '-m', '--propagation', 'private',
      'debootstrap', '--variant=minbase', `--include=${PACKAGES.join(',')}`, SUITE, target, mirror,
    ],
    { timeoutMs: BUILD_TIMEOUT_MS, env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' } },
  );
  writeFileSync(log, `${r.stdout}\n${r.stderr}`);
  mustSucceed(`debootstrap ${SUITE} from ${mirror} (log: ${log})`, r);
  // The downloaded packages are not needed to boot.
  const archives = join(target, 'var/cache/apt/archives');
  for (const f of readdirSync(archives)) if (f.endsWith('.deb')) rmSync(join(archives, f));
  // An empty machine-id makes every boot generate its own, so containers
  // booted from the same tree never share one.
  truncateSync(join(target, 'etc/machine-id'), 0);
  // debootstrap copies these from the build host; without them the
  // container's hostname is its machine name, and it knows no host's network.
  for (const f of ['etc/hostname', 'etc/resolv.conf']) rmSync(join(target, f), { force: true });
  writeFileSync(join(target, STAMP), recipe());
}

/**
 * The cached tree, built first when missing or built from another recipe.
 * Waits for a build that another process is doing.
 */
export async function ensureRootfs(opts: { path?: string; lockTimeoutMs?: number } = {}): Promise<Rootfs> {
  const path = opts.path ?? rootfsPath();
  if (isCurrent(path)) return { path, built: false, buildMs: 0 };
  const parent = dirname(path);
  const name = basename(path);
  mkdirSync(parent, { recursive: true });
  const release = await lock(join(parent, `${name}.lock`), opts.lockTimeoutMs ?? BUILD_TIMEOUT_MS + 60_000);
  try {
    if (isCurrent(path)) return { path, built: false, buildMs: 0 };
    // Builds that died half-way (their process is gone; we hold the lock).
    for (const entry of readdirSync(parent)) {
      const m = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(?:build|old)-(\\d+)-`).exec(entry);
      if (m && !isAlive(Number(m[1]))) removeTree(join(parent, entry));
    }
    const started = Date.now();
    const tmp = mkdtempSync(join(parent, `${name}.build-${process.pid}-`));
    try {
      await build(tmp, join(parent, `${name}.build.log`));
      if (existsSync(path)) {
        const old = mkdtempSync(join(parent, `${name}.old-${process.pid}-`));
        renameSync(path, join(old, 'tree'));
        renameSync(tmp, path);
        removeTree(old);
      } else {
        renameSync(tmp, path);
      }
    } catch (e) {
      removeTree(tmp);
      throw e;
    }
    return { path, built: true, buildMs: Date.now() - started };
  } finally {
    await release();
  }
}
