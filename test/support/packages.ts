// The distribution packages as `npm run package` builds them (scripts/package.ts,
// run on the checkout's build), for the package tests: the .deb, the tarball
// of the built tree and the RPM; and a newer build made from a copy of that
// tarball with the version bumped, to upgrade to.

import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mustSucceed, runCommand } from './container/process.js';
import { afterEveryFile } from './lifecycle.js';

// Not host.ts's tempDir, which goes after each test: the packages serve every test of a file.
const dirs: string[] = [];
afterEveryFile(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
/** A temp directory removed after the test file. */
export function tempDirFor(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}
const tempDir = tempDirFor;

const CHECKOUT = fileURLToPath(new URL('../..', import.meta.url));
/** scripts/package.ts as `npm run build` compiles it. */
export const PACKAGE_SCRIPT = join(CHECKOUT, 'dist/scripts/package.js');
/** A line the upgraded build adds to files install and generate write: seen there, they were rewritten. */
export const UPGRADE_MARK = '# ap-persist package test: the upgraded build';
/** Added to ap-persist-wait.service's Description= by the upgraded build. */
export const UPGRADED_DESCRIPTION = '(upgraded build)';

export function checkoutVersion(): string {
  return (JSON.parse(readFileSync(join(CHECKOUT, 'package.json'), 'utf8')) as { version: string }).version;
}

/** The oldest node package.json's engines.node allows (`>=18.19` -> 18.19): what the packages must depend on. */
export function enginesNodeMin(): string {
  const engines = (JSON.parse(readFileSync(join(CHECKOUT, 'package.json'), 'utf8')) as { engines?: { node?: string } }).engines?.node ?? '';
  const m = /^>=\s*(\d+(?:\.\d+){0,2})$/.exec(engines.trim());
  if (!m) throw new Error(`package.json engines.node is '${engines}', not >=VERSION`);
  return m[1]!.replace(/(\.0)+$/, '');
}

/** The next patch release of x.y.z. */
export function nextVersion(version: string): string {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!m) throw new Error(`not x.y.z: ${version}`);
  return `${m[1]}.${m[2]}.${Number(m[3]) + 1}`;
}

/** Runs scripts/package.ts; returns the paths it printed. */
export async function packageScript(args: string[], env: Record<string, string> = {}): Promise<{ paths: string[]; stderr: string }> {
  const r = mustSucceed(
    `node dist/scripts/package.js ${args.join(' ')}`,
    await runCommand([process.execPath, PACKAGE_SCRIPT, ...args], {
      timeoutMs: 180_000,
      env: { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: process.env['HOME'] ?? '/root', SOURCE_DATE_EPOCH: '1700000000', ...env },
    }),
  );
  return { paths: r.stdout.split('\n').filter(Boolean), stderr: r.stderr };
}

export interface BuiltDebs {
  dir: string;
  version: string;
  deb: string;
  newerVersion: string;
  newerDeb: string;
}

/**
 * The checkout's .deb, and a newer one: the tarball unpacked, its version
 * bumped and UPGRADE_MARK added to a unit, the callout template and the
 * 41-ap.rules template, packaged again from there.
 */
export async function buildDebs(): Promise<BuiltDebs> {
  const dir = tempDir('ap-persist-debs-');
  const { paths } = await packageScript(['--deb', '--tar', '--out', dir]);
  const [deb, tarball] = paths;
  if (!deb?.endsWith('.deb') || !tarball?.endsWith('.tar.gz')) throw new Error(`package.js printed ${paths.join(', ')}`);
  const version = checkoutVersion();
  const newerVersion = nextVersion(version);

  const copy = tempDir('ap-persist-newer-');
  const untar = spawnSync('tar', ['-xzf', tarball, '-C', copy, '--strip-components=1'], { encoding: 'utf8' });
  if (untar.status !== 0) throw new Error(`tar: ${untar.stderr}`);
  const manifest = join(copy, 'lib/package.json');
  writeFileSync(manifest, readFileSync(manifest, 'utf8').replace(`"version": "${version}"`, `"version": "${newerVersion}"`));
  // In a comment, and in what systemd shows once it loaded the new text.
  const wait = join(copy, 'lib/units/ap-persist-wait.service');
  writeFileSync(wait, `${readFileSync(wait, 'utf8').replace(/^Description=(.*)$/m, `Description=$1 ${UPGRADED_DESCRIPTION}`)}${UPGRADE_MARK}\n`);
  appendFileSync(join(copy, 'lib/templates/mdevctl-callout.sh.hbs'), `${UPGRADE_MARK}\n`);
  appendFileSync(join(copy, 'lib/templates/41-ap.rules.hbs'), `${UPGRADE_MARK}\n`);
  const newer = await packageScript(['--deb', '--source', copy, '--out', dir]);
  const newerDeb = newer.paths[0];
  if (!newerDeb?.includes(`_${newerVersion}_`)) throw new Error(`package.js --source made ${newer.paths.join(', ')}`);
  return { dir, version, deb, newerVersion, newerDeb };
}

/**
 * A stand-in for s390-tools' package: s390-tools ships ap-check for mdevctl
 * (Debian builds it for s390x only). Its ap-check answers every call with 2,
 * "not my type".
 */
export async function buildApCheckDeb(dir: string): Promise<string> {
  const root = tempDir('ap-persist-fake-s390-tools-');
  const write = (rel: string, text: string, mode: number): void => {
    const path = join(root, rel);
    mustSucceedSync(spawnSync('mkdir', ['-p', path.slice(0, path.lastIndexOf('/'))]));
    writeFileSync(path, text, { mode });
  };
  write(
    'DEBIAN/control',
    'Package: fake-s390-tools\nVersion: 1.0\nArchitecture: all\nMaintainer: ap-persist tests <tests@example.org>\nDescription: s390-tools stand-in for the package tests\n ships an ap-check mdevctl callout, as s390-tools does\n',
    0o644,
  );
  write('usr/lib/mdevctl/scripts.d/callouts/ap-check', '#!/bin/sh\n# stand-in for s390-tools ap-check\nexit 2\n', 0o755);
  const deb = join(dir, 'fake-s390-tools_1.0_all.deb');
  mustSucceed('dpkg-deb fake-s390-tools', await runCommand(['dpkg-deb', '--root-owner-group', '--build', root, deb], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } }));
  return deb;
}

function mustSucceedSync(r: ReturnType<typeof spawnSync>): void {
  if (r.status !== 0) throw new Error(String(r.stderr));
}
