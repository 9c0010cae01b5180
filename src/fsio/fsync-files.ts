// Many new files made durable at once. One fsync after another pays one
// journal commit each (generate of 1,024 mdevs: 0.53-0.66 s of fsyncs on a
// journalled ext4); issued together, the file system commits them in groups
// (0.11 s with 16 in flight). Node's synchronous API cannot have two in
// flight, and the commands that write are synchronous: a worker thread issues
// them through libuv's pool while the caller waits on a shared flag.

import { closeSync, fsyncSync, openSync } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import { Worker } from 'node:worker_threads';

/** Below this many files the worker's start (about 30 ms here) costs more than it saves. */
export const PARALLEL_FROM = 64;
/** fsyncs in flight, and threads in libuv's pool when this process has not started it yet. */
const IN_FLIGHT = 16;
/**
 * The waits for the worker are bounded: one that does not start or does not
 * finish cannot say why while this thread waits. Past a bound the files are
 * synced here, one by one (a second fsync of a file costs nothing).
 */
const START_MS = 5_000;
const WAIT_MS = 60_000;

/** A file that could not be made durable, and why (an errno name). */
export interface FsyncFailure {
  path: string;
  code: string;
}

/** fsyncs every file of `paths`; returns the first that failed (all are tried), or undefined. */
export function fsyncFiles(paths: readonly string[]): FsyncFailure | undefined {
  if (paths.length >= PARALLEL_FROM) {
    const codes = inWorker(paths);
    if (codes) {
      const i = codes.findIndex((c) => c !== 0);
      return i < 0 ? undefined : { path: paths[i]!, code: errnoName(codes[i]!) };
    }
  }
  let failed: FsyncFailure | undefined;
  for (const path of paths) {
    const code = fsyncOne(path);
    if (code && !failed) failed = { path, code };
  }
  return failed;
}

function fsyncOne(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'EIO';
  }
  try {
    fsyncSync(fd);
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'EIO';
  } finally {
    closeSync(fd);
  }
}

const errnoName = (errno: number): string => {
  try {
    return getSystemErrorName(errno);
  } catch {
    return 'EIO';
  }
};

// The worker's whole program (CommonJS, evaluated): open, fsync and close each
// path, IN_FLIGHT at a time; the errno of each (0: durable) into the shared
// array after the flag. The flag: STARTED once it runs, then DONE, or FAILED
// on any exception (also one thrown in a callback), each time with the
// waiter woken.
const STARTED = 1;
const DONE = 2;
const FAILED = 3;
const WORKER = `
const { workerData: { shared, paths, inFlight } } = require('node:worker_threads');
const a = new Int32Array(shared);
const flag = (value) => { Atomics.store(a, 0, value); Atomics.notify(a, 0); };
process.on('uncaughtException', () => flag(${FAILED}));
flag(${STARTED});
const fs = require('node:fs');
let next = 0, running = 0;
const done = (i, err) => {
  if (err) a[i + 1] = err.errno || -5;
  running--;
  if (next < paths.length) one(next++);
  else if (running === 0) flag(${DONE});
};
const one = (i) => {
  running++;
  fs.open(paths[i], 'r', (err, fd) => {
    if (err) return done(i, err);
    fs.fsync(fd, (syncErr) => fs.close(fd, () => done(i, syncErr)));
  });
};
while (running < inFlight && next < paths.length) one(next++);
`;

/** The errno of each path's fsync (0: durable), or undefined when the worker could not do it. */
function inWorker(paths: readonly string[]): Int32Array | undefined {
  const shared = new SharedArrayBuffer(4 * (paths.length + 1));
  const a = new Int32Array(shared);
  // libuv sizes its pool once, at its first use (in the worker, below): this process has used it
  // for nothing before (its file I/O is synchronous), so the pool gets IN_FLIGHT threads.
  const setPoolSize = process.env.UV_THREADPOOL_SIZE === undefined;
  if (setPoolSize) process.env.UV_THREADPOOL_SIZE = String(IN_FLIGHT);
  try {
    const worker = new Worker(WORKER, { eval: true, workerData: { shared, paths, inFlight: IN_FLIGHT }, stdout: true, stderr: true });
    // It ends on its own once it has set the flag; it must not keep the process alive otherwise.
    worker.unref();
    // Its failure is answered below (the files synced here); the event node emits for it later, on
    // this thread, would otherwise end the process as an uncaught error after the command's work.
    worker.on('error', () => {});
    // A worker that cannot start (a preload node passes on that throws) says nothing this thread
    // could hear while it waits: a short bound for the start, the long one for the fsyncs.
    if (Atomics.wait(a, 0, 0, START_MS) === 'timed-out') return undefined;
    while (Atomics.load(a, 0) === STARTED) {
      if (Atomics.wait(a, 0, STARTED, WAIT_MS) === 'timed-out') return undefined;
    }
    return Atomics.load(a, 0) === DONE ? a.subarray(1) : undefined;
  } catch {
    return undefined;
  } finally {
    // For the pool's start only, not for the programs this process runs later.
    if (setPoolSize) delete process.env.UV_THREADPOOL_SIZE;
  }
}
