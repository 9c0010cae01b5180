// The real s390-tools ap-check, the mdevctl callout ours must refuse at least
// everything of, built natively for this machine.
//
// Debian packages no ap-check (its s390-tools build leaves it out), and
// nothing of s390-tools is in this repository. At test-setup time the
// s390-tools *source* package is fetched from the Debian archive this
// machine's apt sources name (AP_PERSIST_TEST_MIRROR overrides it), from the
// first of the same SUITES as test/support/s390-tools.ts: the suite's
// InRelease is checked with gpgv against the archive keyring,
// main/source/Sources.xz against InRelease, and each file of the source
// package (.dsc, orig tarball, debian tarball) against Sources. Only the
// upstream (orig) tarball is unpacked and nothing is applied to it: Debian's
// packaging does not build ap-check, so none of it describes ap-check.
//
// The build takes what ap-check needs and nothing else, with the host's gcc
// and no change to a source file:
//
//   make -C libutil
//   make -C libap HAVE_JSONC=1
//   make -C ap_tools HAVE_JSONC=1        (json-c from libjson-c-dev)
//
// The result (the ap-check binary, its build.log and a stamp) is cached
// outside the checkout like the s390-tools sysroot,
// /var/cache/ap-persist-test/ap-check-VERSION-ARCH/ (AP_PERSIST_TEST_S390_CACHE
// moves it), built in a temp directory and renamed into place when complete.
// A cached build is used without asking the network;
// AP_PERSIST_TEST_S390_REFRESH=1 looks again.
//
// AP_PERSIST_TEST_AP_CHECK_SOURCE=PATH (an s390-tools source tree or tarball)
// builds from that instead, for a machine whose mirror does not serve Debian's
// source packages. Nothing checks that source: its build is cached as
// ap-check-UPSTREAM-local-ARCH, is never taken for a Debian one, and the
// version it reports says "local".
//
// ap-check acts on fixed paths (/etc/mdevctl.d/matrix/UUID,
// /etc/udev/rules.d/41-ap.rules, /sys/bus/ap/{apmask,aqmask},
// /sys/devices/vfio_ap/matrix/UUID/matrix, the lock
// /run/lock/s390apconfig.lock): run it only in a private mount namespace
// where those are the test's own (test/support/namespace.ts).

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, machine } from 'node:os';
import { join, resolve } from 'node:path';
import { debianArchive } from './container/rootfs.js';
import { requireTools, type Need, type Requirement } from './real-tools.js';
import {
  cachedBuilds,
  DEFAULT_KEYRING,
  download,
  FetchError,
  moveIntoPlace,
  readStampFile,
  REFRESH_ENV,
  sha256,
  stanzaField,
  startBuild,
  suites,
  verifiedIndex,
} from './s390-tools.js';

/** An s390-tools source tree or tarball to build from instead of Debian's (unverified). */
export const AP_CHECK_SOURCE_ENV = 'AP_PERSIST_TEST_AP_CHECK_SOURCE';

export interface ApCheck {
  /** The ap-check binary. */
  path: string;
  /** Debian's version of the source package (2.40.0-4), or "2.40.0 (local)". */
  version: string;
  /** Where the source came from: "Debian forky" or the local path. */
  source: string;
  /** The cache directory, with build.log. */
  dir: string;
  /** True when this process built it, and how long that took. */
  built: boolean;
  buildMs: number;
  missing: undefined;
}

/** What apCheck() gives: ap-check, or why it cannot be had here. */
export type ApCheckResult = ApCheck | { missing: string };

const PREFIX = 'ap-check';
// Bump when the steps of a build change.
const RECIPE_VERSION = 1;
const STAMP = '.ap-persist-test-ap-check.json';
const BUILD_TIMEOUT_MS = 10 * 60_000;
const ARCH = machine();
/** The three parts ap-check is made of, in build order, with the make variables each needs. */
const MAKE_STEPS: readonly (readonly string[])[] = [['-C', 'libutil'], ['-C', 'libap', 'HAVE_JSONC=1'], ['-C', 'ap_tools', 'HAVE_JSONC=1']];
const SOURCE_PACKAGE = 's390-tools';

interface Stamp {
  recipe: number;
  /** "debian:SUITES" (the suites looked in) or "local:PATH": a cached build is used only for the same origin. */
  origin: string;
  /** Debian's version, or the upstream version of a local tree with " (local)". */
  version: string;
  suite?: string;
  archive?: string;
  /** The source package's files and their SHA256, as checked against Sources. */
  files?: Record<string, string>;
  arch: string;
  make: string[];
  buildMs: number;
}

function origin(): string {
  const local = process.env[AP_CHECK_SOURCE_ENV];
  return local ? `local:${resolve(local)}` : `debian:${suites().join(',')}`;
}

const readStamp = (dir: string): Stamp | undefined => readStampFile<Stamp>(dir, STAMP, RECIPE_VERSION);

function cached(): { dir: string; stamp: Stamp }[] {
  const wanted = origin();
  return cachedBuilds(new RegExp(`^${PREFIX}-.+-${ARCH}$`), readStamp, STAMP, (s) => s.origin === wanted && s.arch === ARCH).filter((c) =>
    existsSync(join(c.dir, 'ap-check')),
  );
}

/** What this machine lacks to build ap-check; undefined when nothing. */
export function missingForBuild(): string | undefined {
  const reasons: string[] = [];
  const tools = requireTools('gcc', 'make', 'ar', 'tar', 'xz', 'gpgv').missing;
  if (tools) reasons.push(tools);
  else {
    const probe = spawnSync('gcc', ['-E', '-x', 'c', '-o', '/dev/null', '-'], { input: '#include <json-c/json.h>\n', encoding: 'utf8' });
    if (probe.status !== 0) reasons.push('libjson-c-dev is not installed (gcc finds no json-c/json.h)');
  }
  return reasons.length ? reasons.join('; ') : undefined;
}

// ---- the source -------------------------------------------------------------------

interface SourceFile {
  name: string;
  sha256: string;
}

/** s390-tools' stanza in the first suite whose Sources has it. `{ missing }` when no suite could be asked. */
async function findSource(work: string): Promise<{ suite: string; archive: string; version: string; directory: string; files: SourceFile[] } | { missing: string }> {
  const problems: string[] = [];
  let onlyFetches = true;
  for (const suite of suites()) {
    try {
      const { uri, keyring } = debianArchive(suite);
      const text = await verifiedIndex(uri, keyring ?? DEFAULT_KEYRING, suite, 'main/source/Sources.xz', work);
      const stanza = text.split(/\n\n+/).find((s) => stanzaField(s, 'Package') === SOURCE_PACKAGE);
      if (!stanza) {
        problems.push(`${suite}: no ${SOURCE_PACKAGE} source package`);
        continue;
      }
      const version = stanzaField(stanza, 'Version');
      const directory = stanzaField(stanza, 'Directory');
      // Checksums-Sha256: one " SUM SIZE NAME" line a file, .dsc included.
      const sums = /^Checksums-Sha256:[ \t]*\n((?:[ \t].*\n?)*)/m.exec(stanza)?.[1] ?? '';
      const files = sums
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .filter((f) => f.length === 3)
        .map(([sum, , name]) => ({ name: name!, sha256: sum! }));
      if (!version || !directory || !files.some((f) => /\.orig\.tar\.[a-z0-9]+$/.test(f.name))) {
        throw new Error(`${suite}: the Sources stanza of ${SOURCE_PACKAGE} has no Version, Directory or orig tarball`);
      }
      return { suite, archive: uri, version, directory, files };
    } catch (e) {
      if (!(e instanceof FetchError)) onlyFetches = false;
      problems.push(`${suite}: ${(e as Error).message}`);
    }
  }
  const why = `no Debian suite gave the ${SOURCE_PACKAGE} source: ${problems.join('; ')}`;
  if (onlyFetches) return { missing: why };
  throw new Error(why);
}

/** The upstream version of an s390-tools tree, from common.mak (VERSION.RELEASE.PATCHLEVEL). */
function upstreamVersion(tree: string): string {
  const mak = readFileSync(join(tree, 'common.mak'), 'utf8');
  const part = (name: string): string => {
    const v = new RegExp(`^${name}\\s*:?=\\s*(\\d+)\\s*$`, 'm').exec(mak)?.[1];
    if (v === undefined) throw new Error(`${tree}/common.mak sets no ${name}`);
    return v;
  };
  return `${part('VERSION')}.${part('RELEASE')}.${part('PATCHLEVEL')}`;
}

/** The one top directory a tarball unpacked into. */
function unpackTarball(tarball: string, into: string): string {
  mkdirSync(into, { recursive: true });
  const r = spawnSync('tar', ['-xf', tarball, '-C', into], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar -xf ${tarball}: ${r.stderr.trim() || `exit ${r.status}`}`);
  const top = readdirSync(into);
  if (top.length !== 1 || !statSync(join(into, top[0]!)).isDirectory()) throw new Error(`${tarball} does not unpack into one directory (${top.join(', ')})`);
  return join(into, top[0]!);
}

// ---- the build --------------------------------------------------------------------

/** Runs the build in `tree`, each command and its output appended to `log`. */
function make(tree: string, log: string): string[] {
  const commands: string[] = [];
  for (const step of MAKE_STEPS) {
    const args = [`-j${availableParallelism()}`, ...step, 'V=1'];
    const line = `make ${args.join(' ')}`;
    commands.push(line);
    writeFileSync(log, `\n$ ${line}\n`, { flag: 'a' });
    const r = spawnSync('make', args, { cwd: tree, encoding: 'utf8', env: { ...process.env, LANG: 'C', LC_ALL: 'C' }, timeout: BUILD_TIMEOUT_MS, maxBuffer: 64 << 20 });
    writeFileSync(log, `${r.stdout ?? ''}${r.stderr ?? ''}`, { flag: 'a' });
    if (r.status !== 0) throw new Error(`${line} failed (${r.error?.message ?? `exit ${r.status}`}); see ${log}`);
  }
  return commands;
}

/** ap-check as it must answer: no operands exit 1, another mdev type exit 2. Throws otherwise. */
function selfTest(binary: string): void {
  const bare = spawnSync(binary, [], { encoding: 'utf8', env: { LANG: 'C' } });
  const other = spawnSync(binary, ['-t', 'vfio_ccw-io', '-e', 'pre', '-a', 'define', '-s', 'none', '-u', '11111111-1111-4111-8111-111111111111', '-p', 'matrix'], {
    encoding: 'utf8',
    env: { LANG: 'C' },
  });
  if (bare.status !== 1 || !bare.stderr.includes('Duplicate or missing operand') || other.status !== 2) {
    throw new Error(
      `${binary} does not answer as ap-check: no operands gave exit ${bare.status} (${(bare.stderr || bare.error?.message || '').trim()}), another type exit ${other.status}`,
    );
  }
}

async function build(): Promise<{ dir: string; stamp: Stamp; buildMs: number } | { missing: string }> {
  const started = Date.now();
  const { parent, tmp } = startBuild(PREFIX);
  const work = join(tmp, 'download');
  const out = join(tmp, 'out');
  mkdirSync(work);
  mkdirSync(out);
  const log = join(out, 'build.log');
  try {
    const local = process.env[AP_CHECK_SOURCE_ENV];
    let tree: string;
    let stamp: Omit<Stamp, 'make' | 'buildMs'>;
    let dirName: string;
    if (local) {
      const from = resolve(local);
      writeFileSync(log, `source: ${from} (local, unverified; ${AP_CHECK_SOURCE_ENV})\n`);
      if (statSync(from).isDirectory()) {
        // Built in a copy: the tree given stays as it is.
        tree = join(tmp, 'src', 's390-tools');
        mkdirSync(join(tmp, 'src'));
        const cp = spawnSync('cp', ['-a', from, tree], { encoding: 'utf8' });
        if (cp.status !== 0) throw new Error(`cp -a ${from}: ${cp.stderr.trim()}`);
      } else tree = unpackTarball(from, join(tmp, 'src'));
      const upstream = upstreamVersion(tree);
      stamp = { recipe: RECIPE_VERSION, origin: origin(), version: `${upstream} (local)`, arch: ARCH };
      dirName = `${PREFIX}-${upstream}-local-${ARCH}`;
    } else {
      const found = await findSource(work);
      if ('missing' in found) return found;
      const base = `${found.archive.replace(/\/+$/, '')}/${found.directory}`;
      writeFileSync(log, `source: ${SOURCE_PACKAGE} ${found.version} from ${base} (Debian ${found.suite}; InRelease by gpgv, Sources.xz by InRelease, each file by Sources)\n`);
      const files: Record<string, string> = {};
      for (const f of found.files) {
        let data: Buffer;
        try {
          data = await download(`${base}/${f.name}`);
        } catch (e) {
          if (e instanceof FetchError) return { missing: `${e.message} (Debian ${found.suite}, ${SOURCE_PACKAGE} ${found.version})` };
          throw e;
        }
        if (sha256(data) !== f.sha256) throw new Error(`${base}/${f.name}: SHA256 differs from the Sources index of Debian ${found.suite}`);
        writeFileSync(join(work, f.name), data);
        files[f.name] = f.sha256;
        writeFileSync(log, `  ${f.sha256}  ${f.name}\n`, { flag: 'a' });
      }
      const orig = found.files.find((f) => /\.orig\.tar\.[a-z0-9]+$/.test(f.name))!;
      tree = unpackTarball(join(work, orig.name), join(tmp, 'src'));
      stamp = { recipe: RECIPE_VERSION, origin: origin(), version: found.version, suite: found.suite, archive: found.archive, files, arch: ARCH };
      dirName = `${PREFIX}-${found.version}-${ARCH}`;
    }

    const commands = make(tree, log);
    const binary = join(out, 'ap-check');
    copyFileSync(join(tree, 'ap_tools', 'ap-check'), binary);
    selfTest(binary);
    const full: Stamp = { ...stamp, make: commands, buildMs: Date.now() - started };
    writeFileSync(join(out, STAMP), `${JSON.stringify(full, null, 2)}\n`);
    const dir = join(parent, dirName);
    // One of another origin or recipe under the same name is replaced.
    moveIntoPlace(out, dir, PREFIX, (d) => readStamp(d)?.origin === full.origin && existsSync(join(d, 'ap-check')));
    return { dir, stamp: readStamp(dir)!, buildMs: full.buildMs };
  } catch (e) {
    // Kept for whoever reads the failure.
    if (existsSync(log)) copyFileSync(log, join(parent, `${PREFIX}-failed-build.log`));
    throw e;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function described(dir: string, stamp: Stamp, built: boolean, buildMs: number): ApCheck {
  const source = stamp.origin.startsWith('local:') ? stamp.origin.slice('local:'.length) : `Debian ${stamp.suite}`;
  return { path: join(dir, 'ap-check'), version: stamp.version, source, dir, built, buildMs, missing: undefined };
}

let pending: Promise<ApCheckResult> | undefined;

/**
 * The real ap-check, built into the cache first when there is none.
 * `{ missing }` when a build tool or json-c is missing, or the archive
 * cannot be asked (no network, the mirror does not serve the source); a
 * failed check (signature, checksum) or build throws.
 */
export function apCheck(): Promise<ApCheckResult> {
  pending ??= (async (): Promise<ApCheckResult> => {
    const have = process.env[REFRESH_ENV] === '1' ? undefined : cached()[0];
    if (have) {
      try {
        selfTest(join(have.dir, 'ap-check'));
      } catch (e) {
        // Say, libjson-c removed since the build.
        return { missing: `the cached ${join(have.dir, 'ap-check')} does not run here: ${(e as Error).message}` };
      }
      return described(have.dir, have.stamp, false, 0);
    }
    const missing = missingForBuild();
    if (missing) return { missing: `cannot build ap-check: ${missing}` };
    const fresh = await build();
    if ('missing' in fresh) return fresh;
    return described(fresh.dir, fresh.stamp, true, fresh.buildMs);
  })();
  return pending;
}

/** For itWith: ap-check and the host tools `needs`. */
export function apCheckRequirement(found: ApCheckResult, ...needs: Need[]): Requirement {
  const reasons = [found.missing, requireTools(...needs).missing].filter((r): r is string => r !== undefined);
  return { missing: reasons.length ? reasons.join('; ') : undefined };
}
