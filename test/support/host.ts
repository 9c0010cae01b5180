// Given a host: a fake root on disk built by the shared builder, and the CLI
// run in-process against it. `snapshot()` lets a test say "no file changed".

import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, existsSync, lstatSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { buildFakeHost, type FakeHost } from '../../src/fakehost/builder.js';
import { run } from '../../src/cli/program.js';
import type { Sysfs } from '../../src/sysfs/sysfs.js';
import { afterEveryTest } from './lifecycle.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TestHost {
  root: string;
  run(...args: string[]): Promise<RunResult>;
  /** Runs with --json and parses stdout. */
  json<T = any>(...args: string[]): Promise<{ code: number; doc: T; stderr: string }>;
  read(rel: string): string;
  exists(rel: string): boolean;
  /** True for a file or a link, even a link whose target is not under the root. */
  has(rel: string): boolean;
  storeText(): string;
  snapshot(): Map<string, string>;
}

// Every tempDir goes after the test that made it.
const roots: string[] = [];
afterEveryTest(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

export function tempDir(prefix = 'ap-persist-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  roots.push(dir);
  return dir;
}

export function givenHost(spec: FakeHost, options: { sysfs?: Sysfs; env?: Record<string, string>; journal?: boolean; columns?: number } = {}): TestHost {
  const root = tempDir();
  buildFakeHost(root, spec);
  const host: TestHost = {
    root,
    async run(...args) {
      let stdout = '';
      let stderr = '';
      const code = await run(
        ['--root', root, ...args],
        { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env: options.env ?? {}, journal: options.journal ?? false, ...(options.columns ? { columns: options.columns } : {}) },
        options.sysfs ? { sysfs: options.sysfs } : {},
      );
      return { code, stdout, stderr };
    },
    async json(...args) {
      const r = await host.run('--json', ...args);
      let doc: any;
      try {
        doc = JSON.parse(r.stdout);
      } catch {
        throw new Error(`not JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
      }
      return { code: r.code, doc, stderr: r.stderr };
    },
    read: (rel) => readFileSync(join(root, rel), 'utf8'),
    exists: (rel) => existsSync(join(root, rel)),
    has: (rel) => {
      try {
        lstatSync(join(root, rel));
        return true;
      } catch {
        return false;
      }
    },
    storeText: () => readFileSync(join(root, 'etc/ap-persist/ap-persist.conf'), 'utf8'),
    snapshot: () => snapshotTree(root),
  };
  return host;
}

/** Every file under `root` with its content (links as `-> target`). */
export function snapshotTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const st = lstatSync(path);
      if (st.isSymbolicLink()) out.set(relative(root, path), `-> ${readlinkSync(path)}`);
      else if (st.isDirectory()) walk(path);
      else out.set(relative(root, path), `${readFileSync(path, 'utf8')}|mode=${(statSync(path).mode & 0o777).toString(8)}`);
    }
  };
  walk(root);
  return out;
}
