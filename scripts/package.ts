// Builds ap-persist's distribution packages from the built tree (`npm run
// build` first; `npm run package` does both):
//
//   ap-persist_<version>_all.deb        dpkg-deb, from a staged tree and packaging/debian/
//   ap-persist-<version>.tar.gz          the built tree as installed, with the RPM spec at its
//                                         top, for `rpmbuild -ta` (packaging/rpm/ap-persist.spec)
//   ap-persist-<version>-1.noarch.rpm    rpmbuild -ta of that tarball
//
// Usage: npm run package -- [--deb] [--tar] [--rpm] [--out DIR] [--source DIR]
//    or, after npm run build: node dist/scripts/package.js [same options]
//   --deb (the default when none is given), --tar, --rpm: what to build
//   --out DIR      where the packages go (default: dist/ of the source)
//   --source DIR   the tree to package: a checkout after `npm run build`, or an
//                  unpacked tarball of this script (its lib/, share/, ...)
// Environment: SOURCE_DATE_EPOCH (file times and changelog date; default: the
// last commit, else package.json's mtime), AP_PERSIST_MAINTAINER ("Name <mail>").
// Prints the path of each package built, one a line.
//
// What goes in: the bundled tool (dist/bin/ap-persist.cjs, which loads
// dist/bin/hook.cjs, callout.cjs or program.cjs for the command line, and
// program.cjs loads handlebars.cjs for the templates; scripts/bundle.ts), the
// node modules bundled into them
// (package.json "dependencies", not the optional ones, as npm installed them;
// the bundles no longer load them from there), package.json
// itself (how the tool finds its root, version and assets), the asset
// directories `install` reads (package.json "files" other than dist: templates,
// rules, units, presets), dist/share (man page, bash completion) when the
// build made it, README, LICENSE and a changelog. No bench, examples, tests
// or simulator (dist/src, dist/bench, dist/examples stay out).

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync,
  statSync, utimesSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { BUNDLES as SHIPPED_BUNDLES } from '../src/cli/parts.js';

/** The oldest node the packages depend on: Debian `nodejs (>= N)`, RPM `nodejs(engine) >= N` (package.json engines.node). */
export const NODE_MIN = '18.19';
const DEFAULT_MAINTAINER = 'ap-persist maintainers <ap-persist@example.org>';

export const NAME = 'ap-persist';
/** Where the packages put the tool's tree; the maintainer scripts and the launcher name these. */
export const LIB_DIR = '/usr/lib/ap-persist';
export const TOOL = `${LIB_DIR}/dist/bin/ap-persist.cjs`;
export const LAUNCHER = '/usr/sbin/ap-persist';
/** The node the installed files run (the distributions' nodejs). */
export const NODE = '/usr/bin/node';

/** The tool as `npm run build` bundles it (scripts/bundle.ts): the entry point, its parts, handlebars. */
const BUNDLES = SHIPPED_BUNDLES.map((f) => `dist/bin/${f}`);

/** What `install` reads from the package root. */
const ASSET_DIRS = ['templates', 'rules', 'units', 'presets'];

/** The checkout: the directory above this file (scripts/ or dist/scripts/) that holds packaging/. */
function findCheckout(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'packaging', 'debian', 'control'))) {
    if (dirname(dir) === dir) throw new Error(`no packaging/ above ${fileURLToPath(import.meta.url)}`);
    dir = dirname(dir);
  }
  return dir;
}

const CHECKOUT = findCheckout();
const PACKAGING = join(CHECKOUT, 'packaging');

interface TreeFile {
  /** Where it goes, relative to the tree being built. */
  rel: string;
  from?: string;
  content?: Buffer;
  mode: number;
}

interface Module {
  /** Its directory name under node_modules (with its scope). */
  name: string;
  version: string;
  license: string;
  dir: string;
  /** Where its license files are: its directory, or licenses/<name> of an unpacked tarball. */
  licenseDir: string;
  licenseFiles: string[];
}

interface Manifest {
  name?: string;
  version: string;
  description?: string;
  license?: string;
  type?: string;
  homepage?: string;
  files?: string[];
  engines?: { node?: string };
  dependencies?: Record<string, string>;
}

interface Collected {
  manifest: Manifest;
  files: TreeFile[];
  modules: Module[];
  /** The text of LICENSE, when there is one. */
  license: string | undefined;
}

interface Options {
  deb: boolean;
  tar: boolean;
  rpm: boolean;
  out: string;
  source: string;
}

function fail(message: string): never {
  process.stderr.write(`package: ${message}\n`);
  process.exit(1);
}

function run(argv: string[], opts: { env?: NodeJS.ProcessEnv } = {}): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', ...opts });
  if (r.error) fail(`${argv[0]}: ${r.error.message}`);
  if (r.status !== 0) fail(`${argv.join(' ')} failed (exit ${r.status}):\n${r.stdout ?? ''}${r.stderr ?? ''}`);
  return r.stdout;
}

const USAGE = 'usage: npm run package -- [--deb] [--tar] [--rpm] [--out DIR] [--source DIR]\n';

function parseArgs(argv: string[]): Options {
  const opts: Options = { deb: false, tar: false, rpm: false, out: '', source: CHECKOUT };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--deb') opts.deb = true;
    else if (a === '--tar') opts.tar = true;
    else if (a === '--rpm') opts.rpm = true;
    else if (a === '--out' || a === '--source') {
      const v = argv[++i];
      if (!v) fail(`${a} needs a directory`);
      if (a === '--out') opts.out = resolve(v);
      else opts.source = resolve(v);
    } else if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else fail(`unknown argument '${a}'\n${USAGE}`);
  }
  if (!opts.deb && !opts.tar && !opts.rpm) opts.deb = true;
  return opts;
}

/** Every file below dir (no directories), relative, sorted; anything but files and directories is refused. */
function walk(dir: string): string[] {
  const out: string[] = [];
  const visit = (sub: string): void => {
    for (const name of readdirSync(join(dir, sub)).sort()) {
      const rel = sub ? `${sub}/${name}` : name;
      const st = lstatSync(join(dir, rel));
      if (st.isDirectory()) visit(rel);
      else if (st.isFile()) out.push(rel);
      else fail(`${join(dir, rel)}: only plain files can be packaged`);
    }
  };
  visit('');
  return out;
}

const modeOf = (path: string): number => ((statSync(path).mode & 0o111) !== 0 ? 0o755 : 0o644);

// ---------------------------------------------------------------------------
// The source: a checkout after `npm run build`, or an unpacked tarball.

/**
 * What is installed, as the tarball lays it out: lib/ (LIB_DIR), share/
 * (/usr/share), licenses/<module>/ (the modules' license files), README.md,
 * LICENSE.
 */
function collect(source: string): Collected {
  const unpacked = existsSync(join(source, 'lib', 'package.json'));
  const root = unpacked ? join(source, 'lib') : source;
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Manifest;
  if (manifest.name !== NAME) fail(`${join(root, 'package.json')} is not ${NAME}'s`);
  if (typeof manifest.version !== 'string' || !/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/.test(manifest.version)) fail(`package.json version '${manifest.version}' is not x.y.z[-pre]`);
  for (const f of BUNDLES) {
    if (!existsSync(join(root, f))) fail(`${join(root, f)} is missing: run 'npm run build' first`);
  }

  const files: TreeFile[] = [];
  const add = (rel: string, from: string): void => void files.push({ rel, from, mode: modeOf(from) });

  // package.json as the tool reads it: name (how it finds its root), version
  // (--version), type. Nothing to install.
  const shipped = {
    name: manifest.name,
    version: manifest.version,
    description: manifest.description,
    license: manifest.license,
    type: manifest.type,
    ...(manifest.engines ? { engines: manifest.engines } : {}),
    ...(manifest.dependencies ? { dependencies: manifest.dependencies } : {}),
  };
  files.push({ rel: 'lib/package.json', content: Buffer.from(`${JSON.stringify(shipped, null, 2)}\n`), mode: 0o644 });
  for (const f of BUNDLES) add(`lib/${f}`, join(root, f));
  // The asset directories install reads from the package root (src/generate/assets.ts),
  // and any other directory package.json "files" names.
  const listed = [...new Set([...ASSET_DIRS, ...(Array.isArray(manifest.files) ? manifest.files : [])])];
  for (const entry of listed) {
    const name = String(entry).replace(/^\.\//, '').replace(/\/+$/, '');
    if (name === 'dist' || name.startsWith('dist/') || /[*?]/.test(name)) continue;
    const at = join(root, name);
    if (!existsSync(at) || !statSync(at).isDirectory()) continue;
    for (const rel of walk(at)) add(`lib/${name}/${rel}`, join(at, rel));
  }

  // The man page and the bash completion, when the build made them.
  const share = unpacked ? join(source, 'share') : join(root, 'dist', 'share');
  if (existsSync(share)) for (const rel of walk(share)) add(`share/${rel}`, join(share, rel));

  // A tarball holds the modules' license files apart, in licenses/<module>/.
  const modules = nodeModules(root, manifest, unpacked ? join(source, 'licenses') : undefined);
  for (const m of modules) {
    for (const f of m.licenseFiles) add(`licenses/${m.name}/${f}`, join(m.licenseDir, f));
    for (const rel of walk(m.dir)) {
      if (!m.licenseFiles.includes(rel) && !droppedFromModule(rel, basename(rel).toLowerCase())) add(`lib/node_modules/${m.name}/${rel}`, join(m.dir, rel));
    }
  }

  const doc = (name: string): string => (unpacked ? join(source, name) : join(root, name));
  if (existsSync(doc('README.md'))) add('README.md', doc('README.md'));
  if (existsSync(doc('LICENSE'))) add('LICENSE', doc('LICENSE'));
  else process.stderr.write(`package: warning: no LICENSE in ${source}; the packages name the license '${manifest.license}' only\n`);
  return { manifest, files, modules, license: existsSync(doc('LICENSE')) ? readFileSync(doc('LICENSE'), 'utf8') : undefined };
}

/**
 * What of a module is never run: documentation, tests, examples, type
 * declarations, source maps, and dot files (linter and CI configuration).
 */
function droppedFromModule(rel: string, lower: string): boolean {
  return (
    /\.(md|markdown)$/.test(lower) ||
    /^(readme|changelog|changes|history)(\..*)?$/.test(lower) ||
    /\.d\.[cm]?ts$/.test(lower) ||
    lower.endsWith('.map') ||
    rel.split('/').some((part) => part.startsWith('.')) ||
    /^(test|tests|example|examples|typings|types)\//.test(rel)
  );
}

/**
 * The modules the bundles were made of and theirs, as npm installed them (node's
 * lookup: the nearest node_modules up the tree), without optional ones.
 * A module the tree lacks fails the build: the tool could not start.
 */
function nodeModules(root: string, manifest: Manifest, licenses: string | undefined): Module[] {
  const found = new Map<string, Module>();
  const visit = (from: string, deps: Record<string, string> | undefined): void => {
    for (const dep of Object.keys(deps ?? {}).sort()) {
      let dir = from;
      let at: string | undefined;
      for (;;) {
        const candidate = join(dir, 'node_modules', dep);
        if (existsSync(join(candidate, 'package.json'))) {
          at = candidate;
          break;
        }
        if (dir === root || dirname(dir) === dir) break;
        dir = dirname(dir);
        // Only within the package: node_modules/a/node_modules/b, then node_modules/b.
        if (basename(dir) === 'node_modules') dir = dirname(dir);
      }
      if (!at) fail(`the module '${dep}' is not installed under ${root} (run 'npm ci')`);
      const name = relative(join(root, 'node_modules'), at);
      if (name.startsWith('..') || name.includes('node_modules/')) fail(`nested module copies are not supported: ${at}`);
      if (found.has(name)) continue;
      const pkg = JSON.parse(readFileSync(join(at, 'package.json'), 'utf8')) as { version: string; license?: unknown; dependencies?: Record<string, string> };
      const licenseDir = licenses ? join(licenses, name) : at;
      const licenseFiles = existsSync(licenseDir) ? readdirSync(licenseDir).filter((f) => /^(licen[cs]e|copying|notice)(\..*)?$/i.test(f)).sort() : [];
      found.set(name, { name, version: pkg.version, license: typeof pkg.license === 'string' ? pkg.license : 'UNKNOWN', dir: at, licenseDir, licenseFiles });
      visit(at, pkg.dependencies);
    }
  };
  visit(root, manifest.dependencies);
  return [...found.values()].sort((a, b) => a.name.localeCompare(b.name));
}

// ---------------------------------------------------------------------------
// Shared bits.

function sourceDateEpoch(source: string): number {
  const env = process.env['SOURCE_DATE_EPOCH'];
  if (env && /^\d+$/.test(env)) return Number(env);
  const git = spawnSync('git', ['-C', source, 'log', '-1', '--format=%ct'], { encoding: 'utf8' });
  if (git.status === 0 && /^\d+$/.test(git.stdout.trim())) return Number(git.stdout.trim());
  return Math.floor(statSync(join(source, existsSync(join(source, 'lib')) ? 'lib' : '.', 'package.json')).mtimeMs / 1000);
}

function maintainer(): string {
  const m = process.env['AP_PERSIST_MAINTAINER'] || DEFAULT_MAINTAINER;
  if (!/^[^<>\n]+ <[^<>\s]+@[^<>\s]+>$/.test(m)) fail(`AP_PERSIST_MAINTAINER must be 'Name <mail>', not '${m}'`);
  return m;
}

/** semver 1.2.0-rc.1 sorts before 1.2.0, as 1.2.0~rc.1 does for dpkg and rpm. */
export function packageVersion(semver: string): string {
  return semver.replace('-', '~');
}

function rfc2822(epoch: number): string {
  return new Date(epoch * 1000).toUTCString().replace('GMT', '+0000');
}

function writeFile(path: string, content: string | Buffer, mode: number, epoch: number): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  chmodSync(path, mode);
  utimesSync(path, epoch, epoch);
}

function place(file: TreeFile, path: string, epoch: number): void {
  writeFile(path, file.content ?? readFileSync(file.from!), file.mode, epoch);
}

/** Directories 0755, and every time SOURCE_DATE_EPOCH, bottom up. */
function settle(dir: string, epoch: number): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (lstatSync(p).isDirectory()) settle(p, epoch);
    else utimesSync(p, epoch, epoch);
  }
  chmodSync(dir, 0o755);
  utimesSync(dir, epoch, epoch);
}

/**
 * The files `install` puts under /usr (the udev rule, the units, the preset,
 * mdevctl 1.3's callout), rendered as the post-install step renders them, by
 * the packaged tool itself (`install --staged`, which also proves the packaged
 * tree complete: it loads its modules and assets from there). The package
 * owns them, so `dpkg -S`/`rpm -qf` and the package managers' checks know
 * them; the post-install `install` finds them up to date. What it writes
 * under /etc (mdevctl 1.2's callout) stays the post-install step's: a package
 * file in /etc would be a conffile, kept by dpkg when uninstall removed it.
 * Returns the files, relative to stageRoot.
 */
function stageStatic(libDir: string, stageRoot: string): string[] {
  run([process.execPath, join(libDir, 'dist/bin/ap-persist.cjs'), '--root', stageRoot, 'install', '--staged', '--node', NODE, '--bin', TOOL], {
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LANG: 'C.UTF-8' },
  });
  rmSync(join(stageRoot, 'etc'), { recursive: true, force: true });
  // That run left code caches beside the bundles (src/cli/code-cache.ts): for the building node, not the package's.
  const bin = join(libDir, 'dist/bin');
  for (const f of readdirSync(bin)) if (f.includes('.v8-cache')) rmSync(join(bin, f), { force: true });
  const files = existsSync(join(stageRoot, 'usr')) ? walk(join(stageRoot, 'usr')).map((f) => `usr/${f}`) : [];
  if (!files.some((f) => f.startsWith('usr/lib/systemd/system/'))) fail(`install --staged put no unit under ${stageRoot}/usr/lib/systemd/system`);
  return files;
}

// ---------------------------------------------------------------------------
// Debian.

/** A DEP-5 license text: each line indented, blank lines as " .". */
function dep5Text(text: string): string {
  return text
    .replace(/\r\n/g, '\n')
    .trim()
    .split('\n')
    .map((l) => (l.trim() === '' ? ' .' : ` ${l.trimEnd()}`))
    .join('\n');
}

function copyrightHolders(text: string | undefined): string[] | undefined {
  const lines = (text ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^copyright\b/i.test(l) && !/^copyright (notice|holders?)\b/i.test(l))
    .map((l) => l.replace(/^copyright\s*(\(c\)|©)?\s*/i, '').trim())
    .filter(Boolean);
  return lines.length ? lines : undefined;
}

function debianCopyright(c: Collected, maint: string): string {
  const field = (holders: string[]): string => holders.map((h, i) => (i === 0 ? h : ` ${h}`)).join('\n');
  const stanzas = [
    [
      'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
      `Upstream-Name: ${NAME}`,
      `Upstream-Contact: ${maint}`,
      ...(c.manifest.homepage ? [`Source: ${c.manifest.homepage}`] : []),
    ].join('\n'),
    [
      'Files: *',
      `Copyright: ${field(copyrightHolders(c.license) ?? ['the ap-persist authors'])}`,
      `License: ${c.manifest.license ?? 'UNKNOWN'}`,
      ...(c.license ? [dep5Text(c.license)] : []),
    ].join('\n'),
  ];
  for (const m of c.modules) {
    const text = m.licenseFiles.map((f) => readFileSync(join(m.licenseDir, f), 'utf8')).join('\n\n');
    stanzas.push(
      [
        `Files: ${LIB_DIR.slice(1)}/node_modules/${m.name}/*`,
        `Copyright: ${field(copyrightHolders(text) ?? [`the ${m.name} authors`])}`,
        `License: ${m.license}`,
        ...(text ? [dep5Text(text)] : []),
      ].join('\n'),
    );
  }
  return `${stanzas.join('\n\n')}\n`;
}

function debianChangelog(version: string, maint: string, epoch: number): string {
  return `${NAME} (${version}) unstable; urgency=medium\n\n  * Release ${version}; README.md.gz tells what ap-persist does and how.\n\n -- ${maint}  ${rfc2822(epoch)}\n`;
}

/** Files and their place in the .deb, relative to its root. */
function debLayout(c: Collected, maint: string, version: string, epoch: number): TreeFile[] {
  const out: TreeFile[] = [];
  for (const f of c.files) {
    if (f.rel.startsWith('lib/')) out.push({ ...f, rel: `${LIB_DIR.slice(1)}/${f.rel.slice(4)}` });
    else if (f.rel.startsWith('share/man/')) {
      // Debian policy: man pages compressed with gzip -9n (node's gzip has no name and no time).
      const text = readFileSync(f.from!);
      out.push({ rel: `usr/${f.rel}.gz`, content: gzipSync(text, { level: 9 }), mode: 0o644 });
    } else if (f.rel.startsWith('share/')) out.push({ ...f, rel: `usr/${f.rel}`, mode: 0o644 });
  }
  out.push({ rel: LAUNCHER.slice(1), from: join(PACKAGING, 'ap-persist.sh'), mode: 0o755 });
  const doc = `usr/share/doc/${NAME}`;
  out.push({ rel: `${doc}/copyright`, content: Buffer.from(debianCopyright(c, maint)), mode: 0o644 });
  out.push({ rel: `${doc}/changelog.gz`, content: gzipSync(debianChangelog(version, maint, epoch), { level: 9 }), mode: 0o644 });
  out.push({ rel: `usr/share/lintian/overrides/${NAME}`, from: join(PACKAGING, 'debian', 'lintian-overrides'), mode: 0o644 });
  const readme = c.files.find((f) => f.rel === 'README.md');
  if (readme) out.push({ rel: `${doc}/README.md.gz`, content: gzipSync(readFileSync(readme.from!), { level: 9 }), mode: 0o644 });
  return out;
}

function buildDeb(c: Collected, out: string, epoch: number): string {
  const maint = maintainer();
  const version = packageVersion(c.manifest.version);
  const stage = mkdtempSync(join(tmpdir(), 'ap-persist-deb-'));
  try {
    const root = join(stage, 'root');
    const files = debLayout(c, maint, version, epoch);
    for (const f of files) place(f, join(root, f.rel), epoch);
    for (const rel of stageStatic(join(root, LIB_DIR.slice(1)), root)) files.push({ rel, from: join(root, rel), mode: modeOf(join(root, rel)) });

    // Installed-Size as dpkg-gencontrol counts it: KiB per file, one per directory.
    let kib = 0;
    const count = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        const st = lstatSync(p);
        kib += st.isDirectory() ? 1 : Math.max(1, Math.ceil(st.size / 1024));
        if (st.isDirectory()) count(p);
      }
    };
    count(root);

    const control = readFileSync(join(PACKAGING, 'debian', 'control'), 'utf8')
      .replace('@VERSION@', version)
      .replace('@MAINTAINER@', maint)
      .replace('@INSTALLED_SIZE@', String(kib))
      .replace('@NODE_MIN@', NODE_MIN)
      .replace(/^(Priority: .*\n)/m, c.manifest.homepage ? `$1Homepage: ${c.manifest.homepage}\n` : '$1');
    if (/@[A-Z_]+@/.test(control)) fail(`packaging/debian/control: unfilled ${/@[A-Z_]+@/.exec(control)?.[0]}`);
    const md5sums = files
      .map((f) => f.rel)
      .sort()
      .map((rel) => `${createHash('md5').update(readFileSync(join(root, rel))).digest('hex')}  ${rel}\n`)
      .join('');
    const meta = join(root, 'DEBIAN');
    writeFile(join(meta, 'control'), control, 0o644, epoch);
    writeFile(join(meta, 'md5sums'), md5sums, 0o644, epoch);
    for (const script of ['postinst', 'prerm', 'postrm']) writeFile(join(meta, script), readFileSync(join(PACKAGING, 'debian', script)), 0o755, epoch);
    writeFile(join(meta, 'triggers'), readFileSync(join(PACKAGING, 'debian', 'triggers')), 0o644, epoch);
    settle(root, epoch);

    const deb = join(out, `${NAME}_${version}_all.deb`);
    const tmp = join(out, `.${basename(deb)}.tmp-${process.pid}`);
    run(['dpkg-deb', '--root-owner-group', '-Zxz', '--build', root, tmp], { env: { ...process.env, SOURCE_DATE_EPOCH: String(epoch) } });
    renameSync(tmp, deb);
    return deb;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// The tarball and the RPM.

/** The repository's spec with what package.json and this script know filled in. */
function rpmSpec(c: Collected, maint: string, epoch: number): { spec: string; version: string } {
  const spec = readFileSync(join(PACKAGING, 'rpm', `${NAME}.spec`), 'utf8');
  const dash = c.manifest.version.indexOf('-');
  const version = dash < 0 ? c.manifest.version : c.manifest.version.slice(0, dash);
  const pre = dash < 0 ? undefined : c.manifest.version.slice(dash + 1);
  const bundled = c.modules.map((m) => `Provides:       bundled(nodejs-${m.name}) = ${m.version}`).join('\n');
  const day = new Date(epoch * 1000).toUTCString().replace(/^(\w+), (\d+) (\w+) (\d+).*$/, (_, d: string, n: string, mon: string, y: string) => `${d} ${mon} ${n.padStart(2, '0')} ${y}`);
  const filled = spec
    .replace(/^Version:(\s+).*$/m, `Version:$1${pre ? `${version}~${pre}` : version}`)
    .replace(/^%global node_min .*$/m, `%global node_min ${NODE_MIN}`)
    .replace(/^# bundled: .*$/m, bundled || '# no bundled node modules')
    .replace(/^%changelog\n[\s\S]*$/m, `%changelog\n* ${day} ${maint} - ${packageVersion(c.manifest.version)}-1\n- Release ${c.manifest.version}.\n`);
  return { spec: filled, version: pre ? `${version}~${pre}` : version };
}

function buildTarball(c: Collected, out: string, epoch: number): { tarball: string; version: string } {
  const maint = maintainer();
  const { spec, version } = rpmSpec(c, maint, epoch);
  const top = `${NAME}-${version}`;
  const stage = mkdtempSync(join(tmpdir(), 'ap-persist-tar-'));
  try {
    const root = join(stage, top);
    for (const f of c.files) place(f, join(root, f.rel), epoch);
    stageStatic(join(root, 'lib'), join(root, 'static'));
    mkdirSync(join(root, 'share'), { recursive: true });
    mkdirSync(join(root, 'licenses'), { recursive: true });
    if (!c.license) writeFile(join(root, 'LICENSE'), `${c.manifest.license ?? 'UNKNOWN'} (package.json); the project's LICENSE file was missing when this was built.\n`, 0o644, epoch);
    writeFile(join(root, `${NAME}.spec`), spec, 0o644, epoch);
    writeFile(join(root, 'ap-persist.sh'), readFileSync(join(PACKAGING, 'ap-persist.sh')), 0o755, epoch);
    settle(root, epoch);
    const tarball = join(out, `${top}.tar.gz`);
    const tmp = join(out, `.${basename(tarball)}.tmp-${process.pid}`);
    run(['tar', '--sort=name', `--mtime=@${epoch}`, '--owner=0', '--group=0', '--numeric-owner', '-C', stage, '-czf', tmp, top], {
      env: { ...process.env, GZIP: '-9n' },
    });
    renameSync(tmp, tarball);
    return { tarball, version };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

function buildRpm(tarball: string, version: string, out: string): string {
  const top = mkdtempSync(join(tmpdir(), 'ap-persist-rpm-'));
  try {
    run(['rpmbuild', '-ta', tarball, '--define', `_topdir ${top}`], {
      env: { ...process.env, LANG: 'C.UTF-8' },
    });
    const built = readdirSync(join(top, 'RPMS'), { recursive: true }).map(String).filter((f) => f.endsWith('.rpm'));
    const only = built.length === 1 ? built[0]! : fail(`rpmbuild made ${built.length} packages, not one: ${built.join(', ')}`);
    const rpm = join(out, basename(only));
    copyFileSync(join(top, 'RPMS', only), rpm);
    if (!rpm.includes(`-${version}-`)) fail(`rpmbuild made ${basename(rpm)}, not version ${version}`);
    return rpm;
  } finally {
    rmSync(top, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------

function main(): void {
  const opts = parseArgs(process.argv.slice(2));
  const c = collect(opts.source);
  const out = opts.out || join(opts.source, 'dist');
  mkdirSync(out, { recursive: true });
  const epoch = sourceDateEpoch(opts.source);
  const engines = c.manifest.engines?.node;
  if (typeof engines === 'string' && engines.replace(/\s+/g, '').replace(/(\.0)+$/, '') !== `>=${NODE_MIN}`) {
    process.stderr.write(`package: warning: package.json engines.node is '${engines}', the packages depend on node >= ${NODE_MIN} (scripts/package.ts NODE_MIN)\n`);
  }
  if (opts.deb) process.stdout.write(`${buildDeb(c, out, epoch)}\n`);
  if (opts.tar || opts.rpm) {
    const { tarball, version } = buildTarball(c, out, epoch);
    if (opts.tar) process.stdout.write(`${tarball}\n`);
    if (opts.rpm) process.stdout.write(`${buildRpm(tarball, version, out)}\n`);
    if (!opts.tar) rmSync(tarball);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
