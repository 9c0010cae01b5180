import type { Command } from 'commander';
import { libvirtHook, parseHookCall } from '../commands/libvirt-hook.js';
import type { Wrap } from './program.js';

export function registerLibvirtHook(program: Command, wrap: Wrap): void {
  program
    .command('libvirt-hook')
    .description("libvirt's qemu hook (/etc/libvirt/hooks/qemu.d/ap-persist, or hooks/qemu on libvirt before 6.5): makes a guest's `guest` mdevs before it starts, removes them after it stopped; the domain XML on stdin")
    .argument('<args...>', 'as libvirt passes them: the guest name, the operation, the sub-operation, an extra argument')
    .action(wrap((ctx, args: string[]) => libvirtHook(ctx, parseHookCall(args))));
}
