// Where install puts libvirt's qemu hook. libvirt 6.5 and newer runs every
// program in /etc/libvirt/hooks/qemu.d/ after hooks/qemu: ours goes there and
// the admin's hooks/qemu is none of our business. Older libvirt runs
// hooks/qemu alone: ours goes there, and an admin's hook that was there keeps
// running exactly as before, chained from ours, and comes back whole with
// uninstall. The installed scripts run for real, as libvirt runs them.

import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/cli/program.js';
import { threeGuestsHost } from '../../src/fakehost/three-guests.js';
import type { CommandRunner } from '../../src/runtime/commands.js';
import { givenHost, tempDir, type TestHost } from '../support/host.js';

const QEMU_D = 'etc/libvirt/hooks/qemu.d/ap-persist';
const QEMU = 'etc/libvirt/hooks/qemu';
const CHAINED = 'etc/libvirt/hooks/qemu.ap-persist-chained';
const RECORD = 'var/lib/ap-persist/libvirt-qemu-hook.json';
const BIN = '/usr/bin/ap-persist';

const GUEST1_XML = readFileSync(new URL('../fixtures/libvirt/guest1.xml', import.meta.url), 'utf8');
const PLAIN_XML = readFileSync(new URL('../fixtures/libvirt/no-vfio-ap.xml', import.meta.url), 'utf8');

/** The host's commands as a stand-in: each daemon answers --version as libvirt's do (absent: 127); everything else succeeds. */
function daemons(versions: Record<string, string>): CommandRunner {
  const log: string[] = [];
  return {
    log,
    async run(file, args) {
      log.push([file, ...args].join(' '));
      if (args[0] !== '--version') return { exitCode: 0, stdout: '', stderr: '', timedOut: false, ran: true };
      const v = versions[file];
      if (v === undefined) return { exitCode: 127, stdout: '', stderr: `${file}: not found\n`, timedOut: false, ran: true };
      return { exitCode: 0, stdout: `${file} (libvirt) ${v}\n`, stderr: '', timedOut: false, ran: true };
    },
  };
}

/** install or uninstall on the host, with the host's commands answered by `runner` (as on `/`). */
async function runWith(host: TestHost, runner: CommandRunner, ...args: string[]): Promise<{ code: number; doc: any; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await run(['--root', host.root, '--json', ...args], { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env: {} }, { runner });
  return { code, doc: JSON.parse(stdout), stderr };
}

function put(host: TestHost, rel: string, text: string, mode: number): void {
  const path = join(host.root, rel);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  chmodSync(path, mode);
}

const modeOf = (host: TestHost, rel: string): number => lstatSync(join(host.root, rel)).mode & 0o7777;
const inode = (host: TestHost, rel: string): number => lstatSync(join(host.root, rel)).ino;

/**
 * The admin's own hook: notes how it was called (argv, $0's directory), what
 * it read, and says something on stdout (libvirt takes that as the XML on
 * migrate and restore); exits as its `exit` file says.
 */
function adminsHook(host: TestHost): { text: string; log: string } {
  const log = join(host.root, 'admin-log');
  mkdirSync(log, { recursive: true });
  const text = [
    '#!/bin/sh',
    "# The admin's qemu hook (CPU pinning, say).",
    `log=${log}`,
    'printf \'%s\\n\' "$(dirname "$0")|$#|$*" >>"$log/calls"',
    'cat >"$log/stdin"',
    "echo \"admin's stdout for $2\"",
    'echo "admin\'s stderr" >&2',
    'exit "$(cat "$log/exit" 2>/dev/null || echo 0)"',
    '',
  ].join('\n');
  return { text, log };
}

/** node and the tool as stand-ins under the root: the tool notes its arguments and input, and exits as its `exit` file says. */
function standInTool(host: TestHost): { bin: string; node: string; log: string } {
  const log = join(host.root, 'tool-log');
  const bin = join(host.root, 'opt/ap/ap-persist.cjs');
  const node = join(host.root, 'opt/node/bin/node');
  mkdirSync(log, { recursive: true });
  mkdirSync(dirname(bin), { recursive: true });
  mkdirSync(dirname(node), { recursive: true });
  writeFileSync(
    bin,
    `const fs = require('fs');
fs.appendFileSync(${JSON.stringify(join(log, 'calls'))}, JSON.stringify({ argv: process.argv.slice(2), stdin: fs.readFileSync(0, 'utf8') }) + '\\n');
let code = 0;
try { code = Number(fs.readFileSync(${JSON.stringify(join(log, 'exit'))}, 'utf8')); } catch {}
process.exit(code);
`,
  );
  symlinkSync(realpathSync(process.execPath), node);
  return { bin, node, log };
}

/** As libvirtd runs a hook: LC_ALL and PATH only, from /, the domain XML on stdin. */
function libvirtRuns(host: TestHost, rel: string, input: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(join(host.root, rel), args, { input, env: { LC_ALL: 'C', PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin' }, cwd: '/', encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const readOr = (path: string): string => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
};
const toolCalls = (log: string): { argv: string[]; stdin: string }[] =>
  readOr(join(log, 'calls'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));

describe("libvirt 6.5 and newer: the hook goes to qemu.d/, and the admin's hooks/qemu is left alone", () => {
  it('by default: when libvirtd says 6.5.0 or newer, and when no libvirt answers at all (a --root, or libvirt not installed)', async () => {
    const cases = [
      { runner: daemons({ libvirtd: '9.0.0' }), libvirt: { daemon: 'libvirtd', version: '9.0.0' } },
      // The first with qemu.d/.
      { runner: daemons({ libvirtd: '6.5.0' }), libvirt: { daemon: 'libvirtd', version: '6.5.0' } },
      { runner: daemons({}), libvirt: null },
      // Under a --root nothing is asked (the command is only recorded): qemu.d/ is where a later libvirt looks.
      { runner: undefined, libvirt: null },
    ];
    for (const { runner, libvirt } of cases) {
      const host = givenHost(threeGuestsHost());
      const admin = adminsHook(host);
      put(host, QEMU, admin.text, 0o750);
      const before = inode(host, QEMU);
      const r = runner ? await runWith(host, runner, 'install', '--bin', BIN) : await host.json('install', '--bin', BIN);
      expect(r.code, r.stderr).toBe(0);
      expect(r.doc.libvirt_hooks).toMatchObject({ mode: 'qemu.d', requested: 'auto', libvirt, chained: [], written: [] });
      expect(r.doc.installed).toContain(join(host.root, QEMU_D));
      expect(modeOf(host, QEMU_D)).toBe(0o755);
      // hooks/qemu is theirs, and runs before ours as it did: same file, same mode.
      expect(host.read(QEMU)).toBe(admin.text);
      expect(modeOf(host, QEMU)).toBe(0o750);
      expect(inode(host, QEMU)).toBe(before);
      expect(host.has(CHAINED) || host.has(RECORD)).toBe(false);
      if (runner) expect(runner.log[0]).toBe('libvirtd --version');

      const u = await host.json('uninstall');
      expect(u.code, u.stderr).toBe(0);
      expect(host.has(QEMU_D)).toBe(false);
      expect(host.read(QEMU)).toBe(admin.text);
      expect(inode(host, QEMU)).toBe(before);
    }
  });

  it('--libvirt-hooks qemu.d on an old libvirt does as asked; an unknown mode is refused (exit 2, nothing written)', async () => {
    const host = givenHost(threeGuestsHost());
    const r = await runWith(host, daemons({ libvirtd: '6.0.0' }), 'install', '--bin', BIN, '--libvirt-hooks', 'qemu.d');
    expect(r.doc.libvirt_hooks).toMatchObject({ mode: 'qemu.d', requested: 'qemu.d', libvirt: null });
    expect(host.has(QEMU_D)).toBe(true);

    const other = givenHost(threeGuestsHost());
    const before = other.snapshot();
    const bad = await other.run('install', '--bin', BIN, '--libvirt-hooks', 'qemu');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("argument 'qemu' is invalid");
    expect(other.snapshot()).toEqual(before);
  });
});

describe('libvirt older than 6.5 runs hooks/qemu alone: install chains', () => {
  it('asks libvirtd, or virtqemud where only the split daemons are installed', async () => {
    for (const versions of [{ libvirtd: '6.0.0' }, { virtqemud: '6.4.0' }] as Record<string, string>[]) {
      const host = givenHost(threeGuestsHost());
      const runner = daemons(versions);
      const r = await runWith(host, runner, 'install', '--bin', BIN);
      expect(r.code, r.stderr).toBe(0);
      const [daemon, version] = Object.entries(versions)[0]!;
      expect(r.doc.libvirt_hooks).toMatchObject({ mode: 'chain', requested: 'auto', libvirt: { daemon, version } });
      expect(host.has(QEMU)).toBe(true);
      expect(host.has(QEMU_D)).toBe(false);
      // libvirt looks for hooks at start and on reload only.
      expect(runner.log).toContain('systemctl try-reload-or-restart libvirtd.service');
    }
  });

  it('with no hooks/qemu there, ours is hooks/qemu (the same script qemu.d/ gets), and uninstall removes it', async () => {
    const reference = givenHost(threeGuestsHost());
    await reference.run('install', '--bin', BIN);
    const host = givenHost(threeGuestsHost());
    const r = await host.run('install', '--bin', BIN, '--libvirt-hooks', 'chain');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`installed ${join(host.root, QEMU)}\n`);
    expect(host.read(QEMU)).toBe(reference.read(QEMU_D));
    expect(modeOf(host, QEMU)).toBe(0o755);
    expect(host.has(QEMU_D) || host.has(CHAINED)).toBe(false);
    expect(JSON.parse(host.read(RECORD))).toMatchObject({ hook: '/etc/libvirt/hooks/qemu', chained: null });

    const again = await host.run('install', '--bin', BIN, '--libvirt-hooks', 'chain');
    expect(again.stdout).toContain('nothing to change');

    const u = await host.json('uninstall');
    expect(u.code, u.stderr).toBe(0);
    expect(u.doc.libvirt_hooks.removed).toEqual([join(host.root, QEMU)]);
    expect(host.has(QEMU) || host.has(RECORD)).toBe(false);
  });

  it("with the admin's hooks/qemu: theirs runs exactly as before (arguments, input, output, result), then ours; either failing fails; uninstall puts theirs back whole", async () => {
    const host = givenHost(threeGuestsHost());
    const admin = adminsHook(host);
    const tool = standInTool(host);
    put(host, QEMU, admin.text, 0o750);
    const theirInode = inode(host, QEMU);
    // What libvirt got from their hook before ap-persist came: the reference for every call below.
    const inputs = [GUEST1_XML, PLAIN_XML, '<domain/>', '<domain>\n\n\n', ''];
    const calls: string[][] = [
      ['Guest1', 'prepare', 'begin', '-'],
      ['Guest1', 'release', 'end', '-'],
      ['Guest1', 'migrate', 'begin', '-'],
      ['Guest1', 'release', 'end', 'destroyed'],
    ];
    const asBefore = (input: string, args: string[]) => {
      writeFileSync(join(admin.log, 'calls'), '');
      const r = libvirtRuns(host, QEMU, input, ...args);
      return { ...r, calls: readOr(join(admin.log, 'calls')), stdin: readFileSync(join(admin.log, 'stdin'), 'utf8') };
    };
    const reference = new Map<string, ReturnType<typeof asBefore>>();
    for (const input of inputs) for (const args of calls) reference.set(JSON.stringify([input, args]), asBefore(input, args));

    const r = await host.run('install', '--bin', tool.bin, '--node', tool.node, '--libvirt-hooks', 'chain');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`chained libvirt's qemu hook ${join(host.root, QEMU)}: kept unchanged as ${join(host.root, CHAINED)}`);
    // Their file itself, not a copy: content, mode and inode.
    expect(host.read(CHAINED)).toBe(admin.text);
    expect(modeOf(host, CHAINED)).toBe(0o750);
    expect(inode(host, CHAINED)).toBe(theirInode);
    expect(modeOf(host, QEMU)).toBe(0o755);
    expect(host.has(QEMU_D)).toBe(false);

    for (const input of inputs) {
      for (const args of calls) {
        const want = reference.get(JSON.stringify([input, args]))!;
        const got = asBefore(input, args);
        const what = `${JSON.stringify(input.slice(0, 12))} ${args.join(' ')}`;
        // Same arguments (and $0 in the same directory), the same bytes in, the same stdout and stderr out.
        expect(got.calls, what).toBe(want.calls);
        expect(got.stdin, what).toBe(input);
        expect(got.stdout, what).toBe(want.stdout);
        expect(got.stderr, what).toBe(want.stderr);
        expect(got.status, what).toBe(0);
      }
    }
    // Ours ran for the vfio-ap guest's prepare and release only, with the XML, as in qemu.d/.
    expect(toolCalls(tool.log).map((c) => c.argv.join(' '))).toEqual(['libvirt-hook -- Guest1 prepare begin -', 'libvirt-hook -- Guest1 release end -', 'libvirt-hook -- Guest1 release end destroyed']);
    expect(toolCalls(tool.log)[0]!.stdin).toBe(GUEST1_XML);

    // libvirt's rule for two hooks: either failing fails the call; both always run.
    const prepare = ['Guest1', 'prepare', 'begin', '-'];
    writeFileSync(join(tool.log, 'calls'), '');
    writeFileSync(join(admin.log, 'exit'), '3');
    const theirsFail = libvirtRuns(host, QEMU, GUEST1_XML, ...prepare);
    expect(theirsFail.status).toBe(3);
    expect(toolCalls(tool.log)).toHaveLength(1);
    writeFileSync(join(admin.log, 'exit'), '0');
    writeFileSync(join(tool.log, 'exit'), '1');
    writeFileSync(join(admin.log, 'stdin'), '');
    const oursFail = libvirtRuns(host, QEMU, GUEST1_XML, ...prepare);
    expect(oursFail.status).toBe(1);
    expect(readFileSync(join(admin.log, 'stdin'), 'utf8')).toBe(GUEST1_XML);
    expect(oursFail.stdout).toBe("admin's stdout for prepare\n");
    // reconnect: ours never fails it (libvirt would kill the running guest); theirs still can, as before.
    expect(libvirtRuns(host, QEMU, GUEST1_XML, 'Guest1', 'reconnect', 'begin', '-').status).toBe(0);
    writeFileSync(join(admin.log, 'exit'), '4');
    expect(libvirtRuns(host, QEMU, GUEST1_XML, 'Guest1', 'reconnect', 'begin', '-').status).toBe(4);
    writeFileSync(join(admin.log, 'exit'), '0');
    // Not executable, libvirt would not run theirs: neither does ours.
    chmodSync(join(host.root, CHAINED), 0o640);
    writeFileSync(join(admin.log, 'calls'), '');
    writeFileSync(join(tool.log, 'exit'), '0');
    expect(libvirtRuns(host, QEMU, GUEST1_XML, ...prepare)).toMatchObject({ status: 0, stdout: '' });
    expect(readOr(join(admin.log, 'calls'))).toBe('');
    chmodSync(join(host.root, CHAINED), 0o750);

    // A second install changes nothing; a new --node rewrites ours and leaves theirs be.
    expect((await host.run('install', '--bin', tool.bin, '--node', tool.node, '--libvirt-hooks', 'chain')).stdout).toContain('nothing to change');
    expect((await host.run('install', '--bin', tool.bin, '--node', realpathSync(process.execPath), '--libvirt-hooks', 'chain')).code).toBe(0);
    expect(host.read(QEMU)).toContain(realpathSync(process.execPath));
    expect(inode(host, CHAINED)).toBe(theirInode);

    const u = await host.run('uninstall');
    expect(u.code, u.stderr).toBe(0);
    expect(u.stdout).toContain(`put back libvirt's qemu hook ${join(host.root, QEMU)} from ${join(host.root, CHAINED)}`);
    expect(host.read(QEMU)).toBe(admin.text);
    expect(modeOf(host, QEMU)).toBe(0o750);
    expect(inode(host, QEMU)).toBe(theirInode);
    expect(host.has(CHAINED) || host.has(RECORD)).toBe(false);
  });

  it("an admin's hooks/qemu that is a symlink is chained and put back as that very link", async () => {
    const host = givenHost(threeGuestsHost());
    put(host, 'etc/libvirt/hooks/pinning.sh', '#!/bin/sh\nexit 0\n', 0o755);
    symlinkSync('pinning.sh', join(host.root, QEMU));
    expect((await host.run('install', '--bin', BIN, '--libvirt-hooks', 'chain')).code).toBe(0);
    expect(readlinkSync(join(host.root, CHAINED))).toBe('pinning.sh');
    expect(lstatSync(join(host.root, QEMU)).isFile()).toBe(true);
    expect((await host.run('uninstall')).code).toBe(0);
    expect(readlinkSync(join(host.root, QEMU))).toBe('pinning.sh');
    expect(host.has(CHAINED)).toBe(false);
  });

  it('hooks/qemu edited by the admin after install: uninstall keeps both, says where theirs is, and fails', async () => {
    const host = givenHost(threeGuestsHost());
    const admin = adminsHook(host);
    put(host, QEMU, admin.text, 0o755);
    await host.run('install', '--bin', BIN, '--libvirt-hooks', 'chain');
    const edited = `${host.read(QEMU)}# tuned by hand\n`;
    writeFileSync(join(host.root, QEMU), edited);
    const u = await host.run('uninstall');
    expect(u.code).toBe(1);
    expect(u.stderr).toContain(`error: libvirt's qemu hook ${join(host.root, QEMU)}: it changed since ap-persist wrote it, so the hook it chained stays at ${join(host.root, CHAINED)}`);
    expect(host.read(QEMU)).toBe(edited);
    expect(host.read(CHAINED)).toBe(admin.text);
    // An install then refuses as well: two hooks of the admin's cannot both be hooks/qemu.
    const again = await host.run('install', '--bin', BIN, '--libvirt-hooks', 'chain');
    expect(again.code).toBe(1);
    expect(host.read(QEMU)).toBe(edited);
  });

  it('an install stopped between keeping their hook and writing ours is finished by the next one', async () => {
    const host = givenHost(threeGuestsHost());
    const admin = adminsHook(host);
    put(host, QEMU, admin.text, 0o755);
    linkSync(join(host.root, QEMU), join(host.root, CHAINED));
    expect((await host.run('install', '--bin', BIN, '--libvirt-hooks', 'chain')).code).toBe(0);
    expect(host.read(CHAINED)).toBe(admin.text);
    expect(host.read(QEMU)).toContain('chained=${0%/*}/qemu.ap-persist-chained');
    await host.run('uninstall');
    expect(host.read(QEMU)).toBe(admin.text);
  });
});

describe('install follows libvirt: the hook moves with --libvirt-hooks, one of ours at a time', () => {
  it("libvirt upgraded to 6.5 or newer: the next install puts theirs back and ours into qemu.d/; none takes ours away", async () => {
    const host = givenHost(threeGuestsHost());
    const admin = adminsHook(host);
    put(host, QEMU, admin.text, 0o700);
    await runWith(host, daemons({ libvirtd: '6.0.0' }), 'install', '--bin', BIN);
    expect(host.read(CHAINED)).toBe(admin.text);

    const runner = daemons({ libvirtd: '10.0.0' });
    const r = await runWith(host, runner, 'install', '--bin', BIN);
    expect(r.code, r.stderr).toBe(0);
    expect(r.doc.libvirt_hooks).toMatchObject({ mode: 'qemu.d', restored: [{ from: join(host.root, CHAINED), to: join(host.root, QEMU) }] });
    expect(host.read(QEMU)).toBe(admin.text);
    expect(modeOf(host, QEMU)).toBe(0o700);
    expect(host.has(CHAINED) || host.has(RECORD)).toBe(false);
    expect(host.has(QEMU_D)).toBe(true);

    // Back to chain (say, a downgrade): qemu.d/'s goes, so that a later libvirt never runs ours twice.
    const back = await host.json('install', '--bin', BIN, '--libvirt-hooks', 'chain');
    expect(back.doc.libvirt_hooks.removed).toEqual([join(host.root, QEMU_D)]);
    expect(host.has(QEMU_D)).toBe(false);
    expect(host.read(CHAINED)).toBe(admin.text);

    const none = await host.json('install', '--bin', BIN, '--libvirt-hooks', 'none');
    expect(none.code, none.stderr).toBe(0);
    expect(host.has(QEMU_D) || host.has(CHAINED) || host.has(RECORD)).toBe(false);
    expect(host.read(QEMU)).toBe(admin.text);
  });

  it("--staged: qemu.d/ (or none); chaining is refused, it moves the target system's own file (exit 2, nothing written)", async () => {
    const staged = async (...extra: string[]) => {
      const stage = tempDir();
      let stdout = '';
      let stderr = '';
      const code = await run(['--root', stage, '--json', 'install', '--staged', '--bin', BIN, '--node', '/usr/bin/node', ...extra], { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env: {} });
      return { stage, code, stdout, stderr };
    };
    const plain = await staged();
    expect(JSON.parse(plain.stdout).installed).toContain(join(plain.stage, QEMU_D));
    const none = await staged('--libvirt-hooks', 'none');
    expect(none.code, none.stderr).toBe(0);
    expect(JSON.parse(none.stdout).installed).toHaveLength(JSON.parse(plain.stdout).installed.length - 1);
    expect(existsSync(join(none.stage, QEMU_D))).toBe(false);
    const refused = await staged('--libvirt-hooks', 'chain');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--libvirt-hooks: --staged cannot chain hooks/qemu');
    expect(readdirSync(refused.stage)).toEqual([]);
  });
});
