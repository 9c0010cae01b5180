// Test rig: a libvirtd as far as libvirt 9.0's qemu driver meets its qemu
// hooks, and a virsh to drive it; bundled into one CommonJS file and run in
// the booted container by the host's node (test/support/fake-libvirtd/index.ts).
//
//   daemon --sim CONTROL --record DIR    the service (libvirtd.service's ExecStart)
//   virsh start|destroy|domstate NAME    the client, over the daemon's socket
//
// As libvirt does it (docs/hooks.rst; src/util/virhook.c, vircommand.c,
// src/qemu/qemu_process.c):
// - The hooks are /etc/libvirt/hooks/qemu, then every executable entry of
//   qemu.d/ in strcmp order; whether there are any is looked up at start and
//   on SIGHUP only. Each runs with argv NAME OP SUB-OP -, the domain XML on
//   stdin, LC_ALL=C and the daemon's own PATH (and HOME, USER, ... only when
//   the daemon has them) as its whole environment, cwd /, stdout and stderr
//   captured, waited for without a timeout. All of them run; the lowest
//   result counts and the last failure is the error.
// - start: prepare begin; the mdevs looked up as qemuProcessPrepareHost does
//   (missing, or in use by another running domain: refused); start begin;
//   "QEMU" opens its mdevs (the simulated kernel's guest-running); the status
//   file; started begin. A failure stops the half-started domain: stopped
//   end, status file removed, release end, whose results are only logged.
// - destroy: QEMU gone, stopped end, status file removed, release end.
// - At daemon start: reconnect begin for each status file; a failure kills
//   that domain.
// Every hook run is appended to DIR/hooks.jsonl, one JSON object a line.

import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { domainOfStatus, statusXml, vfioApUuids, withHostdevAliases, withId, withoutId } from './domain-xml.js';

const HOOKS = '/etc/libvirt/hooks';
const CONFIG_DIR = '/etc/libvirt/qemu';
const STATE_DIR = '/run/libvirt/qemu';
const SOCKET = '/run/libvirt/libvirt-sock';
const MDEV_DEVICES = '/sys/bus/mdev/devices';
/** virCommandAddEnvPassCommon: passed on only when the daemon has them, in this order. */
const PASSED_ENV = ['LD_PRELOAD', 'LD_LIBRARY_PATH', 'DYLD_INSERT_LIBRARIES', 'DYLD_FORCE_FLAT_NAMESPACE', 'PATH', 'HOME', 'USER', 'LOGNAME', 'TMPDIR'];

interface Answer {
  code: number;
  stdout: string;
  stderr: string;
}

export interface HookRecord {
  at: number;
  name: string;
  op: string;
  sub: string;
  script: string;
  /** The exit status, or null when a signal ended it. */
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  ms: number;
}

class LibvirtError extends Error {}

// ---------------------------------------------------------------------------
// The daemon.

function daemon(args: string[]): void {
  const opt = (name: string): string => {
    const i = args.indexOf(name);
    if (i < 0 || !args[i + 1]) throw new Error(`daemon needs ${name}`);
    return args[i + 1]!;
  };
  const simControl = opt('--sim');
  const record = opt('--record');
  let nextId = 1;
  let hooksPresent = false;
  /** Running domains: id and QEMU's (made-up) pid. */
  const running = new Map<string, { id: number; pid: number; live: string }>();
  /** One job per domain at a time, as libvirt's domain job lock. */
  const jobs = new Map<string, Promise<unknown>>();

  const executable = (path: string): boolean => {
    try {
      const st = statSync(path);
      return st.isFile() && (st.mode & 0o111) !== 0;
    } catch {
      return false;
    }
  };
  const hookScripts = (): string[] => {
    const out = executable(`${HOOKS}/qemu`) ? [`${HOOKS}/qemu`] : [];
    let entries: string[] = [];
    try {
      entries = readdirSync(`${HOOKS}/qemu.d`);
    } catch {
      // no directory: no scripts there
    }
    // strcmp order: bytes, not the locale.
    entries.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    return [...out, ...entries.map((e) => `${HOOKS}/qemu.d/${e}`).filter(executable)];
  };
  // virHookInitialize: at start and on SIGHUP (reload).
  const initHooks = (): void => void (hooksPresent = hookScripts().length > 0);

  const hookEnv = (): Record<string, string> => {
    const env: Record<string, string> = { LC_ALL: 'C' };
    for (const k of PASSED_ENV) if (process.env[k] !== undefined) env[k] = process.env[k]!;
    return env;
  };
  // virCommandToString: the environment, then argv, each escaped for a shell where needed.
  const shellWord = (s: string): string => (/^[A-Za-z0-9_.,:/@%+=-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);
  const commandString = (env: Record<string, string>, argv: string[]): string =>
    [...Object.entries(env).map(([k, v]) => `${k}=${shellWord(v)}`), ...argv.map(shellWord)].join(' ');

  const runScript = (script: string, name: string, op: string, sub: string, input: string): Promise<HookRecord> =>
    new Promise((resolve) => {
      const at = Date.now();
      const child = spawn(script, [name, op, sub, '-'], { env: hookEnv(), cwd: '/', stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      // A hook that exits without reading its input: libvirt ignores the EPIPE.
      child.stdin.on('error', () => undefined);
      child.stdin.end(input);
      const done = (code: number | null, signal: string | null): void => {
        const r: HookRecord = { at, name, op, sub, script, code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: Date.now() - at };
        appendFileSync(`${record}/hooks.jsonl`, `${JSON.stringify(r)}\n`);
        resolve(r);
      };
      child.on('error', (e) => {
        err.push(Buffer.from(String(e)));
        done(127, null);
      });
      // 'close': both pipes at EOF and the process reaped, as virCommandRun waits.
      child.on('close', done);
    });

  /** virHookCall: every script, the original input for each (no filter ops here); throws the last failure. */
  const hook = async (name: string, op: string, sub: string, input: string): Promise<void> => {
    if (!hooksPresent) return;
    let failure: string | undefined;
    for (const script of hookScripts()) {
      const r = await runScript(script, name, op, sub, input);
      if (r.code === 0) continue;
      const how = r.code === null ? `fatal signal ${r.signal}` : `exit status ${r.code}`;
      failure = `Hook script execution failed: internal error: Child process (${commandString(hookEnv(), [script, name, op, sub, '-'])}) unexpected ${how}: ${r.stderr}`;
    }
    if (failure !== undefined) throw new LibvirtError(failure);
  };

  const definition = (name: string): string => {
    const file = `${CONFIG_DIR}/${name}.xml`;
    if (!existsSync(file)) throw new LibvirtError(`failed to get domain '${name}'`);
    return readFileSync(file, 'utf8');
  };

  // QEMU opening (or closing) the vfio device of each mdev.
  const qemuMdevs = (uuids: string[], open: boolean): void => {
    for (const uuid of uuids) writeFileSync(simControl, `guest-running ${uuid} ${open ? 1 : 0}`);
  };

  /** qemuProcessStop: QEMU gone, stopped end, the status file removed, release end; hook failures only logged. */
  const stopDomain = async (name: string, live: string, qemuUp: boolean): Promise<void> => {
    const uuids = vfioApUuids(live);
    if (qemuUp) {
      try {
        qemuMdevs(uuids, false);
      } catch {
        // the mdev is gone already
      }
    }
    running.delete(name);
    const stopped = withoutId(withHostdevAliases(live));
    await hook(name, 'stopped', 'end', stopped).catch(() => undefined);
    rmSync(`${STATE_DIR}/${name}.xml`, { force: true });
    await hook(name, 'release', 'end', stopped).catch(() => undefined);
  };

  const start = async (name: string): Promise<string> => {
    const def = definition(name);
    if (running.has(name)) throw new LibvirtError('Requested operation is not valid: domain is already running');
    const id = nextId++;
    const pid = 4000 + id * 10;
    let live = withId(def, id);
    let qemuUp = false;
    try {
      await hook(name, 'prepare', 'begin', live);
      // qemuProcessPrepareHost: each mdev must exist and be vfio-ap, and no other running domain may use it.
      for (const uuid of vfioApUuids(live)) {
        if (!existsSync(`${MDEV_DEVICES}/${uuid}`)) throw new LibvirtError(`device not found: mediated device '${uuid}' not found`);
        const api = readFileSync(`${MDEV_DEVICES}/${uuid}/mdev_type/device_api`, 'utf8').trim();
        if (api !== 'vfio-ap') throw new LibvirtError(`internal error: invalid device API 'vfio-ap' for device ${MDEV_DEVICES}/${uuid}: device only supports '${api}'`);
        for (const [other, dom] of running) {
          if (vfioApUuids(dom.live).includes(uuid)) throw new LibvirtError(`Requested operation is not valid: mediated device ${MDEV_DEVICES}/${uuid} is in use by driver QEMU, domain ${other}`);
        }
      }
      live = withHostdevAliases(live);
      await hook(name, 'start', 'begin', live);
      try {
        qemuMdevs(vfioApUuids(live), true);
      } catch (e) {
        throw new LibvirtError(`internal error: qemu unexpectedly closed the monitor: vfio: cannot open the mdev: ${String(e)}`);
      }
      qemuUp = true;
      running.set(name, { id, pid, live });
      mkdirSync(STATE_DIR, { recursive: true });
      writeFileSync(`${STATE_DIR}/${name}.xml`, statusXml(live, { id, name, pid }));
      await hook(name, 'started', 'begin', live);
    } catch (e) {
      await stopDomain(name, live, qemuUp);
      throw e;
    }
    return `Domain '${name}' started\n`;
  };

  const destroy = async (name: string): Promise<string> => {
    definition(name);
    const dom = running.get(name);
    if (!dom) throw new LibvirtError('Requested operation is not valid: domain is not running');
    await stopDomain(name, dom.live, true);
    return `Domain '${name}' destroyed\n`;
  };

  const command = async (argv: string[]): Promise<Answer> => {
    const [verb, name] = argv;
    const what: Record<string, string> = { start: 'Failed to start domain', destroy: 'Failed to destroy domain' };
    if (!name || !['start', 'destroy', 'domstate'].includes(verb ?? '')) return { code: 1, stdout: '', stderr: `error: unknown command: '${argv.join(' ')}'\n` };
    // The domain's job: one at a time per domain, other domains in parallel.
    const previous = jobs.get(name) ?? Promise.resolve();
    const job = previous.then(async (): Promise<Answer> => {
      try {
        if (verb === 'domstate') {
          definition(name);
          return { code: 0, stdout: `${running.has(name) ? 'running' : 'shut off'}\n\n`, stderr: '' };
        }
        return { code: 0, stdout: verb === 'start' ? await start(name) : await destroy(name), stderr: '' };
      } catch (e) {
        if (!(e instanceof LibvirtError)) throw e;
        const first = e.message.startsWith('failed to get domain') ? '' : `error: ${what[verb!]} '${name}'\n`;
        return { code: 1, stdout: '', stderr: `${first}error: ${e.message}\n` };
      }
    });
    jobs.set(name, job.catch(() => undefined));
    return job;
  };

  // Startup: the hooks looked up, then reconnect to what still runs (a daemon restart).
  initHooks();
  process.on('SIGHUP', initHooks);
  const reconnect = async (): Promise<void> => {
    let files: string[] = [];
    try {
      files = readdirSync(STATE_DIR).filter((f) => f.endsWith('.xml'));
    } catch {
      // nothing ran
    }
    for (const file of files) {
      const name = file.slice(0, -4);
      const status = readFileSync(join(STATE_DIR, file), 'utf8');
      const live = domainOfStatus(status);
      const id = Number(/<domain\b[^>]*\bid='(\d+)'/.exec(live)?.[1] ?? 0);
      nextId = Math.max(nextId, id + 1);
      running.set(name, { id, pid: Number(/pid='(\d+)'/.exec(status)?.[1] ?? 0), live });
      try {
        await hook(name, 'reconnect', 'begin', live);
      } catch {
        // libvirt kills a domain whose reconnect hook fails.
        await stopDomain(name, live, true);
      }
    }
  };

  void reconnect().then(() => {
    mkdirSync('/run/libvirt', { recursive: true });
    rmSync(SOCKET, { force: true });
    const server = createServer((sock: Socket) => {
      let buf = '';
      sock.on('data', (d: Buffer) => {
        buf += d.toString();
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        const argv = JSON.parse(buf.slice(0, nl)) as string[];
        void command(argv).then(
          (a) => sock.end(`${JSON.stringify(a)}\n`),
          (e: Error) => sock.end(`${JSON.stringify({ code: 1, stdout: '', stderr: `error: internal error: fake libvirtd: ${e.stack ?? String(e)}\n` })}\n`),
        );
      });
      sock.on('error', () => undefined);
    });
    server.listen(SOCKET, () => {
      // What the rig's own libvirtd records (booted-host.ts): the mdevs it found, then the start time last.
      let mdevs: string[] = [];
      try {
        mdevs = readdirSync(MDEV_DEVICES).sort();
      } catch {
        // no mdev bus: none
      }
      writeFileSync(`${record}/mdevs-at-start`, mdevs.map((m) => `${m}\n`).join(''));
      writeFileSync(`${record}/started`, `${(Date.now() / 1000).toFixed(3)}\n`);
    });
    process.on('SIGTERM', () => server.close(() => process.exit(0)));
  });
}

// ---------------------------------------------------------------------------
// virsh: one command over the socket; retries while the daemon is not up yet.

function virsh(argv: string[]): void {
  const deadline = Date.now() + 30_000;
  const attempt = (): void => {
    const sock = createConnection(SOCKET);
    let buf = '';
    sock.on('connect', () => sock.write(`${JSON.stringify(argv)}\n`));
    sock.on('data', (d: Buffer) => void (buf += d.toString()));
    sock.on('end', () => {
      const a = JSON.parse(buf) as Answer;
      process.stdout.write(a.stdout);
      process.stderr.write(a.stderr);
      process.exitCode = a.code;
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if ((e.code === 'ENOENT' || e.code === 'ECONNREFUSED') && Date.now() < deadline) {
        setTimeout(attempt, 100);
        return;
      }
      process.stderr.write(`error: failed to connect to the hypervisor\nerror: ${e.message}\n`);
      process.exitCode = 1;
    });
  };
  attempt();
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'daemon') daemon(rest);
else if (mode === 'virsh') virsh(rest);
else {
  process.stderr.write('usage: fake-libvirtd daemon --sim CONTROL --record DIR | virsh start|destroy|domstate NAME\n');
  process.exitCode = 2;
}
