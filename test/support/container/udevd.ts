// Runs programs the way systemd-udevd runs a rule's RUN entry, inside a
// booted container (udevd itself does not run there: /sys is not writable).
//
// What udevd does (systemd 252, udev-event.c udev_event_spawn): it splits the
// RUN string itself (no shell), prefixes a relative program with the udev
// directory, and execve()s it from a worker with the event's properties as
// the WHOLE environment, stdin /dev/null, output logged at debug level only;
// the worker inherits the sandbox of systemd-udevd.service; after the event
// timeout (180 s by default) the program is killed with SIGKILL.
//
// The emulation: a transient service (systemd-run --wait --pipe) with every
// sandboxing directive of the distribution's own systemd-udevd.service (read
// from the container, drop-ins included), the event's properties as its
// environment, and what the service manager adds to every service's
// environment removed with UnsetEnvironment=.
//
// The manager's additions (systemd 252, probed per container rather than
// listed): PATH, LANG (the manager's locale), INVOCATION_ID and
// SYSTEMD_EXEC_PID; JOURNAL_STREAM only when output goes to the journal (not
// with --pipe). All of them can be unset, so the program sees exactly the
// event's properties. UnsetEnvironment=NAME would also drop the event's own
// NAME, so a manager variable that is also an event property is left set:
// its value is the event's anyway.
// Not the same as under udevd: the program's parent is PID 1, not a udevd
// worker, and its cgroup a transient service; stdout/stderr are sockets from
// the caller rather than pipes to udevd; an unsandboxed ExecStopPost= records
// how it ended after it exited.

import type { Container, ExecResult } from './container.js';

/** Where udevd looks for a RUN program given without a path (Debian's UDEVLIBEXECDIR). */
export const UDEV_LIBEXEC_DIR = '/lib/udev';
/** udevd's default event timeout (udev.conf event_timeout=180). */
export const UDEV_EVENT_TIMEOUT_MS = 180_000;
const RESULT_DIR = '/run/ap-persist-udevrun';

// Directives of systemd-udevd.service that confine its processes, and so every
// RUN program: applied to the emulation. (Exec and cgroup settings that
// systemd knows for services; the unit uses only some of them.)
const SANDBOX = new Set([
  'AmbientCapabilities', 'CapabilityBoundingSet', 'DeviceAllow', 'DevicePolicy', 'DynamicUser', 'Group',
  'InaccessiblePaths', 'IPAddressAllow', 'IPAddressDeny', 'KeyringMode', 'LockPersonality', 'MemoryDenyWriteExecute',
  'MountFlags', 'NoExecPaths', 'NoNewPrivileges', 'PrivateDevices', 'PrivateIPC', 'PrivateMounts', 'PrivateNetwork',
  'PrivateTmp', 'PrivateUsers', 'ProcSubset', 'ProtectClock', 'ProtectControlGroups', 'ProtectHome', 'ProtectHostname',
  'ProtectKernelLogs', 'ProtectKernelModules', 'ProtectKernelTunables', 'ProtectProc', 'ProtectSystem', 'ReadOnlyPaths',
  'ReadWritePaths', 'RemoveIPC', 'RestrictAddressFamilies', 'RestrictFileSystems', 'RestrictNamespaces',
  'RestrictRealtime', 'RestrictSUIDSGID', 'SecureBits', 'SocketBindAllow', 'SocketBindDeny', 'SupplementaryGroups',
  'SystemCallArchitectures', 'SystemCallErrorNumber', 'SystemCallFilter', 'SystemCallLog', 'TemporaryFileSystem',
  'UMask', 'User', 'BindPaths', 'BindReadOnlyPaths', 'ExecPaths', 'Personality',
]);

// Directives that do not confine a RUN program: how udevd itself is started,
// restarted, supervised and killed, and settings udevd resets for its workers.
const NOT_SANDBOX = new Set([
  'Type', 'ExecStart', 'ExecStartPre', 'ExecStartPost', 'ExecReload', 'ExecStop', 'ExecStopPost', 'Restart',
  'RestartSec', 'Sockets', 'KillMode', 'KillSignal', 'TasksMax', 'WatchdogSec', 'OOMScoreAdjust', 'Delegate',
  'FileDescriptorStoreMax', 'FileDescriptorStorePreserve', 'ReloadSignal', 'TimeoutSec', 'TimeoutStartSec',
  'TimeoutStopSec', 'NotifyAccess', 'RuntimeDirectory', 'RuntimeDirectoryPreserve', 'StateDirectory',
]);

export interface UdevdSandbox {
  /** `Key=Value` assignments for `systemd-run -p`, in the unit's order (list directives accumulate). */
  properties: string[];
  /** Directives of the unit that do not confine its processes. */
  skipped: string[];
}

/**
 * The sandbox of a systemd-udevd.service text (`systemctl cat` output: the
 * unit and its drop-ins). Throws on a [Service] directive that is in neither
 * list, so a new sandboxing directive is never dropped silently.
 */
export function parseUdevdSandbox(unitText: string): UdevdSandbox {
  const properties: string[] = [];
  const skipped: string[] = [];
  const unknown: string[] = [];
  let section = '';
  // Trailing backslashes continue a line.
  const lines = unitText.replace(/\\\n/g, ' ').split('\n');
  for (const raw of lines) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    if (section !== 'Service') continue;
    const eq = line.indexOf('=');
    if (eq < 0) throw new Error(`not a directive in systemd-udevd.service: ${line}`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (SANDBOX.has(key)) properties.push(`${key}=${value}`);
    else if (NOT_SANDBOX.has(key)) skipped.push(key);
    else unknown.push(line);
  }
  if (unknown.length) {
    throw new Error(`systemd-udevd.service has directives this emulation does not know; decide whether they confine RUN programs (test/support/container/udevd.ts): ${unknown.join('; ')}`);
  }
  if (!properties.some((p) => p.startsWith('MemoryDenyWriteExecute='))) {
    throw new Error('systemd-udevd.service has no MemoryDenyWriteExecute=: not the unit this emulation was written for');
  }
  return { properties, skipped };
}

interface UdevdSetup {
  sandbox: UdevdSandbox;
  /** Variables the service manager adds to every service (PATH, LANG, INVOCATION_ID, ...). */
  managerEnv: string[];
  builtins: string[];
}

const setups = new WeakMap<Container, Promise<UdevdSetup>>();

function check(what: string, r: ExecResult): ExecResult {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code ?? r.signal}: ${r.stderr.trim()}`);
  return r;
}

let unitCounter = 0;
const unitName = (): string => `ap-persist-udevrun-${process.pid}-${++unitCounter}-${Math.random().toString(36).slice(2, 6)}`;

function systemdRunArgv(unit: string, sandbox: UdevdSandbox, extra: string[], argv: readonly string[]): string[] {
  // DefaultDependencies=no: udevd runs programs from early boot on, not only after basic.target.
  return ['systemd-run', '--wait', '--pipe', '--quiet', '--collect', `--unit=${unit}`, '--property=DefaultDependencies=no', ...sandbox.properties.map((p) => `--property=${p}`), ...extra, '--', ...argv];
}

async function setup(c: Container): Promise<UdevdSetup> {
  let s = setups.get(c);
  if (!s) {
    s = (async () => {
      const unit = check('systemctl cat systemd-udevd.service', await c.systemctl('cat', 'systemd-udevd.service'));
      const sandbox = parseUdevdSandbox(unit.stdout);
      check(`mkdir ${RESULT_DIR}`, await c.exec(['mkdir', '-p', RESULT_DIR]));
      // What the manager puts into a service's environment when we set nothing.
      const probe = check('probing the service environment', await c.exec(systemdRunArgv(unitName(), sandbox, [], ['/usr/bin/env', '-0'])));
      const managerEnv = probe.stdout.split('\0').filter(Boolean).map((kv) => kv.slice(0, kv.indexOf('=')));
      // `udevadm test-builtin --help` lists the builtins (on stderr).
      const list = await c.exec(['udevadm', 'test-builtin', '--help']);
      const builtins = [...`${list.stdout}\n${list.stderr}`.matchAll(/^ {2}(\w+) {2,}\S/gm)].map((m) => m[1]!);
      if (!builtins.includes('kmod')) throw new Error(`cannot list udev's builtins: ${list.stderr}`);
      return { sandbox, managerEnv, builtins };
    })();
    setups.set(c, s);
  }
  return s;
}

/** The sandbox of the container's systemd-udevd.service, as `systemd-run -p` assignments. */
export async function udevdSandbox(c: Container): Promise<UdevdSandbox> {
  return (await setup(c)).sandbox;
}

export interface UdevRunResult extends ExecResult {
  /** The argv that was executed (a relative program made absolute as udevd does). */
  argv: string[];
  /** The service's result: success, exit-code, signal, core-dump, timeout. */
  result: string;
  /** How the program ended: exited, killed, dumped. */
  exitCode: string;
  /** Exit status (exited) or signal name without SIG (killed, dumped). */
  exitStatus: string;
  ms: number;
}

/**
 * Runs argv as udevd runs a RUN entry: no shell, `properties` as the whole
 * environment, in udevd's sandbox, killed after `timeoutMs` (udevd's event
 * timeout). The program's stdout/stderr come back (udevd would only log them).
 */
export async function runAsUdevd(
  c: Container,
  argv: readonly string[],
  properties: Record<string, string>,
  opts: { timeoutMs?: number } = {},
): Promise<UdevRunResult> {
  const { sandbox, managerEnv } = await setup(c);
  const [program, ...args] = argv;
  if (!program) throw new Error('runAsUdevd: empty argv');
  const exe = program.startsWith('/') ? program : `${UDEV_LIBEXEC_DIR}/${program}`;
  const timeoutMs = opts.timeoutMs ?? UDEV_EVENT_TIMEOUT_MS;
  const unit = unitName();
  const resultFile = `${RESULT_DIR}/${unit}`;
  // UnsetEnvironment=NAME also removes our own NAME=, so a manager variable
  // that is also an event property is not unset (the event's value wins anyway).
  const unset = managerEnv.filter((n) => !(n in properties));
  const extra = [
    ...Object.entries(properties).map(([k, v]) => `--setenv=${k}=${v}`),
    ...unset.map((n) => `--property=UnsetEnvironment=${n}`),
    // udevd kills a RUN program that outlives the event with SIGKILL.
    `--property=RuntimeMaxSec=${timeoutMs}ms`,
    '--property=KillSignal=SIGKILL',
    // How the program ended, which systemd-run --quiet does not tell
    // (unsandboxed: '+'; runs after the program, not instead of it).
    // By absolute path: the event's properties (maybe a PATH) are its environment too.
    `--property=ExecStopPost=+/bin/sh -c "/usr/bin/env > ${resultFile}"`,
  ];
  const t0 = Date.now();
  const r = await c.exec(systemdRunArgv(unit, sandbox, extra, [exe, ...args]), { timeoutMs: timeoutMs + 30_000 });
  const ms = Date.now() - t0;
  if (r.timedOut) {
    await c.exec(['systemctl', 'kill', '--signal=SIGKILL', unit]);
    await c.exec(['systemctl', 'reset-failed', unit]);
  }
  const dump = await c.exec(['sh', '-c', 'cat "$1" && rm -f "$1"', 'sh', resultFile]);
  if (dump.code !== 0) throw new Error(`no result from ${unit} (systemd-run: exit ${r.code}, ${r.stderr.trim()})`);
  const env = new Map(dump.stdout.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const));
  if (!env.has('SERVICE_RESULT')) throw new Error(`no result from ${unit}: ${dump.stdout}`);
  return {
    ...r,
    argv: [exe, ...args],
    result: env.get('SERVICE_RESULT') ?? '',
    exitCode: env.get('EXIT_CODE') ?? '',
    exitStatus: env.get('EXIT_STATUS') ?? '',
    ms,
  };
}

/**
 * Splits a RUN string as udev 252 does (strv_split_full with EXTRACT_UNQUOTE,
 * EXTRACT_RELAX and EXTRACT_RETAIN_ESCAPE): words separated by whitespace,
 * single or double quotes group (and are removed, also mid-word), backslashes
 * are kept as they are and escape nothing, an unclosed quote runs to the end.
 */
export function splitUdevCommand(cmd: string): string[] {
  const space = ' \t\n\r';
  const words: string[] = [];
  let i = 0;
  for (;;) {
    while (i < cmd.length && space.includes(cmd[i]!)) i++;
    if (i >= cmd.length) return words;
    let word = '';
    let quote = '';
    for (; i < cmd.length; i++) {
      const ch = cmd[i]!;
      if (quote) {
        if (ch === quote) quote = '';
        else word += ch;
      } else if (ch === '"' || ch === "'") quote = ch;
      else if (space.includes(ch)) break;
      else word += ch;
    }
    words.push(word);
  }
}

export interface UdevEvent {
  action: string;
  /** Without /sys, e.g. /devices/ap. */
  devpath: string;
  /**
   * A synthetic /sys for this query only: a tmpfs replaces the container's
   * /sys in a private mount namespace, holding these files (content) and
   * symlinks ({ symlink: target }), paths absolute under /sys. Without it the
   * container's /sys is used as it is.
   */
  sysfs?: Record<string, string | { symlink: string }>;
  /**
   * Where that tmpfs goes: /sys by default, or one directory below it, so the
   * rest of /sys (a fake kernel's attributes) stays what udev writes to.
   */
  sysfsMount?: string;
}

export interface UdevTestResult extends ExecResult {
  /** The event's properties after the rules: the environment of its RUN programs. */
  properties: Record<string, string>;
  /** Every RUN entry, formatted, in udev's order. */
  runs: string[];
  /** The RUN{program} entries, split as udevd splits them. */
  programs: string[][];
  /** The RUN{builtin} entries (e.g. `kmod load vfio_ap`), for the caller to emulate. */
  builtins: string[];
}

const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Asks the container's real `udevadm test` what an event yields: its
 * properties and RUN entries (with SYSTEMD_DEVICE_VERIFY_SYSFS=0, so a
 * synthetic /sys is accepted). `udevadm test` prints builtins and programs
 * alike; an entry whose first word names one of udevadm's builtins counts as
 * a builtin (a program so named would be /lib/udev/<name>, which no package ships).
 */
export async function udevTest(c: Container, event: UdevEvent): Promise<UdevTestResult> {
  const { builtins: builtinNames } = await setup(c);
  const test = `SYSTEMD_DEVICE_VERIFY_SYSFS=0 exec udevadm test --action=${shq(event.action)} ${shq(event.devpath)}`;
  let argv: string[];
  if (event.sysfs) {
    const mount = event.sysfsMount ?? '/sys';
    if (!`${mount}/`.startsWith('/sys/') || mount.split('/').includes('..')) throw new Error(`the synthetic sysfs must be /sys or below it: ${mount}`);
    const lines = ['set -e', `mount -t tmpfs ap-persist-sysfs ${shq(mount)}`];
    for (const [path, entry] of Object.entries(event.sysfs)) {
      if (!path.startsWith(`${mount}/`) || path.split('/').includes('..')) throw new Error(`sysfs path must be under ${mount}: ${path}`);
      lines.push(`mkdir -p ${shq(path.slice(0, path.lastIndexOf('/')))}`);
      lines.push(typeof entry === 'string' ? `printf '%s' ${shq(entry)} > ${shq(path)}` : `ln -s ${shq(entry.symlink)} ${shq(path)}`);
    }
    lines.push(test);
    argv = ['unshare', '-m', '--propagation', 'private', 'sh', '-c', lines.join('\n')];
  } else {
    argv = ['sh', '-c', test];
  }
  const r = await c.exec(argv);
  if (r.code !== 0) throw new Error(`udevadm test failed: exit ${r.code ?? r.signal}\n${r.stderr.slice(-4000)}`);
  const properties: Record<string, string> = {};
  const runs: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const run = /^run: '(.*)'$/.exec(line);
    if (run) runs.push(run[1]!);
    else {
      const prop = /^([A-Za-z0-9_.]+)=(.*)$/.exec(line);
      if (prop && runs.length === 0) properties[prop[1]!] = prop[2]!;
    }
  }
  const isBuiltin = (run: string): boolean => builtinNames.includes(splitUdevCommand(run)[0] ?? '');
  return {
    ...r,
    properties,
    runs,
    programs: runs.filter((run) => !isBuiltin(run)).map(splitUdevCommand),
    builtins: runs.filter(isBuiltin),
  };
}

export interface UdevEventRun {
  test: UdevTestResult;
  /** Each RUN{program} entry as udevd would have run it, in order. */
  programs: UdevRunResult[];
  /** RUN{builtin} entries, not run. */
  builtins: string[];
}

/** udevadm test for the event, then every RUN program of it under runAsUdevd. */
export async function runUdevEvent(c: Container, event: UdevEvent, opts: { timeoutMs?: number } = {}): Promise<UdevEventRun> {
  const test = await udevTest(c, event);
  const programs: UdevRunResult[] = [];
  for (const argv of test.programs) programs.push(await runAsUdevd(c, argv, test.properties, opts));
  return { test, programs, builtins: test.builtins };
}
