// Output written straight to the file descriptor. Making process.stdout or
// process.stderr loads node's stream (and, for the journal's socket or a
// pipe, net) modules: milliseconds of every hook and callout run, for a few
// lines. Node writes pipes, sockets, files and terminals synchronously on
// Linux anyway, so the order of what is written is the same.

import { fstatSync, writeSync } from 'node:fs';

export interface FdWriterOptions {
  /** The stream for the same descriptor: takes over, for good, when a non-blocking pipe is full (EAGAIN). */
  stream: () => NodeJS.WritableStream;
  /** The reader went away (EPIPE) or the descriptor is closed (EBADF); the rest is dropped. */
  onClosed?: () => void;
}

/** A writer of text to `fd` that never makes node's stream unless it has to wait (see FdWriterOptions). */
export function fdWriter(fd: number, opts: FdWriterOptions): (text: string) => void {
  let state: 'fd' | 'stream' | 'closed' = 'fd';
  return (text) => {
    if (state === 'stream') {
      opts.stream().write(text);
      return;
    }
    if (state === 'closed' || text === '') return;
    const buf = Buffer.from(text, 'utf8');
    // By offset, not by Buffer's subarray: node compiles that at its first call.
    for (let done = 0; done < buf.length; ) {
      try {
        done += writeSync(fd, buf, done, buf.length - done);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') {
          // A non-blocking pipe someone else made, full: the stream waits for the reader.
          state = 'stream';
          opts.stream().write(buf.subarray(done));
          return;
        }
        if (code === 'EPIPE' || code === 'EBADF') {
          state = 'closed';
          opts.onClosed?.();
          return;
        }
        throw err;
      }
    }
  };
}

/** Whether `fd` may be a terminal: a character device (a terminal, or /dev/null); pipes, sockets and files are not. */
export function mayBeTerminal(fd: number): boolean {
  try {
    return fstatSync(fd).isCharacterDevice();
  } catch {
    return false;
  }
}
