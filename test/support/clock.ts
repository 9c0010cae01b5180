// The clock `wait` and the hook read (Date, setTimeout) as vitest's fake
// timers, ticking to the next timer as soon as nothing else is left to run:
// wait's grace period before it runs the hook itself (a third of --timeout),
// its 100 ms polls and its --timeout take no real time, while every time the
// code measures, every deadline and every message ("not up after 1 s") is
// what it is on the real clock. Only for in-process runs whose work is all in
// this process (the simulated kernel and runner, files under --root): a
// child process or a lock another process holds does not run on this clock.

import { vi } from 'vitest';

export async function onFakeClock<T>(fn: () => Promise<T>): Promise<T> {
  return (await timedOnFakeClock(fn)).value;
}

/** As onFakeClock, with the time that passed on that clock: what the run would have taken. */
export async function timedOnFakeClock<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
  vi.setTimerTickMode('nextTimerAsync');
  try {
    const t0 = Date.now();
    const value = await fn();
    return { value, ms: Date.now() - t0 };
  } finally {
    vi.useRealTimers();
  }
}
