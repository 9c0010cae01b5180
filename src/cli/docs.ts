// The man page ap-persist(8) and the bash completion, generated from the
// commander definitions (buildProgram in program.ts): every command, option,
// argument, default and choice comes from there, so neither can drift from
// the CLI. The prose commander does not hold (description, exit status,
// files, examples) is here, and the paths in it come from HostPaths and the
// unit names the code uses. scripts/build-docs.ts writes the files; the
// runtime never loads this module.

import type { Argument, Command, Option } from 'commander';
import { packageAssets } from '../generate/assets.js';
import { HostPaths } from '../host/paths.js';
import { packageVersion } from '../package-info.js';
import { buildProgram } from './program.js';
import { CALLOUT_NAME } from '../generate/static-files.js';
import { WAIT_SERVICE } from '../generate/unit-names.js';
import { PRESET_NAME, PRESET_STATE } from '../generate/enable.js';

/** Where the generated documentation goes, relative to the package root (package.json "files" ships it). */
export const MAN_PAGE = 'dist/share/man/man8/ap-persist.8';
export const BASH_COMPLETION = 'dist/share/bash-completion/completions/ap-persist';

/**
 * The man page's date: SOURCE_DATE_EPOCH's day, as reproducible builds set
 * it; without it none, so the same tree always builds the same files.
 */
export function docsDate(env: Record<string, string | undefined> = process.env): string {
  const epoch = env['SOURCE_DATE_EPOCH'];
  return epoch && /^\d+$/.test(epoch) ? new Date(Number(epoch) * 1000).toISOString().slice(0, 10) : '';
}

/** The program as the CLI builds it, with actions that do nothing. */
export function documentedProgram(): Command {
  return buildProgram({ stdout: () => undefined, stderr: () => undefined, env: {} }, () => async () => undefined);
}

/** Both files, by their path under the package root. */
export function renderDocs(date = docsDate()): Record<string, string> {
  const program = documentedProgram();
  const assets = packageAssets();
  return {
    [MAN_PAGE]: renderManPage(program, { version: packageVersion(), date, units: assets.units.map((u) => ({ name: u.name, description: /^Description=(.*)$/m.exec(u.text)?.[1] ?? '' })), rules: assets.rules.map((r) => r.name) }),
    [BASH_COMPLETION]: renderBashCompletion(program),
  };
}

export interface DocsMeta {
  version: string;
  /** The date in the man page's footer, YYYY-MM-DD; empty for none (reproducible builds pass SOURCE_DATE_EPOCH). */
  date: string;
  /** The unit files the package ships (units/): name and Description=. */
  units: { name: string; description: string }[];
  /** The udev rules the package ships (rules/), by name. */
  rules: string[];
}

/** A command and the names leading to it from the program: ['mdev', 'define']. */
export interface CommandNode {
  path: string[];
  command: Command;
}

/** Every command under the program, depth first in definition order (not commander's implicit `help`). */
export function commandTree(program: Command): CommandNode[] {
  const out: CommandNode[] = [];
  const walk = (cmd: Command, path: string[]): void => {
    for (const sub of cmd.commands) {
      const p = [...path, sub.name()];
      out.push({ path: p, command: sub });
      walk(sub, p);
    }
  };
  walk(program, []);
  return out;
}

/** The options a command takes, its help option last (commander adds it to each command, outside `options`). */
function optionsOf(cmd: Command): Option[] {
  return cmd.createHelp().visibleOptions(cmd);
}

/** The value name of an option that takes one: `list` for `--adapters <list>`. */
function valueName(opt: Option): string | undefined {
  return /[<[]([^>\]]+)[>\]]/.exec(opt.flags)?.[1];
}

const takesValue = (opt: Option): boolean => opt.required || opt.optional;

// ---- roff ------------------------------------------------------------------------

/**
 * Text for a roff line: backslashes and leading control characters escaped,
 * and the dashes of options (`--dry-run`, `-v`) written as `\-`, so they
 * print as the ASCII minus one types, not as hyphens.
 */
export function roff(text: string): string {
  const escaped = text.replace(/\\/g, '\\e').replace(/(^|[\s([|,='"/])(--?[A-Za-z0-9][\w-]*)/g, (_m, before: string, opt: string) => `${before}${opt.replace(/-/g, '\\-')}`);
  return /^[.']/.test(escaped) ? `\\&${escaped}` : escaped;
}

const bold = (text: string): string => `\\fB${roff(text)}\\fR`;
const italic = (text: string): string => `\\fI${roff(text)}\\fR`;

/** `<list>` and `[uuid]` in a usage string as italic names. */
function usageRoff(usage: string): string {
  return usage
    .split(/(<[^>]+>|\[[a-z][\w.-]*\])/)
    .map((part) => {
      const m = /^<([^>]+)>$/.exec(part) ?? /^\[([a-z][\w.-]*)\]$/.exec(part);
      if (!m) return roff(part);
      return part.startsWith('<') ? italic(m[1]!) : `[${italic(m[1]!)}]`;
    })
    .join('');
}

function optionTag(opt: Option): string {
  const names = opt.flags.split(/[ ,|]+/).filter((f) => f.startsWith('-'));
  const value = valueName(opt);
  return `${names.map(bold).join(', ')}${value ? ` ${italic(value)}` : ''}`;
}

function optionText(opt: Option): string {
  let text = opt.description;
  if (opt.argChoices?.length) text += ` (one of: ${opt.argChoices.join(', ')})`;
  if (opt.defaultValue !== undefined && !opt.negate && typeof opt.defaultValue !== 'boolean') text += ` (default: ${String(opt.defaultValue)})`;
  return roff(text);
}

function optionList(opts: readonly Option[]): string[] {
  return opts.flatMap((opt) => ['.TP', optionTag(opt), optionText(opt)]);
}

function argumentsOf(cmd: Command): readonly Argument[] {
  return cmd.registeredArguments;
}

/** A description as a sentence: commander's start in lower case (vfio_ap, mdevctl stay so). */
const sentence = (text: string): string => (/[.!?]$/.test(text) ? text : `${text}.`);

/** Prose paragraphs: one roff line each, separated by .PP. */
function paragraphs(...texts: string[]): string[] {
  return texts.flatMap((t, i) => (i === 0 ? [roff(t)] : ['.PP', roff(t)]));
}

/** A list of (tag, text) as .TP entries, the tag in bold. */
function tagged(items: readonly [string, string][]): string[] {
  return items.flatMap(([tag, text]) => ['.TP', bold(tag), roff(text)]);
}

export function renderManPage(program: Command, meta: DocsMeta): string {
  const paths = new HostPaths('/');
  const name = program.name();
  const lines: string[] = [];
  lines.push(`.\\" ${name}(8): generated from the commander definitions by scripts/build-docs.ts (npm run build); do not edit.`);
  lines.push(`.TH ${name.toUpperCase().replace(/-/g, '\\-')} 8 "${meta.date}" "${name} ${meta.version}" "System Administration"`);
  // No hyphenation, ragged right: paths and option names stay whole.
  lines.push('.nh', '.ad l');
  lines.push('.SH NAME', `${name} \\- ${roff(program.description().replace(/^./, (c) => c.toLowerCase()))}`);

  lines.push('.SH SYNOPSIS');
  lines.push(`.B ${name}`, `[${italic('global options')}] ${italic('command')} [${italic('options')}] [${italic('arguments')}]`);
  lines.push('.br', `.B ${name} \\-\\-version`);
  lines.push('.br', `.B ${name}`, `[${italic('command')}] ${bold('--help')}`);

  lines.push('.SH DESCRIPTION');
  lines.push(
    ...paragraphs(
      'On an IBM Z KVM host, guests get crypto queues (APQNs: an adapter and a domain of a Crypto Express card) through vfio_ap mediated devices (mdevs). What the admin sets up by hand is lost or half-restored at reboot.',
      `${name} keeps one store of the host AP masks (apmask, aqmask) and the mdevs, checks every APQN for conflicts before anything changes, writes the udev rules and systemd units that restore the masks, load vfio_ap and start the mdevs in the right order before libvirt starts the guests, and runs as a systemd unit on each AP bus BINDINGS=complete event. It works with chzdev and lszdev -t ap, ap-check, mdevctl and libvirt rather than around them: the persistent masks are written in the format chzdev writes, and every mdev is exported to mdevctl with its start mode.`,
      `A change never gives the host an APQN a running guest holds, on any kernel.`,
    ),
  );
  lines.push('.SS ID lists and mask specifications');
  lines.push(
    ...paragraphs(
      'A LIST is comma-separated IDs 0-255, decimal or 0x hex, and ranges a-b (5,6 or 0x04-0x06). A decimal ID with a leading zero is refused: chzdev and the kernel read it as octal.',
      'A SPEC is what chzdev accepts: a LIST of host-owned IDs, a list of +LIST (give to the host) and -LIST (free for vfio_ap) changes, or 0x and exactly 64 hex digits as sysfs prints it. As in chzdev, 0x41 is the ID 65.',
    ),
  );

  lines.push('.SH OPTIONS', ...paragraphs('Global options go before the command (they are accepted after it too).'));
  lines.push(...optionList(optionsOf(program)));

  lines.push('.SH COMMANDS');
  for (const { path, command } of commandTree(program)) {
    const usage = command.commands.length ? `${command.commands.map((c) => c.name()).join('|')} ...` : command.usage();
    lines.push(`.SS "${[name, ...path].map(roff).join(' ')} ${usageRoff(usage)}"`);
    lines.push(roff(sentence(command.description())));
    const args = argumentsOf(command).filter((a) => a.description);
    if (args.length) lines.push(...args.flatMap((a) => ['.TP', italic(a.name()), roff(a.description)]));
    const opts = optionsOf(command).filter((o) => o.long !== '--help');
    lines.push(...optionList(opts));
  }

  lines.push('.SH EXIT STATUS');
  lines.push(
    ...tagged([
      ['0', 'Success.'],
      ['1', 'A runtime failure: I/O, a sysfs write the kernel refused, a host command that failed.'],
      ['2', 'Usage error or invalid input (a bad option, a bad store file, an unknown mdev); nothing was changed.'],
      ['3', 'A configuration conflict: found by check, or a change refused because it would create one, or files another tool changed in the way of generate. Every conflicting APQN is listed with both owners.'],
    ]),
  );
  lines.push('.PP', roff(`The callout command follows mdevctl's callout protocol instead: 0 accept, 1 reject, 2 not a type it handles.`));

  lines.push('.SH FILES');
  const at = (p: string): string => `/${p.replace(/^\/+/, '')}`;
  lines.push(
    ...tagged([
      [paths.store, 'The store: the host masks and the mdevs (ini format; edits through the CLI keep comments and order).'],
      [paths.generatedManifest, 'What generate wrote last, with checksums, so that it can tell its own files from files another tool changed since.'],
      [paths.generatedPending, "The files a generate is putting in place, named before it moves any and removed once its record is written: after a crash every command still tells them from chzdev's and mdevctl's."],
      [paths.chzdevRules, "The persistent masks, in the format chzdev -t ap writes (written by generate; lszdev and ap-check read it)."],
      ...meta.rules.map((r): [string, string] => [`${paths.staticRulesDir}/${r}`, 'Hands each AP bus event to systemd as an ap-persist-hook@.service instance (installed by install).']),
      ...meta.units.map((u): [string, string] => [`${paths.staticUnitsDir}/${u.name}`, `${u.description.replace(/^ap-persist: /, '')} (installed by install).`]),
      [at(`usr/lib/systemd/system-preset/${PRESET_NAME}`), `Enables ${WAIT_SERVICE} (systemctl preset) on the first install; an admin's preset file or systemctl disable overrides it.`],
      [`${paths.mdevsWantsDir}/`, 'One link per auto mdev, as systemctl enable makes it (written by generate).'],
      [`${paths.mdevctlMatrixDir}/`, 'Every mdev as an mdevctl definition with its start mode (written by generate).'],
      ...paths.calloutDirs.map((d): [string, string] => [`${d}/${CALLOUT_NAME}`, 'The mdevctl callout (mdevctl 1.2 looks in /etc, newer ones in /usr/lib).']),
      [paths.lastHook, 'The report of the last hook run (status shows it; wait reads it).'],
      [`${paths.heldDir}/`, "The mdev units the hook holds back, one file per UUID with the reason (ap-persist-mdev@.service's ConditionPathExists=! skips their start); all while the boot's hook has not judged them."],
      [paths.lock, 'The AP configuration lock shared with chzdev and mdevctl.'],
      [`${paths.setAsideDir}/`, "s390-tools' ap-check callout, set aside by install (mdevctl asks only the first callout); uninstall puts it back."],
      [at(PRESET_STATE), `The units install enabled through the preset, so that a later install does not enable them again.`],
    ]),
  );

  lines.push('.SH EXAMPLES');
  const example = (comment: string, ...command: string[]): string[] => ['.PP', roff(comment), '.PP', '.RS', '.nf', ...command.map(roff), '.fi', '.RE'];
  lines.push(
    ...example('Free cards 5 and 6 and domains 4, 0x47, 0xab and 0xff for vfio_ap, now and at boot:', 'ap-persist mask set apmask=-5,-6 aqmask=-4,-0x47,-0xab,-0xff'),
    ...example(
      'Define guest1 of the kernel documentation, check and write the boot files:',
      'ap-persist mdev define bfccf00d-21f1-448c-9979-b7341129d985 \\',
      '    --adapters 5,6 --domains 4,0xab --control-domains 0xab --name guest1',
      'ap-persist check && ap-persist generate',
    ),
    ...example(
      "A package build puts the package's files into the staging tree; the package's post-install step runs install on the target system:",
      'ap-persist --root "$DESTDIR" install --staged \\',
      '    --node /usr/bin/node --bin /usr/lib/ap-persist/dist/bin/ap-persist.cjs',
      'ap-persist install --node /usr/bin/node --bin /usr/lib/ap-persist/dist/bin/ap-persist.cjs',
    ),
  );

  lines.push('.SH SEE ALSO');
  const see = ['chzdev(8)', 'lszdev(8)', 'mdevctl(8)', 'systemd-udevd(8)', 'systemctl(1)', 'systemd.preset(5)', 'virsh(1)'];
  lines.push(see.map((s) => s.replace(/^([^(]+)\((\d)\)$/, (_m, n: string, sec: string) => `${bold(n)}(${sec})`)).join(',\n'));
  return `${lines.join('\n')}\n`;
}

// ---- bash completion ---------------------------------------------------------------

/** A word for a bash case pattern or a compgen -W list: the flags and names we generate are plain. */
function shellWord(word: string): string {
  if (!/^[\w@%+=:,./-]+$/.test(word)) throw new Error(`cannot put '${word}' into the completion script`);
  return word;
}

/** How the value of an option is completed: its choices, directories, files, or not at all. */
function valueCompletion(opt: Option): string {
  if (opt.argChoices?.length) return `COMPREPLY=($(compgen -W '${opt.argChoices.map(shellWord).join(' ')}' -- "$cur"))`;
  const value = valueName(opt) ?? '';
  if (value === 'dir') return `COMPREPLY=($(compgen -d -- "$cur"))`;
  if (value === 'file' || value === 'path') return `COMPREPLY=($(compgen -f -- "$cur"))`;
  return 'COMPREPLY=()';
}

function flagsOf(opt: Option): string[] {
  return [opt.short, opt.long].filter((f): f is string => Boolean(f)).map(shellWord);
}

export function renderBashCompletion(program: Command): string {
  const name = shellWord(program.name());
  const fn = `_${name.replace(/-/g, '_')}`;
  const nodes: { key: string; command: Command }[] = [{ key: '', command: program }, ...commandTree(program).map((n) => ({ key: n.path.join(' '), command: n.command }))];
  const globals = optionsOf(program);
  const globalValued = globals.filter(takesValue);

  const caseLines = (arms: [string, string][]): string => arms.map(([pattern, body]) => `    ${pattern}) ${body} ;;`).join('\n');
  const keyPattern = (key: string): string => `'${key}'`;

  // Subcommands of each command that has them.
  const subcommands = caseLines(
    nodes.filter((n) => n.command.commands.length).map((n) => [keyPattern(n.key), `echo '${n.command.commands.map((c) => shellWord(c.name())).join(' ')}${n.key === '' ? ' help' : ''}'`]),
  );
  // The options each command takes (before a command: the global ones).
  const options = caseLines(nodes.map((n) => [keyPattern(n.key), `echo '${optionsOf(n.command).flatMap(flagsOf).join(' ')}'`]));
  // Options that take a value, per command, and how it is completed; the global ones anywhere.
  const valueArms: [string, string][] = [];
  for (const n of nodes.slice(1)) {
    for (const opt of optionsOf(n.command).filter(takesValue)) valueArms.push([`${keyPattern(n.key)}:${flagsOf(opt).join(`|${keyPattern(n.key)}:`)}`, valueCompletion(opt)]);
  }
  for (const opt of globalValued) valueArms.push([flagsOf(opt).map((f) => `*:${f}`).join('|'), valueCompletion(opt)]);
  const values = caseLines(valueArms);
  // Positional arguments: mdev references (UUID or name) and mask specs.
  const argArms: [string, string][] = [];
  for (const n of nodes.slice(1)) {
    const first = argumentsOf(n.command)[0];
    if (!first || n.command.commands.length) continue;
    // An existing mdev (`<uuid|name>`), not the new UUID `mdev define [uuid]` takes.
    if (/^uuid/.test(first.name()) && first.required) argArms.push([keyPattern(n.key), `COMPREPLY=($(compgen -W "$(${fn}_mdevs)" -- "$cur"))`]);
    else if (first.name() === 'specs') argArms.push([keyPattern(n.key), `COMPREPLY=($(compgen -W 'apmask= aqmask=' -- "$cur")); compopt -o nospace 2>/dev/null`]);
  }
  const args = caseLines(argArms);

  return `# bash completion for ${name}: generated from the commander definitions by
# scripts/build-docs.ts (npm run build); do not edit.

# Options that take a value (the word after them is the value): "PATH:OPTION".
${fn}_valued() {
  case "$1:$2" in
${caseLines([
  ...nodes.slice(1).flatMap((n) => optionsOf(n.command).filter(takesValue).map((o): [string, string] => [`${keyPattern(n.key)}:${flagsOf(o).join(`|${keyPattern(n.key)}:`)}`, 'return 0'])),
  ...globalValued.map((o): [string, string] => [flagsOf(o).map((f) => `*:${f}`).join('|'), 'return 0']),
])}
  esac
  return 1
}

${fn}_subcommands() {
  case "$1" in
${subcommands}
  esac
}

${fn}_options() {
  case "$1" in
${options}
  esac
}

# The store's and the running mdevs, by UUID and by name, from the tool itself
# (on the --root and --config given on the line).
${fn}_mdevs() {
  "\${COMP_WORDS[0]}" \${${fn}_root:+--root "\$${fn}_root"} \${${fn}_config:+--config "\$${fn}_config"} mdev list --json 2>/dev/null |
    sed -n 's/^ *"\\(uuid\\|name\\)": *"\\([^"]*\\)".*/\\2/p'
}

${fn}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} path='' word option='' i=1 subs
  local ${fn}_root='' ${fn}_config=''
  COMPREPLY=()
  # The command path so far (e.g. "mdev modify"), skipping options and their values.
  while [ "$i" -lt "$COMP_CWORD" ]; do
    word=\${COMP_WORDS[i]}
    case "$word" in
      --root=*) ${fn}_root=\${word#--root=}; i=$((i + 1)); continue ;;
      --config=*) ${fn}_config=\${word#--config=}; i=$((i + 1)); continue ;;
      -*=*) i=$((i + 1)); continue ;;
      -*)
        if ${fn}_valued "$path" "$word"; then
          i=$((i + 1))
          [ "\${COMP_WORDS[i]}" = "=" ] && i=$((i + 1))
          if [ "$i" -lt "$COMP_CWORD" ]; then
            case "$word" in
              --root) ${fn}_root=\${COMP_WORDS[i]} ;;
              --config) ${fn}_config=\${COMP_WORDS[i]} ;;
            esac
          fi
        fi
        i=$((i + 1))
        continue
        ;;
    esac
    subs=" $(${fn}_subcommands "$path") "
    case "$subs" in
      *" $word "*) path=\${path:+$path }$word ;;
    esac
    i=$((i + 1))
  done
  # The value of an option: "--root DIR", "--root=DIR" (bash splits at the "=").
  if [ "$COMP_CWORD" -ge 2 ] && [ "\${COMP_WORDS[COMP_CWORD-1]}" = "=" ]; then
    option=\${COMP_WORDS[COMP_CWORD-2]}
  elif [ "$cur" = "=" ]; then
    option=\${COMP_WORDS[COMP_CWORD-1]}
    cur=''
  elif [ "$COMP_CWORD" -ge 1 ] && ${fn}_valued "$path" "\${COMP_WORDS[COMP_CWORD-1]}"; then
    option=\${COMP_WORDS[COMP_CWORD-1]}
  fi
  if [ -n "$option" ] && ${fn}_valued "$path" "$option"; then
    case "$path:$option" in
${values}
    esac
    return 0
  fi
  case "$cur" in
    -*)
      COMPREPLY=($(compgen -W "$(${fn}_options "$path")" -- "$cur"))
      return 0
      ;;
  esac
  subs=$(${fn}_subcommands "$path")
  if [ -n "$subs" ]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    return 0
  fi
  case "$path" in
${args}
  esac
  return 0
}

complete -F ${fn} ${name}
`;
}
