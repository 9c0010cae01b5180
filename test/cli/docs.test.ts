// The man page and the bash completion, generated from the commander
// definitions by `npm run build` (src/cli/docs.ts, scripts/build-docs.ts):
// the built files are current, every command and option of the program (walked
// here on its own) is in both, the page renders without a warning, and the
// completion completes in a real bash. Plus --version.

import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command, Option } from 'commander';
import { describe, expect, it } from 'vitest';
import { BASH_COMPLETION, documentedProgram, MAN_PAGE, renderDocs } from '../../src/cli/docs.js';
import { run } from '../../src/cli/program.js';
import { threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { packageVersion } from '../../src/package-info.js';
import { givenHost, tempDir } from '../support/host.js';
import { itWith, requireTools } from '../support/real-tools.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'dist/bin/ap-persist.cjs');
const built = (rel: string): string => readFileSync(join(ROOT, rel), 'utf8');

/** Every command under the program with its path, walked through commander's own lists. */
function commands(cmd: Command, path: string[] = []): { path: string[]; command: Command }[] {
  return cmd.commands.flatMap((c) => [{ path: [...path, c.name()], command: c }, ...commands(c, [...path, c.name()])]);
}

const flags = (o: Option): string[] => [o.short, o.long].filter((f): f is string => Boolean(f));
/** How the man page writes an option: bold, with roff's minus. */
const manFlag = (f: string): string => `\\fB${f.replace(/-/g, '\\-')}\\fR`;

describe('the generated man page and bash completion', () => {
  const program = documentedProgram();
  const man = built(MAN_PAGE);
  const completion = built(BASH_COMPLETION);

  it('are what the commander definitions generate now (npm run build is current)', () => {
    const date = /^\.TH \S+ 8 "([^"]*)"/m.exec(man)?.[1] ?? '';
    const docs = renderDocs(date);
    expect(man).toBe(docs[MAN_PAGE]);
    expect(completion).toBe(docs[BASH_COMPLETION]);
  });

  it('name every command, with every one of its options, in its own section of the man page', () => {
    const all = commands(program);
    expect(all.length).toBeGreaterThan(15);
    const sections = man.split(/^\.SS /m);
    for (const { path, command } of all) {
      const title = `"ap-persist ${path.join(' ')} `;
      const section = sections.find((s) => s.startsWith(title));
      expect(section, path.join(' ')).toBeDefined();
      for (const o of command.options) for (const f of flags(o)) expect(section, `${path.join(' ')} ${f}`).toContain(manFlag(f));
    }
    const options = man.slice(man.indexOf('.SH OPTIONS'), man.indexOf('.SH COMMANDS'));
    for (const o of program.options) for (const f of flags(o)) expect(options, f).toContain(manFlag(f));
    for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'COMMANDS', 'EXIT STATUS', 'FILES', 'EXAMPLES', 'SEE ALSO']) expect(man).toContain(`\n.SH ${section}\n`);
    for (const file of ['/etc/ap-persist/ap-persist.conf', '/etc/ap-persist/generated.json', '/etc/udev/rules.d/41-ap.rules', '/run/ap-persist/last-hook.json', '/var/lib/ap-persist/set-aside/', '/usr/lib/systemd/system-preset/80-ap-persist.preset']) {
      expect(man).toContain(`.TP\n\\fB${file}\\fR\n`);
    }
    for (const unit of ['ap-persist-hook@.service', 'ap-persist-mdev@.service', 'ap-persist-mdevs.target', 'ap-persist-wait.service']) expect(man).toContain(`\\fB/usr/lib/systemd/system/${unit}\\fR\n`);
    for (const code of ['0', '1', '2', '3']) expect(man.slice(man.indexOf('.SH EXIT STATUS'))).toContain(`.TP\n\\fB${code}\\fR\n`);
    for (const ref of ['chzdev', 'lszdev', 'mdevctl', 'systemd-udevd']) expect(man.slice(man.indexOf('.SH SEE ALSO'))).toContain(`\\fB${ref}\\fR(8)`);
  });

  it('name every command and every one of its options in the completion', () => {
    const arm = (fn: string, key: string): string => {
      const body = completion.slice(completion.indexOf(`_ap_persist_${fn}() {`));
      const line = new RegExp(`^    '${key}'\\) echo '([^']*)' ;;$`, 'm').exec(body.slice(0, body.indexOf('\n}\n')));
      return line?.[1] ?? '';
    };
    for (const { path, command } of [{ path: [] as string[], command: program }, ...commands(program)]) {
      const key = path.join(' ');
      const words = arm('options', key).split(' ');
      for (const o of command.options) for (const f of flags(o)) expect(words, `${key} ${f}`).toContain(f);
      if (command.commands.length) expect(arm('subcommands', key).split(' ')).toEqual(expect.arrayContaining(command.commands.map((c) => c.name())));
    }
  });
});

describe('the man page renders', () => {
  const page = join(ROOT, MAN_PAGE);

  itWith(requireTools('groff'), 'with groff -man, all warnings on, without a word', () => {
    const r = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', page], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
  });

  itWith(requireTools('man', 'groff'), 'with man -l --warnings, without a word, as the admin reads it', () => {
    const r = spawnSync('man', ['--warnings', '-l', page], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '80', MAN_KEEP_FORMATTING: '', PAGER: 'cat', MANPAGER: 'cat' } });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const text = r.stdout.replace(/.\x08/g, '');
    expect(text).toMatch(/^AP-PERSIST\(8\)/);
    expect(text).toContain('ap-persist mdev define [options] [uuid]');
    expect(text).toContain('--control-domains list');
    expect(text).toContain(`ap-persist ${packageVersion()}`);
  });
});

describe('the bash completion', () => {
  const script = join(ROOT, BASH_COMPLETION);

  /** Sources the completion in bash, calls it as bash would for WORDS (the last one being completed), prints COMPREPLY. */
  function complete(words: string[], env: Record<string, string> = {}): string[] {
    const line = words.join(' ');
    const prog = `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=\${#COMP_LINE}
_ap_persist "$1" "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', prog, 'bash', script, ...words], { encoding: 'utf8', env: { ...process.env, ...env } });
    expect(r.status, `${line}: ${r.stderr}`).toBe(0);
    expect(r.stderr, line).toBe('');
    return r.stdout.split('\n').filter(Boolean);
  }

  it('is registered for ap-persist', () => {
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', 'source "$1" && complete -p ap-persist', 'bash', script], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('complete -F _ap_persist ap-persist');
  });

  it('completes commands and subcommands', () => {
    expect(complete(['ap-persist', 'mdev', 'mo'])).toEqual(['modify']);
    expect(complete(['ap-persist', 'su'])).toEqual(['suggest-masks']);
    expect(complete(['ap-persist', 'in'])).toEqual(['install']);
    expect(complete(['ap-persist', 'mask', ''])).toEqual(['show', 'set']);
    // Global options and their values are skipped on the way.
    expect(complete(['ap-persist', '--root', '/tmp', '--json', 'mdev', 'un'])).toEqual(['undefine']);
    expect(complete(['ap-persist', '--root', '=', '/tmp', 'mdev', 'un'])).toEqual(['undefine']);
  });

  it("completes each command's options", () => {
    expect(complete(['ap-persist', 'mask', 'set', '--'])).toEqual(['--persistent', '--active', '--dry-run', '--force', '--no-generate', '--help']);
    expect(complete(['ap-persist', 'install', '--s'])).toEqual(['--staged']);
    expect(complete(['ap-persist', '--ro'])).toEqual(['--root']);
    expect(complete(['ap-persist', 'mdev', 'define', '--control'])).toEqual(['--control-domains']);
  });

  it('completes option values: choices, directories', () => {
    expect(complete(['ap-persist', 'mdev', 'define', '--start', ''])).toEqual(['auto', 'manual', 'guest']);
    expect(complete(['ap-persist', 'import', '--prefer', '=', 'i'])).toEqual(['imported']);
    const dir = tempDir();
    writeFileSync(join(dir, 'a-file'), '');
    spawnSync('mkdir', [join(dir, 'a-dir')]);
    expect(complete(['ap-persist', '--root', `${dir}/a`])).toEqual([`${dir}/a-dir`]);
    expect(complete(['ap-persist', 'mask', 'set', 'aq'])).toEqual(['aqmask=']);
  });

  it('completes the mdevs by UUID and name, from `ap-persist mdev list --json` on the --root given', async () => {
    const host = givenHost(threeGuestsHost());
    // ap-persist on PATH: the bundle, run by this node.
    const bin = tempDir();
    writeFileSync(join(bin, 'ap-persist'), `#!/bin/sh\nexec '${process.execPath}' '${BIN}' "$@"\n`);
    chmodSync(join(bin, 'ap-persist'), 0o755);
    const env = { PATH: `${bin}:${process.env['PATH']}` };
    const listed = (await host.json('mdev', 'list')).doc as { uuid: string; name: string | null }[];
    const all = listed.flatMap((m) => [m.uuid, ...(m.name ? [m.name] : [])]);
    expect(all).toHaveLength(6);
    expect(complete(['ap-persist', '--root', host.root, 'mdev', 'modify', ''], env).sort()).toEqual(all.sort());
    expect(complete(['ap-persist', `--root=${host.root}`, 'mdev', 'stop', 'guest'], env).sort()).toEqual(['guest1', 'guest2', 'guest3']);
    // A new mdev's UUID is the admin's to make.
    expect(complete(['ap-persist', '--root', host.root, 'mdev', 'define', ''], env)).toEqual([]);
  });
});

describe('--version', () => {
  it("prints package.json's version and exits 0, in-process and from the bundle", async () => {
    const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
    let out = '';
    expect(await run(['--version'], { stdout: (t) => void (out += t), stderr: () => undefined, env: {} })).toBe(0);
    expect(out).toBe(`${version}\n`);
    for (const flag of ['--version', '-V']) {
      const r = spawnSync(process.execPath, [BIN, flag], { encoding: 'utf8' });
      expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: `${version}\n`, stderr: '' });
    }
  });

  it('leaves the hook, callout and mdev unit fast paths as they were: still without commander', async () => {
    const { parseFastPath } = await import('../../src/cli/fast-path.js');
    expect(parseFastPath(['--version'])).toBeUndefined();
    expect(parseFastPath(['hook', '--event', 'change-1'])?.command).toBe('hook');
    expect(parseFastPath(['callout', '-t', 'x'])?.command).toBe('callout');
    expect(parseFastPath(['--root', '/x', 'mdev', 'start', 'U'])).toEqual({ command: 'mdev', globals: { root: '/x' }, args: ['start', 'U'] });
    expect(parseFastPath(['mdev', 'stop', 'U'])?.command).toBe('mdev');
    // Anything else of mdev is commander's: its help, its errors, the other subcommands.
    for (const args of [['mdev', 'start'], ['mdev', 'start', '--help'], ['mdev', 'start', 'U', 'V'], ['mdev', 'list'], ['mdev', 'define', 'U'], ['mdev', 'stop', '-h']]) expect(parseFastPath(args), args.join(' ')).toBeUndefined();
  });
});
