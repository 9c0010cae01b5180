// The model behind the FUSE face: one SimKernel, the same as the in-process
// tests use, answering the adapter's filesystem requests on stdin/stdout.
// The mount's root holds `sys/` (the kernel's tree), `control` (events from
// outside sysfs: a module load, a card, a guest) and `state` (the model as
// JSON). Bundled by esbuild at test time; exits when its stdin closes.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { buildFakeHost } from '../../../src/fakehost/builder.js';
import { IdSet } from '../../../src/model/idset.js';
import { isUuid } from '../../../src/model/uuid.js';
import { KernelEventError, SimKernel, WouldBlockError, type ModuleName, type SysfsNodeInfo } from '../../../src/sysfs/sim-kernel.js';
import { SysfsError } from '../../../src/sysfs/sysfs.js';
import { CONTROL, STATE, type Request, type Response, type ServerConfig } from './protocol.js';

const MODULES: readonly ModuleName[] = ['vfio_ap', 'mtty'];
const ERRNO_NAME = /^E[A-Z0-9]+$/;

/** A request refused with an errno. */
class Errno extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

function kernelFor(config: ServerConfig): SimKernel {
  // The builder decides the bindings and creates the mdevs as an admin would;
  // the kernel is then read back from what it laid out.
  const root = mkdtempSync(join(tmpdir(), 'ap-persist-sim-host-'));
  try {
    const { masks, ...rest } = config.host;
    const parse = (hex: string): IdSet => IdSet.fromKernelHex(hex) ?? fail(`not a kernel mask: ${hex}`);
    buildFakeHost(root, { ...rest, masks: masks && { apmask: parse(masks.apmask), aqmask: parse(masks.aqmask) } });
    return SimKernel.fromDisk(root, config.kernel, { mtty: config.mtty });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function fail(message: string): never {
  throw new Error(message);
}

/** `/sys/bus/ap` -> `bus/ap`; undefined outside sys/. */
function sysPath(path: string): string | undefined {
  if (path === '/sys') return '';
  return path.startsWith('/sys/') ? path.slice('/sys/'.length) : undefined;
}

class Server {
  constructor(private readonly kernel: SimKernel) {}

  answer(req: Request): Response {
    try {
      switch (req.op) {
        case 'stat':
          return { node: this.stat(req.path) };
        case 'list':
          return { entries: this.list(req.path) };
        case 'read':
          return { data: this.read(req.path) };
        case 'write':
          this.write(req.path, req.data);
          return { done: true };
      }
    } catch (err) {
      // A write the real kernel would block on (remove of a guest-held mdev): the model has listed it in
      // hungRemoves (see `state`); the writer gets EINTR, so it fails visibly instead of hanging the test.
      if (err instanceof WouldBlockError) return { errno: 'EINTR' };
      if (err instanceof Errno || err instanceof SysfsError || err instanceof KernelEventError) return { errno: err.code };
      throw err;
    }
  }

  private stat(path: string): SysfsNodeInfo {
    if (path === '/') return { kind: 'dir' };
    if (path === `/${CONTROL}`) return { kind: 'attr', readable: false, writable: true };
    if (path === `/${STATE}`) return { kind: 'attr', readable: true, writable: false };
    const p = sysPath(path);
    return (p !== undefined ? this.kernel.stat(p) : undefined) ?? errno('ENOENT');
  }

  private list(path: string): string[] {
    if (path === '/') return [CONTROL, STATE, 'sys'];
    if (this.stat(path).kind !== 'dir') errno('ENOTDIR');
    return this.kernel.list(sysPath(path)!);
  }

  private read(path: string): string {
    if (path === `/${STATE}`) return `${JSON.stringify(this.kernel.state(), null, 1)}\n`;
    const node = this.stat(path);
    if (node.kind === 'dir') errno('EISDIR');
    if (node.kind === 'attr' && !node.readable) errno('EACCES');
    return this.kernel.read(sysPath(path)!);
  }

  private write(path: string, data: string): void {
    if (path === `/${CONTROL}`) return this.control(data);
    const node = this.stat(path);
    if (node.kind === 'dir') errno('EISDIR');
    this.kernel.write(sysPath(path)!, data);
  }

  /** One command per write: what happens to the kernel from outside sysfs. */
  private control(data: string): void {
    const [verb, ...args] = data.trim().split(/\s+/);
    const module = (name: string | undefined): ModuleName => (MODULES.includes(name as ModuleName) ? (name as ModuleName) : errno('EINVAL'));
    const errnoName = (name: string | undefined): string => (name && ERRNO_NAME.test(name) ? name : errno('EINVAL'));
    const count = (text: string | undefined): number => (text === undefined ? 1 : /^[1-9][0-9]*$/.test(text) ? Number(text) : errno('EINVAL'));
    switch (verb) {
      case 'load':
        if (args.length !== 1) errno('EINVAL');
        return this.kernel.loadModule(module(args[0]));
      case 'fail-load':
        if (args.length < 1 || args.length > 3) errno('EINVAL');
        return this.kernel.failLoad(module(args[0]), args[1] === undefined ? undefined : errnoName(args[1]), count(args[2]));
      case 'add-card': {
        const [adapter, hwtype] = args;
        if (args.length !== 2 || !/^[0-9a-f]{1,2}$/i.test(adapter!) || !/^[0-9]+$/.test(hwtype!)) errno('EINVAL');
        return this.kernel.addCard(parseInt(adapter!, 16), Number(hwtype));
      }
      case 'guest-running': {
        const [uuid, running] = args;
        if (args.length !== 2 || !isUuid(uuid!) || (running !== '1' && running !== '0')) errno('EINVAL');
        return this.kernel.setGuestRunning(uuid!.toLowerCase(), running === '1');
      }
      case 'fail-write': {
        const [path, code, times] = args;
        if (args.length < 2 || args.length > 3) errno('EINVAL');
        // As sysfs paths (`bus/ap/apmask`); the mount's `/sys/...` spelling is taken too.
        return this.kernel.failWrite(path!.replace(/^\/?sys\//, ''), errnoName(code), count(times));
      }
    }
    errno('EINVAL');
  }
}

function errno(code: string): never {
  throw new Errno(code);
}

function main(): void {
  const config = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as ServerConfig;
  const server = new Server(kernelFor(config));
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on('line', (line) => {
    let answer: Response;
    try {
      answer = server.answer(JSON.parse(line) as Request);
    } catch (err) {
      // A bug in the model fails the one request, loudly, and keeps the mount answering.
      process.stderr.write(`sim-sysfs server: ${line}: ${(err as Error).stack ?? String(err)}\n`);
      answer = { errno: 'EIO' };
    }
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  });
  lines.on('close', () => process.exit(0));
}

main();
