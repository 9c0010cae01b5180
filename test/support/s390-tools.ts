// The real s390-tools peers chzdev and lszdev (zdev), run on any machine:
// Debian's s390x binaries under qemu-user (qemu-s390x-static -L SYSROOT).
//
// Nothing of s390-tools is in this repository. At test-setup time the s390x
// packages are fetched from the Debian archive this machine's apt sources
// name (AP_PERSIST_TEST_MIRROR overrides it): the suite's InRelease is
// checked with gpgv against the archive keyring, Packages.xz against
// InRelease, each .deb against Packages. s390-tools comes from the first of
// SUITES that has it; the libraries are the ones its binaries' ELF NEEDED
// entries name, found in the same index. The .debs are unpacked with
// `dpkg-deb -x` (never installed) into a sysroot cached outside the checkout,
// /var/cache/ap-persist-test/s390-tools-VERSION-s390x/, built in a temp
// directory and renamed into place when complete. A cached sysroot is used
// without asking the network; AP_PERSIST_TEST_S390_REFRESH=1 looks again.
//
// Every run happens in a private mount namespace (test/support/namespace.ts):
// libap takes its lock in /run/lock/s390apconfig.lock whatever --base says,
// so /run, /sys, /etc/udev/rules.d and /etc/mdevctl.d are the test's own
// there (tmpfs), and the sysroot is mounted read-only. (Debian does not
// package ap-check, the mdevctl callout, in any suite.) chzdev
// always gets --no-settle --no-root-update and (2.39 and later)
// --no-module-load: under qemu-user the commands it would start (modprobe,
// udevadm, zdev-root-update) are the HOST's, run natively. The guest's PATH
// is empty for the same reason.

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, posix, resolve } from 'node:path';
import { debianArchive } from './container/rootfs.js';
import { isAlive } from './container/process.js';
import { tempDir } from './host.js';
import { runInNamespace } from './namespace.js';
import { MOUNT_NAMESPACE, requireTools } from './real-tools.js';

/** Suites to take s390-tools from, first that has it. */
export const SUITES = ['forky', 'trixie'] as const;
/** Overrides SUITES (comma-separated), e.g. trixie to test against 2.35. */
export const SUITES_ENV = 'AP_PERSIST_TEST_S390_SUITES';
export const DEFAULT_CACHE = '/var/cache/ap-persist-test';
/** Overrides the directory the sysroots are cached in. */
export const CACHE_ENV = 'AP_PERSIST_TEST_S390_CACHE';
/** Set to 1 to look up the suites' current s390-tools even when one is cached. */
export const REFRESH_ENV = 'AP_PERSIST_TEST_S390_REFRESH';
export const QEMU = 'qemu-s390x-static';

const ARCH = 's390x';
const TRIPLET = 's390x-linux-gnu';
// Bump when the steps of a build change.
const RECIPE_VERSION = 4;
const STAMP = '.ap-persist-test-s390-tools.json';
export const DEFAULT_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
const FETCH_TIMEOUT_MS = 120_000;

/** The programs, as paths in the package (upstream's install locations). */
const CHZDEV = 'usr/sbin/chzdev';
const LSZDEV = 'usr/sbin/lszdev';

export interface ToolRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface S390Tools {
  /** s390-tools' Debian version, e.g. 2.40.0-4. */
  version: string;
  suite: string;
  sysroot: string;
  /** True when this process built the sysroot, and how long that took. */
  built: boolean;
  buildMs: number;
  /** chzdev ARGS --base ROOT --no-settle [--no-module-load] --no-root-update, SYSFS_ROOT=ROOT/sys. */
  chzdev(root: string, args: readonly string[]): Promise<ToolRun>;
  /** lszdev ARGS --base ROOT, SYSFS_ROOT=ROOT/sys. */
  lszdev(root: string, args: readonly string[]): Promise<ToolRun>;
}

interface Stamp {
  recipe: number;
  /** The suites it was looked up in (SUITES or the override), and the one that had it. */
  suites: string[];
  suite: string;
  archive: string;
  version: string;
  packages: Record<string, { version: string; sha256: string }>;
  programs: string[];
  /** chzdev knows --no-module-load (2.39 and later). */
  noModuleLoad: boolean;
}

// ---- the Debian archive ---------------------------------------------------------

interface PackageEntry {
  name: string;
  version: string;
  filename: string;
  sha256: string;
}

/** A download that failed (no network, an HTTP error): the archive could not be asked, not a failed check. */
export class FetchError extends Error {}

export async function download(url: string): Promise<Buffer> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  } catch (e) {
    throw new FetchError(`cannot fetch ${url}: ${(e as Error).cause ?? (e as Error).message}`);
  }
  if (!res.ok) throw new FetchError(`cannot fetch ${url}: HTTP ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** A single-line field of a Debian control stanza. */
export const stanzaField = (stanza: string, name: string): string | undefined => new RegExp(`^${name}: *(.*)$`, 'm').exec(stanza)?.[1]?.trim();

/**
 * One xz-compressed index of the suite (e.g. main/source/Sources.xz), as
 * text, verified: InRelease by gpgv against the keyring, the index by the
 * SHA256 the signed part of InRelease gives for it.
 */
export async function verifiedIndex(archive: string, keyring: string, suite: string, indexPath: string, work: string): Promise<string> {
  const base = archive.replace(/\/+$/, '');
  const inRelease = join(work, `${suite}.InRelease`);
  writeFileSync(inRelease, await download(`${base}/dists/${suite}/InRelease`));
  const gpgv = spawnSync('gpgv', ['--keyring', keyring, '--output', '-', inRelease], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (gpgv.status !== 0) throw new Error(`${base}/dists/${suite}/InRelease: bad or unknown signature (gpgv, keyring ${keyring}): ${gpgv.stderr.trim()}`);
  // Only the signed text counts.
  const sums = /^SHA256:\n((?:[ \t].*\n?)*)/m.exec(gpgv.stdout)?.[1] ?? '';
  const line = sums.split('\n').find((l) => l.trim().split(/\s+/)[2] === indexPath);
  if (!line) throw new Error(`${base}/dists/${suite}/InRelease lists no ${indexPath}`);
  const [wantSum] = line.trim().split(/\s+/);
  const xz = await download(`${base}/dists/${suite}/${indexPath}`);
  if (sha256(xz) !== wantSum) throw new Error(`${base}/dists/${suite}/${indexPath}: SHA256 differs from InRelease`);
  const xzFile = join(work, `${suite}.${indexPath.replace(/\//g, '_')}`);
  writeFileSync(xzFile, xz);
  return execFileSync('xz', ['-dc', xzFile], { maxBuffer: 1 << 30 }).toString('utf8');
}

/** The suite's s390x package index, verified: InRelease by gpgv, Packages.xz by InRelease. */
async function packageIndex(archive: string, keyring: string, suite: string, work: string): Promise<Map<string, PackageEntry>> {
  const text = await verifiedIndex(archive, keyring, suite, `main/binary-${ARCH}/Packages.xz`, work);
  const index = new Map<string, PackageEntry>();
  for (const stanza of text.split(/\n\n+/)) {
    const field = (name: string): string | undefined => stanzaField(stanza, name);
    const name = field('Package');
    const version = field('Version');
    const filename = field('Filename');
    const sum = field('SHA256');
    if (!name || !version || !filename || !sum || field('Architecture') !== ARCH) continue;
    if (!index.has(name)) index.set(name, { name, version, filename, sha256: sum });
  }
  return index;
}

async function fetchDeb(archive: string, entry: PackageEntry, work: string): Promise<string> {
  const data = await download(`${archive.replace(/\/+$/, '')}/${entry.filename}`);
  if (sha256(data) !== entry.sha256) throw new Error(`${entry.filename}: SHA256 differs from the Packages index`);
  const file = join(work, posix.basename(entry.filename));
  writeFileSync(file, data);
  return file;
}

function unpack(deb: string, into: string): void {
  const r = spawnSync('dpkg-deb', ['-x', deb, into], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dpkg-deb -x ${deb}: ${r.stderr.trim() || `exit ${r.status}`}`);
}

// ---- ELF: what a binary needs ----------------------------------------------------

/** DT_NEEDED entries and PT_INTERP of an ELF64 file (either byte order). */
export function elfNeeds(file: string): { needed: string[]; interpreter: string | undefined } {
  const fd = openSync(file, 'r');
  try {
    const size = statSync(file).size;
    const buf = Buffer.alloc(size);
    readSync(fd, buf, 0, size, 0);
    if (buf.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file} is not an ELF file`);
    if (buf[4] !== 2) throw new Error(`${file} is not a 64-bit ELF file`);
    const be = buf[5] === 2;
    const u16 = (o: number): number => (be ? buf.readUInt16BE(o) : buf.readUInt16LE(o));
    const u32 = (o: number): number => (be ? buf.readUInt32BE(o) : buf.readUInt32LE(o));
    const u64 = (o: number): number => Number(be ? buf.readBigUInt64BE(o) : buf.readBigUInt64LE(o));
    const cstr = (o: number): string => buf.toString('latin1', o, buf.indexOf(0, o));
    let interpreter: string | undefined;
    const phoff = u64(0x20);
    for (let i = 0; i < u16(0x38); i++) {
      const ph = phoff + i * u16(0x36);
      if (u32(ph) === 3 /* PT_INTERP */) interpreter = cstr(u64(ph + 8));
    }
    const needed: string[] = [];
    const shoff = u64(0x28);
    const shentsize = u16(0x3a);
    for (let i = 0; i < u16(0x3c); i++) {
      const sh = shoff + i * shentsize;
      if (u32(sh + 4) !== 6 /* SHT_DYNAMIC */) continue;
      const strtab = u64(shoff + u32(sh + 40) * shentsize + 24);
      for (let d = u64(sh + 24), end = d + u64(sh + 32); d < end; d += 16) {
        const tag = u64(d);
        if (tag === 0) break;
        if (tag === 1 /* DT_NEEDED */) needed.push(cstr(strtab + u64(d + 8)));
      }
    }
    return { needed, interpreter };
  } finally {
    closeSync(fd);
  }
}

const LIB_DIRS = [`usr/lib/${TRIPLET}`, `lib/${TRIPLET}`, 'usr/lib', 'lib', 'usr/lib64', 'lib64'];

/** The file a path in the sysroot names, its symlinks resolved inside the sysroot. */
function inSysroot(sysroot: string, path: string): string | undefined {
  let rel = path.replace(/^\/+/, '');
  for (let hops = 0; hops < 40; hops++) {
    const parts = rel.split('/');
    let resolved = '';
    let changed = false;
    for (let i = 0; i < parts.length; i++) {
      const next = resolved ? `${resolved}/${parts[i]}` : parts[i]!;
      let st;
      try {
        st = lstatSync(join(sysroot, next));
      } catch {
        return undefined;
      }
      if (st.isSymbolicLink()) {
        const target = readlinkSync(join(sysroot, next));
        // Absolute targets and .. above the top stay inside the sysroot.
        const base = target.startsWith('/') ? target : posix.normalize(posix.join('/', resolved, target));
        rel = [base, ...parts.slice(i + 1)].join('/').replace(/^\/+/, '');
        changed = true;
        break;
      }
      resolved = next;
    }
    if (!changed) return join(sysroot, resolved);
  }
  return undefined;
}

function findLibrary(sysroot: string, soname: string): string | undefined {
  for (const dir of LIB_DIRS) {
    const file = inSysroot(sysroot, `${dir}/${soname}`);
    if (file) return file;
  }
  return undefined;
}

/** Debian's names for the package that ships a shared library (Policy 8.1): libfoo.so.1 → libfoo1, libfoo2.so.3 → libfoo2-3, and the t64 variants. */
function packageNamesFor(soname: string): string[] {
  const m = /^(.*)\.so\.(.+)$/.exec(soname);
  if (!m) return [];
  const stem = m[1]!.toLowerCase().replace(/_/g, '-');
  const name = /\d$/.test(stem) ? `${stem}-${m[2]}` : `${stem}${m[2]}`;
  return [name, `${name}t64`];
}

// ---- the cached sysroot ----------------------------------------------------------

export function suites(): string[] {
  const override = process.env[SUITES_ENV]?.split(',').map((s) => s.trim()).filter(Boolean);
  return override?.length ? override : [...SUITES];
}

export function cacheDir(): string {
  return process.env[CACHE_ENV] || DEFAULT_CACHE;
}

/** A build's stamp file in DIR, when it is there and of the current recipe. */
export function readStampFile<S extends { recipe: number }>(dir: string, file: string, recipe: number): S | undefined {
  try {
    const stamp = JSON.parse(readFileSync(join(dir, file), 'utf8')) as S;
    return stamp.recipe === recipe ? stamp : undefined;
  } catch {
    return undefined;
  }
}

/** The complete builds in the cache whose directory name matches and whose stamp is `wanted`, the newest first. */
export function cachedBuilds<S>(name: RegExp, stampOf: (dir: string) => S | undefined, stampFile: string, wanted: (stamp: S) => boolean): { dir: string; stamp: S }[] {
  const parent = cacheDir();
  if (!existsSync(parent)) return [];
  const found: { dir: string; stamp: S; mtime: number }[] = [];
  for (const entry of readdirSync(parent)) {
    if (!name.test(entry)) continue;
    const dir = join(parent, entry);
    const stamp = stampOf(dir);
    if (stamp && wanted(stamp)) found.push({ dir, stamp, mtime: statSync(join(dir, stampFile)).mtimeMs });
  }
  return found.sort((a, b) => b.mtime - a.mtime).map(({ dir, stamp }) => ({ dir, stamp }));
}

/**
 * A fresh temp directory in the cache for a build, PREFIX.build-PID-XXXXXX;
 * first the leftovers of PREFIX builds whose process is gone are removed.
 */
export function startBuild(prefix: string): { parent: string; tmp: string } {
  const parent = cacheDir();
  mkdirSync(parent, { recursive: true });
  // PREFIX is a plain name (letters, digits, dashes).
  const leftover = new RegExp(`^${prefix}\\.build-(\\d+)-`);
  for (const entry of readdirSync(parent)) {
    const m = leftover.exec(entry);
    if (m && !isAlive(Number(m[1]))) rmSync(join(parent, entry), { recursive: true, force: true });
  }
  return { parent, tmp: mkdtempSync(join(parent, `${prefix}.build-${process.pid}-`)) };
}

/**
 * Renames a finished build to DIR. When another process finished the same
 * build first, theirs is used, unless `current(dir)` says it is an old or
 * broken one: then it is replaced.
 */
export function moveIntoPlace(built: string, dir: string, prefix: string, current: (dir: string) => boolean): void {
  try {
    renameSync(built, dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY' && (e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    if (!current(dir)) {
      const old = mkdtempSync(join(dirname(dir), `${prefix}.build-${process.pid}-old-`));
      renameSync(dir, join(old, 'tree'));
      renameSync(built, dir);
      rmSync(old, { recursive: true, force: true });
    }
  }
}

const readStamp = (dir: string): Stamp | undefined => readStampFile<Stamp>(dir, STAMP, RECIPE_VERSION);

/** The complete cached sysroots looked up in the same suites as now, the newest first. */
function cached(): { dir: string; stamp: Stamp }[] {
  const wanted = suites().join(',');
  return cachedBuilds(/^s390-tools-.+-s390x$/, readStamp, STAMP, (stamp) => stamp.suites.join(',') === wanted);
}

async function build(): Promise<{ dir: string; stamp: Stamp; buildMs: number }> {
  const started = Date.now();
  const { parent, tmp } = startBuild('s390-tools');
  const work = join(tmp, 'download');
  const sysroot = join(tmp, 'sysroot');
  mkdirSync(work);
  mkdirSync(sysroot);
  try {
    const problems: string[] = [];
    let chosen: { suite: string; archive: string; index: Map<string, PackageEntry> } | undefined;
    for (const suite of suites()) {
      try {
        const { uri, keyring } = debianArchive(suite);
        const index = await packageIndex(uri, keyring ?? DEFAULT_KEYRING, suite, work);
        if (index.has('s390-tools')) {
          chosen = { suite, archive: uri, index };
          break;
        }
        problems.push(`${suite}: no s390-tools for ${ARCH}`);
      } catch (e) {
        problems.push(`${suite}: ${(e as Error).message}`);
      }
    }
    if (!chosen) throw new Error(`no Debian suite gave s390-tools for ${ARCH}: ${problems.join('; ')}`);
    const { suite, archive, index } = chosen;

    const taken = new Map<string, PackageEntry>();
    const take = async (entry: PackageEntry): Promise<void> => {
      unpack(await fetchDeb(archive, entry, work), sysroot);
      taken.set(entry.name, entry);
    };
    await take(index.get('s390-tools')!);
    // Merged /usr, as base-files makes it: the loader is /lib/ld64.so.1.
    for (const dir of ['lib', 'lib64', 'bin', 'sbin']) {
      if (!existsSync(join(sysroot, dir)) && existsSync(join(sysroot, 'usr', dir))) symlinkSync(`usr/${dir}`, join(sysroot, dir));
    }
    if (!existsSync(join(sysroot, 'lib'))) symlinkSync('usr/lib', join(sysroot, 'lib'));

    const programs = [CHZDEV, LSZDEV].filter((p) => existsSync(join(sysroot, p)));
    for (const p of [CHZDEV, LSZDEV]) if (!programs.includes(p)) throw new Error(`s390-tools ${index.get('s390-tools')!.version} (${suite}) has no /${p}`);

    // Libraries, round by round, until every NEEDED is in the sysroot.
    let elves = programs.map((p) => join(sysroot, p));
    const seen = new Set<string>();
    while (elves.length) {
      const wanted = new Set<string>();
      const interpreters = new Set<string>();
      for (const elf of elves) {
        const { needed, interpreter } = elfNeeds(elf);
        if (interpreter) interpreters.add(interpreter);
        for (const so of needed) if (!seen.has(so)) wanted.add(so);
      }
      const next: string[] = [];
      for (const so of wanted) {
        if (findLibrary(sysroot, so)) continue;
        const entry = packageNamesFor(so)
          .map((n) => index.get(n))
          .find((e) => e !== undefined);
        if (!entry) throw new Error(`no package in ${suite} for ${so}, which s390-tools' programs need (looked for ${packageNamesFor(so).join(', ')})`);
        if (!taken.has(entry.name)) await take(entry);
      }
      for (const so of wanted) {
        seen.add(so);
        const file = findLibrary(sysroot, so);
        if (!file) continue; // the next round reports it
        next.push(file);
      }
      for (const interp of interpreters) if (!inSysroot(sysroot, interp)) throw new Error(`the program interpreter ${interp} is not in the sysroot`);
      const missing = [...wanted].filter((so) => !findLibrary(sysroot, so));
      if (missing.length) throw new Error(`${missing.join(', ')}: not in the packages ${[...taken.keys()].join(', ')}`);
      elves = next;
    }

    // The packages' configuration files are not needed, and under qemu -L a
    // file in the sysroot would hide the test's own at the same path.
    rmSync(join(sysroot, 'etc'), { recursive: true, force: true });

    // They must run.
    const qemu = spawnSync('sh', ['-c', `command -v ${QEMU}`], { encoding: 'utf8' }).stdout.trim();
    for (const p of [CHZDEV, LSZDEV]) {
      const r = spawnSync(qemu, ['-L', sysroot, join(sysroot, p), '--version'], { encoding: 'utf8', env: { PATH: '/nonexistent' } });
      if (r.status !== 0) throw new Error(`${QEMU} -L ... /${p} --version: exit ${r.status}: ${r.stderr || r.error?.message}`);
    }
    const help = spawnSync(qemu, ['-L', sysroot, join(sysroot, CHZDEV), '--help'], { encoding: 'utf8', env: { PATH: '/nonexistent' } }).stdout;

    const version = index.get('s390-tools')!.version;
    const stamp: Stamp = {
      recipe: RECIPE_VERSION,
      suites: suites(),
      suite,
      archive,
      version,
      packages: Object.fromEntries([...taken.values()].map((e) => [e.name, { version: e.version, sha256: e.sha256 }])),
      programs: programs.map((p) => `/${p}`),
      noModuleLoad: /--no-module-load\b/.test(help),
    };
    writeFileSync(join(sysroot, STAMP), `${JSON.stringify(stamp, null, 2)}\n`);
    const dir = join(parent, `s390-tools-${version}-${ARCH}`);
    // A directory without a current stamp, or one looked up in other suites,
    // is an old or broken build.
    moveIntoPlace(sysroot, dir, 's390-tools', (d) => readStamp(d)?.suites.join(',') === stamp.suites.join(','));
    return { dir, stamp: readStamp(dir)!, buildMs: Date.now() - started };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

// ---- running them ----------------------------------------------------------------

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

async function runGuest(opts: { sysroot: string; program: string; args: readonly string[]; env: Record<string, string>; stdin?: string; mounts: string }): Promise<ToolRun> {
  const work = tempDir('ap-persist-s390-');
  const out = join(work, 'out');
  mkdirSync(out);
  const stdin = join(work, 'stdin');
  writeFileSync(stdin, opts.stdin ?? '');
  const env = Object.entries({ PATH: '/nonexistent', LANG: 'C', ...opts.env }).map(([k, v]) => q(`${k}=${v}`));
  const body = `
qemu=$(command -v ${QEMU})
# The cached sysroot stays as built whatever the guest does.
mount --bind ${q(opts.sysroot)} ${q(opts.sysroot)}
mount -o remount,bind,ro ${q(opts.sysroot)}
# libap's lock (/run/lock/s390apconfig.lock) and anything else under /run.
fresh_dir /run
mkdir -p /run/lock
${opts.mounts}
step tool env -i ${env.join(' ')} "$qemu" -L ${q(opts.sysroot)} ${q(join(opts.sysroot, opts.program))} ${opts.args.map(q).join(' ')} <${q(stdin)}
`;
  const r = await runInNamespace(body, work, out);
  const read = (f: string): string | undefined => {
    try {
      return readFileSync(join(out, f), 'utf8');
    } catch {
      return undefined;
    }
  };
  const rc = read('tool.rc');
  if (rc === undefined) throw new Error(`the namespace script did not run the tool (exit ${r.code}): ${r.stderr}`);
  return { code: Number(rc.trim()), stdout: read('tool.out') ?? '', stderr: read('tool.err') ?? '' };
}

function tools(dir: string, stamp: Stamp, built: boolean, buildMs: number): S390Tools {
  // zdev finds everything under --base except the sysfs libap reads
  // (SYSFS_ROOT) and libap's lock; /sys and the two /etc directories are
  // empty tmpfs so that a path missed by --base reads nothing of the host.
  const zdevMounts = `fresh_dir /sys
fresh_dir /etc/udev/rules.d
fresh_dir /etc/mdevctl.d`;
  const zdevEnv = (root: string): Record<string, string> => ({ SYSFS_ROOT: join(root, 'sys') });
  return {
    version: stamp.version,
    suite: stamp.suite,
    sysroot: dir,
    built,
    buildMs,
    chzdev: (rootDir, args) => {
      const root = resolve(rootDir);
      // A real host has it; chzdev would create a missing one with mode 0644
      // (no x bit), which a test not run as root could not clean up.
      mkdirSync(join(root, 'etc/udev/rules.d'), { recursive: true });
      // Without --no-module-load chzdev runs ROOT/sbin/modprobe (--base
      // applies to it): natively, on the host. Only where there is none.
      if (!stamp.noModuleLoad && ['sbin/modprobe', 'usr/sbin/modprobe'].some((m) => existsSync(join(root, m)))) {
        throw new Error(`chzdev ${stamp.version} has no --no-module-load and would run ${root}/sbin/modprobe on this machine`);
      }
      return runGuest({
        sysroot: dir,
        program: CHZDEV,
        args: [...args, '--base', root, '--no-settle', ...(stamp.noModuleLoad ? ['--no-module-load'] : []), '--no-root-update'],
        env: zdevEnv(root),
        mounts: zdevMounts,
      });
    },
    lszdev: (rootDir, args) => {
      const root = resolve(rootDir);
      return runGuest({ sysroot: dir, program: LSZDEV, args: [...args, '--base', root], env: zdevEnv(root), mounts: zdevMounts });
    },
  };
}

/** What the host lacks to run them; undefined when nothing. */
export function missingForS390Tools(): string | undefined {
  return requireTools(QEMU, 'dpkg-deb', 'xz', 'gpgv', MOUNT_NAMESPACE).missing;
}

let pending: Promise<S390Tools | { skip: string }> | undefined;

/**
 * The s390-tools peers, built into the cache first when there is none.
 * `{ skip }` only when a host tool is missing (qemu-user-static, dpkg-deb,
 * xz, gpgv, a private mount namespace); a failed download or check throws.
 */
export function s390Tools(): Promise<S390Tools | { skip: string }> {
  pending ??= (async () => {
    const missing = missingForS390Tools();
    if (missing) return { skip: missing };
    const have = process.env[REFRESH_ENV] === '1' ? undefined : cached()[0];
    if (have) return tools(have.dir, have.stamp, false, 0);
    const fresh = await build();
    return tools(fresh.dir, fresh.stamp, true, fresh.buildMs);
  })();
  return pending;
}
