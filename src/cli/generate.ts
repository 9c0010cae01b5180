// generate, install and uninstall. Their modules (and handlebars) load only when one of
// them runs: the boot-time hook goes through the same program.

import { Option, type Command } from 'commander';
import type { Wrap } from './program.js';

export function registerGenerate(program: Command, wrap: Wrap): void {
  program
    .command('generate')
    .description('write 41-ap.rules (chzdev format) and the systemd links from the store, then reload udev and systemd')
    .option('--dry-run', 'print what would be written and removed')
    .option('--diff', 'print a unified diff against the files there (changes nothing)')
    .option('--force', 'generate despite conflicts in the store, and replace files ap-persist did not write (chzdev)')
    .option('--no-reload', 'do not run udevadm control --reload and systemctl daemon-reload')
    .action(wrap(async (ctx, opts) => (await import('../commands/generate.js')).generate(ctx, opts)));
  program
    .command('install')
    .description('install the udev rule, systemd units, preset and mdevctl callout, then generate, enable the boot wait once (systemctl preset) and reload: the post-install step')
    .option('--staged', "a package build: only the package's files into the tree under --root (no store, generate, systemctl or ap-check set-aside)")
    .option('--bin <path>', 'the ap-persist script the rules, units and callout run (default: this one, symlinks resolved)')
    .option('--node <path>', 'the node binary they run it with (default: the one running now, symlinks resolved)')
    .addOption(
      new Option(
        '--libvirt-hooks <mode>',
        "where libvirt's qemu hook goes: qemu.d (/etc/libvirt/hooks/qemu.d/ap-persist, libvirt 6.5 and newer), chain (/etc/libvirt/hooks/qemu, running an existing one first), none; auto: chain when libvirtd --version says older than 6.5, else qemu.d",
      )
        .choices(['auto', 'qemu.d', 'chain', 'none'])
        .default('auto'),
    )
    .option('--no-reload', 'do not run udevadm control --reload and systemctl daemon-reload')
    .action(wrap(async (ctx, opts) => (await import('../commands/install.js')).install(ctx, opts)));
  program
    .command('uninstall')
    .description("disable what install enabled, remove what install and generate wrote (files changed since by chzdev or mdevctl stay) and put back s390-tools' ap-check: the removal step; the store stays")
    .option('--purge', 'delete the store too')
    .option('--no-reload', 'do not run udevadm control --reload and systemctl daemon-reload')
    .action(wrap(async (ctx, opts) => (await import('../commands/uninstall.js')).uninstall(ctx, opts)));
}
