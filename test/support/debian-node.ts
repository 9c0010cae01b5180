// Debian 12's own node (the nodejs package of bookworm, node 18), to run the
// bundle with: the oldest node a distribution ships ap-persist on.
//
// Nothing is installed on this machine. At test-setup time nodejs and what it
// depends on (libnode108, Debian's externalised node-acorn, node-undici,
// node-cjs-module-lexer, which libnode loads from /usr/share/nodejs, and the
// libraries down to libc6) are fetched from the Debian archive this
// machine's apt sources name (AP_PERSIST_TEST_MIRROR overrides it), verified
// as for s390-tools (InRelease by gpgv against the archive keyring,
// Packages.xz by InRelease, each .deb by Packages), and unpacked with
// `dpkg-deb -x` into a tree cached outside the checkout,
// /var/cache/ap-persist-test/nodejs-bookworm-ARCH/, built in a temp directory
// and renamed into place when complete. A cached tree is used without asking
// the network.
//
// node runs chrooted into that tree, in a private mount namespace where the
// checkout (read-only), a work directory, /proc and /dev are bound in: the
// bundle meets Debian 12's node, libc and node modules, and nothing else.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { debianArchive } from './container/rootfs.js';
import { MOUNT_NAMESPACE, requireTools, runInMountNamespace, type Requirement } from './real-tools.js';
import { cachedBuilds, DEFAULT_KEYRING, download, moveIntoPlace, readStampFile, sha256, stanzaField, startBuild, verifiedIndex } from './s390-tools.js';

export const SUITE = 'bookworm';
/** The tools the build and the runs need. */
export const DEBIAN_NODE_TOOLS = ['dpkg-deb', 'xz', 'gpgv', 'chroot'] as const;
// Bump when the steps of a build change.
const RECIPE_VERSION = 1;
const STAMP = '.ap-persist-test-debian-node.json';
/** Where the checkout and the work directory appear inside the tree. */
export const CHECKOUT_IN = '/checkout';
export const WORK_IN = '/work';

interface Stamp {
  recipe: number;
  suite: string;
  arch: string;
  archive: string;
  /** nodejs's Debian version, e.g. 18.20.4+dfsg-1~deb12u2. */
  version: string;
  packages: Record<string, string>;
}

export interface DebianNode {
  /** The nodejs package's version, e.g. 18.20.4+dfsg-1~deb12u2. */
  version: string;
  sysroot: string;
  built: boolean;
  buildMs: number;
}

/** Debian's name for this machine's architecture. */
export function debianArch(): string | undefined {
  return ({ x64: 'amd64', arm64: 'arm64', s390x: 's390x', ppc64: 'ppc64el', ia32: 'i386' } as Record<string, string>)[process.arch];
}

/** Why Debian 12's node cannot be had here; undefined when it can (the network is asked only by the build). */
export function debianNodeRequirement(): Requirement {
  const tools = requireTools(...DEBIAN_NODE_TOOLS, MOUNT_NAMESPACE);
  if (tools.missing) return tools;
  if (!debianArch()) return { missing: `no Debian architecture for node's ${process.arch}` };
  return { missing: undefined };
}

interface Entry {
  name: string;
  version: string;
  filename: string;
  sha256: string;
  /** Depends and Pre-Depends: each a list of alternatives, versions and arch qualifiers dropped. */
  depends: string[][];
}

function parseIndex(text: string, arch: string): { packages: Map<string, Entry>; provides: Map<string, string> } {
  const packages = new Map<string, Entry>();
  const provides = new Map<string, string>();
  const relation = (field: string | undefined): string[][] =>
    (field ?? '')
      .split(',')
      .map((alts) => alts.split('|').map((a) => a.trim().replace(/\s*\(.*\)$/, '').replace(/:\w+$/, '')).filter(Boolean))
      .filter((alts) => alts.length > 0);
  for (const stanza of text.split(/\n\n+/)) {
    const field = (name: string): string | undefined => stanzaField(stanza, name);
    const name = field('Package');
    const version = field('Version');
    const filename = field('Filename');
    const sum = field('SHA256');
    const a = field('Architecture');
    if (!name || !version || !filename || !sum || (a !== arch && a !== 'all')) continue;
    if (packages.has(name)) continue;
    packages.set(name, { name, version, filename, sha256: sum, depends: [...relation(field('Pre-Depends')), ...relation(field('Depends'))] });
    for (const [virtual] of relation(field('Provides'))) if (virtual && !provides.has(virtual)) provides.set(virtual, name);
  }
  return { packages, provides };
}

/** nodejs and everything it depends on, first alternatives first. */
function closure(index: ReturnType<typeof parseIndex>): Entry[] {
  const out = new Map<string, Entry>();
  const queue = ['nodejs'];
  while (queue.length) {
    const name = queue.shift()!;
    const entry = index.packages.get(name) ?? index.packages.get(index.provides.get(name) ?? '');
    if (!entry) throw new Error(`no package ${name} in Debian ${SUITE}`);
    if (out.has(entry.name)) continue;
    out.set(entry.name, entry);
    for (const alts of entry.depends) {
      const pick = alts.find((a) => out.has(a) || index.packages.has(a) || index.provides.has(a));
      if (!pick) throw new Error(`${entry.name} depends on ${alts.join(' | ')}, which Debian ${SUITE} does not have`);
      queue.push(pick);
    }
  }
  return [...out.values()];
}

const readStamp = (dir: string): Stamp | undefined => readStampFile<Stamp>(dir, STAMP, RECIPE_VERSION);

async function build(arch: string): Promise<{ dir: string; stamp: Stamp; buildMs: number }> {
  const started = Date.now();
  const prefix = `nodejs-${SUITE}`;
  const { parent, tmp } = startBuild(prefix);
  const work = join(tmp, 'download');
  const sysroot = join(tmp, 'sysroot');
  mkdirSync(work);
  mkdirSync(sysroot);
  const { uri, keyring } = debianArchive(SUITE);
  const archive = uri.replace(/\/+$/, '');
  const index = parseIndex(await verifiedIndex(uri, keyring ?? DEFAULT_KEYRING, SUITE, `main/binary-${arch}/Packages.xz`, work), arch);
  const packages: Record<string, string> = {};
  for (const entry of closure(index)) {
    const data = await download(`${archive}/${entry.filename}`);
    if (sha256(data) !== entry.sha256) throw new Error(`${entry.filename}: SHA256 differs from the Packages index`);
    const deb = join(work, posix.basename(entry.filename));
    writeFileSync(deb, data);
    const r = spawnSync('dpkg-deb', ['-x', deb, sysroot], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`dpkg-deb -x ${deb}: ${r.stderr.trim() || `exit ${r.status}`}`);
    packages[entry.name] = entry.version;
  }
  if (!existsSync(join(sysroot, 'usr/bin/node'))) throw new Error(`nodejs ${packages['nodejs']} (${SUITE}) has no /usr/bin/node`);
  // Mount points for the runs.
  for (const dir of [CHECKOUT_IN, WORK_IN, '/proc', '/dev', '/tmp']) mkdirSync(join(sysroot, dir), { recursive: true });
  const stamp: Stamp = { recipe: RECIPE_VERSION, suite: SUITE, arch, archive, version: packages['nodejs']!, packages };
  writeFileSync(join(sysroot, STAMP), `${JSON.stringify(stamp, null, 2)}\n`);
  const dir = join(parent, `${prefix}-${arch}`);
  moveIntoPlace(sysroot, dir, prefix, (d) => readStamp(d) !== undefined);
  rmSync(tmp, { recursive: true, force: true });
  return { dir, stamp: readStamp(dir) ?? stamp, buildMs: Date.now() - started };
}

/** Debian 12's node, from the cache or fetched now (throws when the archive cannot be had). */
export async function debianNode(): Promise<DebianNode> {
  const arch = debianArch();
  if (!arch) throw new Error(`no Debian architecture for node's ${process.arch}`);
  const cached = cachedBuilds(new RegExp(`^nodejs-${SUITE}-${arch}$`), readStamp, STAMP, (s) => s.arch === arch && s.suite === SUITE);
  if (cached[0]) return { version: cached[0].stamp.version, sysroot: cached[0].dir, built: false, buildMs: 0 };
  const b = await build(arch);
  return { version: b.stamp.version, sysroot: b.dir, built: true, buildMs: b.buildMs };
}

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export interface NodeRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `node ARGS` with Debian 12's node, chrooted into its tree: the checkout at
 * /checkout (read-only), `work` at /work; only `env` in the environment.
 * `stdin` is given from a file in `work`.
 */
export function runDebianNode(node: DebianNode, checkout: string, work: string, args: readonly string[], options: { env?: Record<string, string>; stdin?: string } = {}): Promise<NodeRun> {
  const s = node.sysroot;
  let input = '/dev/null';
  if (options.stdin !== undefined) {
    input = join(work, `.stdin-${process.pid}-${Math.random().toString(36).slice(2)}`);
    writeFileSync(input, options.stdin);
  }
  const env = Object.entries({ PATH: '/usr/bin:/bin', HOME: '/', LANG: 'C.UTF-8', ...options.env }).map(([k, v]) => quote(`${k}=${v}`));
  const script = `S=${quote(s)}
mount --bind ${quote(checkout)} "$S${CHECKOUT_IN}"
mount -o remount,bind,ro "$S${CHECKOUT_IN}"
mount --bind ${quote(work)} "$S${WORK_IN}"
mount --rbind /dev "$S/dev"
mount -t proc proc "$S/proc" 2>/dev/null || mount --rbind /proc "$S/proc"
chroot=$(command -v chroot)
exec env -i ${env.join(' ')} "$chroot" "$S" /usr/bin/node ${args.map(quote).join(' ')} <${quote(input)}`;
  return runInMountNamespace(script, 60_000);
}
