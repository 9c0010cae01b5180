// The Debian tree the package tests boot: the containers' cached tree
// (container/rootfs.ts) plus what an admin's host has that a package test
// needs, and a local apt archive, so that `apt install ./ap-persist.deb`
// resolves and installs Debian's nodejs offline, as it would from a mirror:
// - man-db and bash-completion installed (`man ap-persist`, completion);
// - nodejs and every package it needs that the tree lacks, downloaded from
//   Debian (never installed: the test's apt installs them as dependencies),
//   in /srv/ap-persist-test-archive with a Packages index;
// - /etc/apt/sources.list naming only that archive, its lists fetched.
// Built once (network needed then, about a minute) and cached beside the
// base tree, outside the checkout; built in a temp directory and renamed
// into place when complete; a stamp with the recipe and the base tree's own
// stamp makes a changed recipe or a rebuilt base tree rebuild it.

import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ensureRootfs, rootfsStamp } from './container/index.js';
import { isAlive, mustSucceed, runCommand } from './container/process.js';
import { removeTree } from './container/rootfs.js';

/** Installed into the tree. */
export const EXTRA_PACKAGES = ['man-db', 'bash-completion'] as const;
/** Downloaded into the tree's archive with what they need, for apt to install from there. */
export const ARCHIVE_PACKAGES = ['nodejs'] as const;
/** The archive inside the tree, and the apt source naming it. */
export const ARCHIVE_DIR = '/srv/ap-persist-test-archive';
const SOURCES = `deb [trusted=yes] file:${ARCHIVE_DIR} ./\n`;
// Bump when the steps change.
const RECIPE_VERSION = 2;
const STAMP = '.ap-persist-test-package-rootfs.json';
const BUILD_TIMEOUT_MS = 10 * 60_000;
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function recipe(base: string): string {
  return JSON.stringify({ recipe: RECIPE_VERSION, extra: EXTRA_PACKAGES, archive: ARCHIVE_PACKAGES, base: readFileSync(rootfsStamp(base), 'utf8') });
}

function isCurrent(path: string, base: string): boolean {
  try {
    return readFileSync(join(path, STAMP), 'utf8') === recipe(base);
  } catch {
    return false;
  }
}

/**
 * Runs a shell script as root in a private mount namespace (its mounts go
 * with it), killed with this process. $T is the tree.
 */
async function inNamespace(tree: string, script: string, what: string, log: string[]): Promise<void> {
  const r = await runCommand(['setpriv', '--pdeathsig', 'KILL', 'unshare', '-m', '--propagation', 'private', 'sh', '-euc', script, 'sh'], {
    timeoutMs: BUILD_TIMEOUT_MS,
    env: { PATH, LANG: 'C.UTF-8', T: tree },
  });
  log.push(`== ${what}\n${r.stdout}\n${r.stderr}`);
  mustSucceed(what, r);
}

/** apt-get in the tree (chroot), with /proc, /dev and name resolution, starting no service. */
function chrootApt(commands: string[]): string {
  return `
mount -t proc proc "$T/proc"
mount --rbind /dev "$T/dev"
mount -t tmpfs tmpfs "$T/run"
mount -t tmpfs tmpfs "$T/tmp"
cp -L /etc/resolv.conf "$T/etc/resolv.conf" 2>/dev/null || :
printf '#!/bin/sh\\nexit 101\\n' > "$T/usr/sbin/policy-rc.d"
chmod 755 "$T/usr/sbin/policy-rc.d"
chroot "$T" env -i PATH=${PATH} LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive sh -euc '${commands.join('\n')}'
rm -f "$T/usr/sbin/policy-rc.d" "$T/etc/resolv.conf"
`;
}

/** A Packages index of the .debs in dir (what dpkg-scanpackages writes, from dpkg-deb's fields). */
async function writePackagesIndex(dir: string): Promise<void> {
  const stanzas: string[] = [];
  for (const deb of readdirSync(dir).filter((f) => f.endsWith('.deb')).sort()) {
    const path = join(dir, deb);
    const r = mustSucceed(`dpkg-deb -f ${deb}`, await runCommand(['dpkg-deb', '-f', path], { env: { PATH } }));
    const data = readFileSync(path);
    const sum = (algo: string): string => createHash(algo).update(data).digest('hex');
    stanzas.push(`${r.stdout.trimEnd()}\nFilename: ./${deb}\nSize: ${statSync(path).size}\nMD5sum: ${sum('md5')}\nSHA256: ${sum('sha256')}\n`);
  }
  writeFileSync(join(dir, 'Packages'), stanzas.join('\n'));
}

async function build(base: string, tmp: string, logFile: string): Promise<void> {
  const log: string[] = [];
  try {
    mustSucceed('copying the base tree', await runCommand(['cp', '-a', '--reflink=auto', `${base}/.`, `${tmp}/`], { timeoutMs: BUILD_TIMEOUT_MS, env: { PATH } }));
    // A root directory as on a real system (the base tree's is its build's mkdtemp, 0700), so that
    // what drops privileges in the chroot (apt's _apt, mandb's man) can reach its files.
    chmodSync(tmp, 0o755);
    const archives = '/var/cache/apt/archives';
    await inNamespace(
      tmp,
      chrootApt([
        'apt-get update -q',
        `apt-get install -q -y --no-install-recommends ${EXTRA_PACKAGES.join(' ')}`,
        'apt-get clean',
        `apt-get install -q -y --no-install-recommends --download-only ${ARCHIVE_PACKAGES.join(' ')}`,
      ]),
      'installing and downloading from Debian',
      log,
    );
    const archive = join(tmp, ARCHIVE_DIR);
    mkdirSync(archive, { recursive: true });
    const debs = readdirSync(join(tmp, archives)).filter((f) => f.endsWith('.deb'));
    if (!debs.some((f) => f.startsWith('nodejs_'))) throw new Error(`apt downloaded no nodejs into ${archives}: ${debs.join(', ')}`);
    for (const f of debs) renameSync(join(tmp, archives, f), join(archive, f));
    await writePackagesIndex(archive);
    // Only the local archive from now on: the containers have no network.
    rmSync(join(tmp, 'etc/apt/sources.list.d'), { recursive: true, force: true });
    mkdirSync(join(tmp, 'etc/apt/sources.list.d'));
    writeFileSync(join(tmp, 'etc/apt/sources.list'), SOURCES);
    await inNamespace(tmp, chrootApt(['apt-get update -q', 'apt-get clean']), 'indexing the local archive', log);
    writeFileSync(join(tmp, STAMP), recipe(base));
  } finally {
    writeFileSync(logFile, log.join('\n'));
  }
}

export interface PackageRootfs {
  path: string;
  /** True when this call built it. */
  built: boolean;
  buildMs: number;
}

/**
 * The cached tree, built first when missing or stale. Concurrent builders
 * each build their own; the first to finish wins, the others use its tree.
 */
export async function ensurePackageRootfs(): Promise<PackageRootfs> {
  const base = (await ensureRootfs()).path;
  const path = `${base}-package`;
  if (isCurrent(path, base)) return { path, built: false, buildMs: 0 };
  const parent = dirname(path);
  const name = basename(path);
  // Builds that died half-way.
  for (const entry of readdirSync(parent)) {
    const m = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(?:build|old)-(\\d+)-`).exec(entry);
    if (m && !isAlive(Number(m[1]))) removeTree(join(parent, entry));
  }
  const started = Date.now();
  const tmp = mkdtempSync(join(parent, `${name}.build-${process.pid}-`));
  try {
    await build(base, tmp, join(parent, `${name}.build.log`));
    if (existsSync(path)) {
      if (isCurrent(path, base)) {
        removeTree(tmp);
        return { path, built: false, buildMs: 0 };
      }
      const old = mkdtempSync(join(parent, `${name}.old-${process.pid}-`));
      renameSync(path, join(old, 'tree'));
      removeTree(old);
    }
    renameSync(tmp, path);
  } catch (e) {
    if (existsSync(tmp)) removeTree(tmp);
    throw e;
  }
  return { path, built: true, buildMs: Date.now() - started };
}
