// Atomic file replacement: write a temp file beside the target, fsync it,
// rename it over the target, fsync the directory. A crash leaves either the
// old file or the new one, never half of each.

import { accessSync, closeSync, constants, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readlinkSync, realpathSync, renameSync, symlinkSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { RuntimeError } from '../errors.js';
import { fsyncFiles } from './fsync-files.js';
import { writeAll } from './write-all.js';
import { followTrusted } from './trust.js';

export interface AtomicWriteOptions {
  /** File mode for a new file; an existing file keeps its own. */
  mode?: number;
  /**
   * False for volatile state under /run (emptied at every boot anyway): the
   * rename still makes the write atomic, but no fsync waits for the disk.
   */
  durable?: boolean;
  /**
   * A symlink at `path` is written through to its target (the store, which
   * configuration management may link to its own file) when the target and
   * every directory above it are root's and no one else's to write; else
   * refused. Without it the link itself is replaced.
   */
  throughLink?: boolean;
  /** One of many writes of a command run: see WriteBatch. */
  batch?: WriteBatch;
}

export function writeFileAtomic(path: string, data: string, options: AtomicWriteOptions = {}): void {
  const target = options.throughLink ? linkTarget(path) : path;
  try {
    replace(target, data, options);
  } catch (err) {
    throw writeError(path, err);
  }
}

/** What writeFileAtomic, a batch's staged writes and writeMark throw when `path` cannot be written: `cause` is the error caught, or an errno name. */
export function writeError(path: string, cause: unknown): RuntimeError {
  const code = typeof cause === 'string' ? cause : ((cause as NodeJS.ErrnoException).code ?? (cause as Error).message);
  return new RuntimeError(`cannot write the file: ${code}`, {
    where: path,
    hint: code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? 'run as root, on a writable file system' : 'check that its directory can be created and written',
  });
}

/**
 * Throws what writeFileAtomic would about where it lands (a link it will not
 * write through, a read-only file system), before anything else is changed.
 */
export function checkWritable(path: string, options: Pick<AtomicWriteOptions, 'throughLink'> = {}): void {
  const target = options.throughLink ? linkTarget(path) : path;
  try {
    accessSync(dirname(target), constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return; // made on the first write
    throw new RuntimeError(`cannot write the file: ${code ?? (err as Error).message}`, { where: path, hint: 'run as root, on a writable file system' });
  }
}

/** Where a write through `path` lands: itself, or the target of the link there when that is safe. */
function linkTarget(path: string): string {
  try {
    if (!lstatSync(path).isSymbolicLink()) return path;
  } catch {
    return path;
  }
  let real: string;
  try {
    real = realpathSync(path);
  } catch (err) {
    throw new RuntimeError(`is a symbolic link to ${readlinkSync(path)}, which cannot be followed (${(err as NodeJS.ErrnoException).code})`, {
      where: path,
      hint: 'point the link at an existing file, or replace it with the file itself',
    });
  }
  // Every hop, not only where it ends: a hop another user owns could be re-pointed after the check.
  const followed = followTrusted(path);
  if ('unsafe' in followed) {
    throw new RuntimeError(`is a symbolic link to ${real}, and ${followed.unsafe} can be changed by a user other than root; root will not write through it`, {
      where: path,
      hint: `make ${followed.unsafe} root's and writable by root only, or replace the link with the file itself`,
    });
  }
  return followed.real;
}

/** A temporary file a killed run left beside `path` (its PID is gone): removed before the next write. */
export function removeLeftovers(dir: string, base: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  removeDead(dir, base, names);
}

/** Removes those of `names` (in `dir`) that are temporary files beside `base` of a writer that is gone. */
function removeDead(dir: string, base: string, names: readonly string[]): void {
  const prefix = `.${base}.tmp-`;
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number.parseInt(name.slice(prefix.length), 10);
    if (!Number.isInteger(pid) || pid <= 0 || pidAlive(pid)) continue;
    try {
      unlinkSync(join(dir, name));
    } catch {
      // another run cleaned it
    }
  }
}

/**
 * The writes of one command run into the same directories (generate's boot
 * files, thousands in one directory): each directory is listed once for a
 * dead writer's leftovers, not once per file, and synced once, by sync(),
 * not after each rename. Make one per run and drop it at the end: a listing
 * kept longer misses what a run killed meanwhile left (the fault suite runs
 * the CLI again and again in one process).
 */
export class WriteBatch {
  /** Per directory listed: its temporary-looking names, by each name they may sit beside. */
  private readonly temps = new Map<string, Map<string, string[]>>();
  /** Directories whose entries changed since the last sync(). */
  private readonly unsynced = new Set<string>();

  /** A dead writer's leftovers beside `dir`/`base`, as removeLeftovers, from one listing of `dir`. */
  removeLeftovers(dir: string, base: string): void {
    let byBase = this.temps.get(dir);
    if (!byBase) {
      byBase = new Map();
      let names: string[] = [];
      try {
        names = readdirSync(dir);
      } catch {
        // nothing to clean
      }
      for (const name of names) {
        if (!name.startsWith('.')) continue;
        // `.BASE.tmp-PID...`, where BASE may hold `.tmp-` itself: each split is a candidate.
        for (let i = name.indexOf('.tmp-', 1); i > 0; i = name.indexOf('.tmp-', i + 1)) {
          const candidates = byBase.get(name.slice(1, i));
          if (candidates) candidates.push(name);
          else byBase.set(name.slice(1, i), [name]);
        }
      }
      this.temps.set(dir, byBase);
    }
    const names = byBase.get(base);
    if (!names) return;
    byBase.delete(base);
    removeDead(dir, base, names);
  }

  /** `path` was created, replaced or removed: its directory goes to the next sync(). */
  changed(path: string): void {
    this.unsynced.add(dirname(path));
  }

  /** Directories made or found by makeDir: once per directory, not once per file in it. */
  private readonly dirs = new Set<string>();

  /** Makes `dir` (and its parents); those it made go to the next sync() with their parents. */
  makeDir(dir: string): void {
    if (this.dirs.has(dir)) return;
    const first = mkdirSync(dir, { recursive: true });
    this.dirs.add(dir);
    if (first === undefined) return;
    for (let d = dir; ; d = dirname(d)) {
      this.unsynced.add(dirname(d));
      if (d === first || dirname(d) === d) return;
    }
  }

  /** fsyncs every directory changed since the last call: the renames before it survive a crash. */
  sync(): void {
    for (const dir of this.unsynced) syncDir(dir);
    this.unsynced.clear();
  }

  /** Files written beside their place and not yet moved there: each temporary file by the path it replaces. */
  private readonly staged = new Map<string, string>();
  /** Those of the staged files already durable: only these may be moved into place. */
  private readonly durable = new Set<string>();

  /**
   * Writes `data` beside `path` (a new file gets `mode`, an existing one keeps
   * its own), to be moved there by commit(). `deferSync`: its fsync waits for
   * flush(), which makes all deferred files durable in one round (in parallel
   * when many); else it is synced now, through the descriptor that wrote it,
   * as writeFileAtomic does. Throws as writeFileAtomic does.
   */
  stage(path: string, data: string, mode: number | undefined, deferSync: boolean): void {
    try {
      const tmp = writeTemp(path, data, { mode, batch: this }, !deferSync);
      this.staged.set(path, tmp);
      if (!deferSync) this.durable.add(tmp);
    } catch (err) {
      throw writeError(path, err);
    }
  }

  /** Every staged file durable, or the first that could not be made so thrown (nothing moved yet). */
  flush(): void {
    const byTemp = new Map([...this.staged].filter(([, tmp]) => !this.durable.has(tmp)).map(([path, tmp]) => [tmp, path]));
    const failed = fsyncFiles([...byTemp.keys()]);
    if (failed) throw writeError(byTemp.get(failed.path)!, failed.code);
    for (const tmp of byTemp.keys()) this.durable.add(tmp);
  }

  /** The staged file of `path` into its place, once durable; its directory goes to the next sync(). */
  commit(path: string): void {
    const tmp = this.staged.get(path);
    if (tmp === undefined) throw new Error(`nothing staged for ${path}`);
    // Never a rename the disk could keep without the content: a crash would leave an empty file there.
    if (!this.durable.has(tmp)) throw new Error(`${path}: committed before flush()`);
    this.staged.delete(path);
    this.durable.delete(tmp);
    try {
      moveInto(tmp, path);
    } catch (err) {
      throw writeError(path, err);
    }
    this.changed(path);
  }

  /** Removes every staged file not committed: after a failure, nothing of them is left beside the files. */
  discard(): void {
    for (const tmp of this.staged.values()) {
      try {
        unlinkSync(tmp);
      } catch {
        // already gone
      }
    }
    this.staged.clear();
    this.durable.clear();
  }
}

/**
 * Replaces `path` with a symlink to `target` (never following one there):
 * a crash leaves the old entry or the new link. Not synced unless in a batch.
 */
export function symlinkAtomic(path: string, target: string, batch?: WriteBatch): void {
  const dir = dirname(path);
  prepareDir(dir, basename(path), batch);
  // Where nothing is, the link is made in place (a link is never seen half made); one made there
  // meanwhile (EEXIST) is replaced as any other.
  if (!lstatSync(path, { throwIfNoEntry: false })) {
    try {
      symlinkSync(target, path);
      batch?.changed(path);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${Date.now()}`);
  symlinkSync(target, tmp);
  try {
    renameSync(tmp, path);
  } catch (err) {
    unlinkSync(tmp);
    throw err;
  }
  batch?.changed(path);
}

/** Makes `dir` and clears a dead writer's leftovers beside `base` in it. */
function prepareDir(dir: string, base: string, batch: WriteBatch | undefined): void {
  if (!batch) {
    // Listed first: a directory there is not made again (the hook writes its report into one at every
    // event, and node's mkdirSync is compiled at its first call).
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      mkdirSync(dir, { recursive: true }); // made now: nothing left in it; or it says why not
      return;
    }
    removeDead(dir, base, names);
    return;
  }
  batch.makeDir(dir);
  batch.removeLeftovers(dir, base);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function replace(path: string, data: string, options: AtomicWriteOptions): void {
  const durable = options.durable !== false;
  moveInto(writeTemp(path, data, options, durable), path);
  if (!durable) return;
  // In a batch the directory is synced once, after all its renames (WriteBatch.sync).
  if (options.batch) options.batch.changed(path);
  else syncDir(dirname(path));
}

/** A temporary file beside `path` holding `data`, fsynced when `sync`; its name. */
function writeTemp(path: string, data: string, options: AtomicWriteOptions, sync: boolean): string {
  const dir = dirname(path);
  prepareDir(dir, basename(path), options.batch);
  // A regular file there keeps its mode; anything else gets the requested. Not through a link: the
  // rename replaces the link itself, and a rules file masked with a link to /dev/null is no 0666 file.
  let mode = options.mode ?? 0o644;
  try {
    const was = lstatSync(path, { throwIfNoEntry: false });
    if (was?.isFile()) mode = was.mode & 0o7777;
  } catch {
    // not to be looked at: the open below says why, or the file is new
  }
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${Date.now()}`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    // Never half a file renamed into place.
    writeAll(fd, Buffer.from(data, 'utf8'));
    if (sync) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  return tmp;
}

/** `tmp` renamed over `path`; removed when that fails. */
function moveInto(tmp: string, path: string): void {
  try {
    renameSync(tmp, path);
  } catch (err) {
    unlinkSync(tmp);
    throw err;
  }
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic.
  }
}
