// Our mdevctl callout against the real s390-tools ap-check's answers,
// scenario by scenario (test/interop/ap-check-scenarios.ts: the hosts, the
// calls and ap-check 2.40.0's recorded answers). Ours runs as install writes
// it, in a private mount namespace. ap-check-live.test.ts (`npm run
// test:system`) checks the real ap-check, built from its source where it can
// be had, against the same record.

import { afterAll, beforeAll, describe, expect } from 'vitest';
import { buildCli } from '../callout/support.js';
import { itWith, MOUNT_NAMESPACE, requireTools } from '../support/real-tools.js';
import { apqnsNamed, outcome, runScenarios, SCENARIOS, type Answers } from './ap-check-scenarios.js';

const oursReq = requireTools('bash', MOUNT_NAMESPACE);

describe("ours against ap-check's answers, recorded from the real ap-check", () => {
  let results = new Map<string, Answers>();
  let cli: Awaited<ReturnType<typeof buildCli>> | undefined;

  beforeAll(async () => {
    if (oursReq.missing !== undefined) return;
    cli = await buildCli();
    results = await runScenarios({ ours: cli.main });
  }, 300_000);

  afterAll(() => {
    cli?.cleanup();
    if (!results.size) return;
    // The table, for whoever reads the log.
    const rows = SCENARIOS.map((s) => `${s.apCheck.padStart(8)} ${String(results.get(s.name)!.ours!.code).padStart(4)}  ${s.name}`);
    process.stdout.write(`\nap-check ours  scenario\n${rows.join('\n')}\n`);
  });

  for (const s of SCENARIOS) {
    itWith(oursReq, `${s.name}: ap-check ${s.apCheck === 'refuse' ? 'refuses' : s.apCheck === 'accept' ? 'accepts' : 'says not its type'}, ours ${s.ours === 'refuse' ? 'refuses' : s.ours === 'accept' ? 'accepts' : 'says not its type'}`, () => {
      const r = results.get(s.name)!.ours!;
      const show = `\nours: exit ${r.code}\n${r.stderr}${r.stdout}`;
      const ours = outcome(r.code);
      if (s.ours !== s.apCheck) expect(s.why, 'the table says why ours answers otherwise').toBeDefined();
      if (s.apCheck === 'refuse') {
        expect(ours, `ap-check refuses; ours must too${show}`).toBe('refuse');
        if (s.oursSays) expect(r.stderr, show).toMatch(s.oursSays);
        else expect(apqnsNamed(r.stderr, 'ours'), `ours names every APQN ap-check names${show}`).toEqual(expect.arrayContaining(s.apqns ?? []));
      }
      expect(ours, `ours${show}`).toBe(s.ours);
      if (ours === 'refuse' && s.oursSays) expect(r.stderr, show).toMatch(s.oursSays);
      if (s.attributes) expect(JSON.parse(r.stdout), show).toEqual(s.attributes);
    });
  }
});
