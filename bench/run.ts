// npm run bench: the speed targets of DESIGN.md, measured in one run as
// ratios against `node -e 0` (so a slow or busy machine moves both sides).
//
//   hook, nothing to change, 64 auto mdevs    <= 1.3 x node -e 0
//   callout pre-start                         <= 1.3 x node -e 0
//   check, 4,096 mdevs over all 65,536 APQNs   < 0.5 s wall, < 100 MiB
//   generate, 1,024 mdevs                      < 1 s

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { buildFakeHost } from '../src/fakehost/builder.js';
import { benchHosts } from './hosts.js';

const BIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const MEASURE = fileURLToPath(new URL('./measure.js', import.meta.url));
const RUNS = Number(process.env['BENCH_RUNS'] ?? 15);

interface Sample {
  wallMs: number;
  maxRssKiB: number;
  code: number;
}

function once(args: string[], input?: string): Sample {
  const t = performance.now();
  const r = spawnSync(process.execPath, args, { input: input ?? '', encoding: 'utf8' });
  const wallMs = performance.now() - t;
  let maxRssKiB = 0;
  const m = /^maxrss=(\d+)$/m.exec(r.stderr ?? '');
  if (m) maxRssKiB = Number(m[1]);
  return { wallMs, maxRssKiB, code: r.status ?? 1 };
}

/** Median wall time over RUNS, after one warm-up (page cache, not JIT: each run is a new process). */
function median(args: string[], input?: string): Sample {
  once(args, input);
  const samples = Array.from({ length: RUNS }, () => once(args, input));
  samples.sort((a, b) => a.wallMs - b.wallMs);
  return samples[Math.floor(samples.length / 2)]!;
}

const root = mkdtempSync(join(tmpdir(), 'ap-persist-bench-'));
const results: { name: string; value: string; target: string; ok: boolean }[] = [];
try {
  const hosts = benchHosts();
  for (const [name, spec] of Object.entries(hosts)) buildFakeHost(join(root, name), spec.host);

  // Interleave the baseline with each measurement so both see the same machine.
  const baseline = (): number => median(['-e', '0']).wallMs;

  const base1 = baseline();
  const hook = median(['--', BIN, '-q', '--root', join(root, 'hook64'), 'hook']);
  if (hook.code !== 0) throw new Error(`hook exited ${hook.code}`);
  results.push({ name: 'hook, nothing to change, 64 auto mdevs', value: `${hook.wallMs.toFixed(1)} ms = ${(hook.wallMs / base1).toFixed(2)} x node -e 0 (${base1.toFixed(1)} ms)`, target: '<= 1.3 x', ok: hook.wallMs / base1 <= 1.3 });

  const base2 = baseline();
  const c = hosts['hook64']!.callout!;
  const callout = median(['--', BIN, '--root', join(root, 'hook64'), 'callout', '-t', 'vfio_ap-passthrough', '-e', 'pre', '-a', 'start', '-s', 'none', '-u', c.uuid, '-p', 'matrix'], c.json);
  results.push({ name: 'callout pre-start', value: `${callout.wallMs.toFixed(1)} ms = ${(callout.wallMs / base2).toFixed(2)} x node -e 0 (${base2.toFixed(1)} ms), exit ${callout.code}`, target: '<= 1.3 x', ok: callout.code === 0 && callout.wallMs / base2 <= 1.3 });

  const check = median(['--', MEASURE, '--root', join(root, 'check4096'), 'check', '--persistent', '-q']);
  results.push({ name: 'check, 4,096 mdevs over 65,536 APQNs', value: `${check.wallMs.toFixed(0)} ms, ${(check.maxRssKiB / 1024).toFixed(0)} MiB max RSS, exit ${check.code}`, target: '< 500 ms, < 100 MiB', ok: check.code === 0 && check.wallMs < 500 && check.maxRssKiB < 100 * 1024 });

  const generate = median(['--', MEASURE, '--root', join(root, 'generate1024'), 'generate', '--dry-run', '-q']);
  results.push({ name: 'generate, 1,024 mdevs', value: `${generate.wallMs.toFixed(0)} ms, exit ${generate.code}`, target: '< 1000 ms', ok: generate.code === 0 && generate.wallMs < 1000 });
} finally {
  rmSync(root, { recursive: true, force: true });
}

const w = Math.max(...results.map((r) => r.name.length));
console.log(`ap-persist bench (${RUNS} runs each, median; node ${process.version})`);
for (const r of results) console.log(`${r.ok ? 'ok  ' : 'MISS'} ${r.name.padEnd(w)}  ${r.value}   target ${r.target}`);
process.exitCode = results.every((r) => r.ok) ? 0 : 1;
