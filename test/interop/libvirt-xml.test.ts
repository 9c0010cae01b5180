// The domain XML of the tests against libvirt's own schema: every fixture in
// test/fixtures/libvirt/ and the forms the fake libvirtd hands the qemu hook
// (test/support/fake-libvirtd/domain-xml.ts: with the id, with device
// aliases, without the id again) validate with `virt-xml-validate FILE
// domain` (Debian's libvirt-clients; it runs xmllint from libxml2-utils).
// The status files the tests write (the fake libvirtd's, modelled on
// libvirt's tests/qemustatusxml2xmldata, and the plain wrapping of
// test/runtime/libvirt-hook.test.ts) are well-formed, hold a valid domain,
// and our parser reads the guest's name and mdevs from them.

import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { TALK_GUEST1, TALK_GUEST2, TALK_GUEST3 } from '../../src/fakehost/talk-guests.js';
import { domainDevices } from '../../src/model/libvirt-domain.js';
import { domainOfStatus, statusXml, withHostdevAliases, withId, withoutId } from '../support/fake-libvirtd/domain-xml.js';
import { itWith, requireTools } from '../support/real-tools.js';

const req = requireTools('virt-xml-validate');
const FIXTURES = fileURLToPath(new URL('../fixtures/libvirt/', import.meta.url));
const FILES = readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.xml'))
  .sort();
const read = (file: string): string => readFileSync(join(FIXTURES, file), 'utf8');
const GUESTS = [
  { file: 'guest1.xml', name: 'Guest1', mdev: TALK_GUEST1 },
  { file: 'guest2.xml', name: 'Guest2', mdev: TALK_GUEST2 },
  { file: 'guest3.xml', name: 'Guest3', mdev: TALK_GUEST3 },
];

/** virt-xml-validate on a file, or on `input` given as `-`. */
function validate(file: string, input?: string): { code: number | null; out: string } {
  const r = spawnSync('virt-xml-validate', [file, 'domain'], { input, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}${r.error ? String(r.error) : ''}` };
}

function expectValid(xml: string, what: string): void {
  const r = validate('-', xml);
  expect(r.code, `${what}:\n${r.out}\n${xml}`).toBe(0);
}

/** The fake libvirtd's forms of a definition, in the order a start and a stop hand them to the hook. */
const hookForms = (def: string): Record<string, string> => {
  const prepare = withId(withoutId(def), 7);
  const start = withHostdevAliases(prepare);
  return { 'prepare begin': prepare, 'start begin': start, 'release end': withoutId(start) };
};

/** The status file as test/runtime/libvirt-hook.test.ts writes it. */
const plainStatus = (xml: string): string => `<domstatus state='running' reason='booted' pid='4242'>\n${xml}</domstatus>\n`;

describe("the tests' domain XML and libvirt's domain schema", () => {
  for (const file of FILES) {
    itWith(req, `${file} validates (virt-xml-validate FILE domain)`, () => {
      const r = validate(join(FIXTURES, file));
      expect(r.code, r.out).toBe(0);
      expect(r.out).toBe(`${join(FIXTURES, file)} validates\n`);
    });
  }

  itWith(req, 'an invalid domain fails, so a pass means something', () => {
    const r = validate('-', read('guest1.xml').replace("model='vfio-ap'", "model='vfio-nonsense'"));
    expect(r.code, r.out).not.toBe(0);
  });

  itWith(req, "what the fake libvirtd hands the hook validates: with the id, with the hostdev's alias, without the id again", () => {
    for (const g of GUESTS) {
      for (const [op, xml] of Object.entries(hookForms(read(g.file)))) expectValid(xml, `${g.file}, ${op}`);
    }
  });

  itWith(req, "the status files are well-formed XML around a valid domain", () => {
    for (const g of GUESTS) {
      const live = hookForms(read(g.file))['start begin']!;
      for (const status of [statusXml(live, { id: 7, name: g.name, pid: 4242 }), plainStatus(read(g.file))]) {
        const wf = spawnSync('xmllint', ['--noout', '-'], { input: status, encoding: 'utf8' });
        expect(wf.status, `xmllint (libxml2-utils): ${wf.stderr}${wf.error ? String(wf.error) : ''}\n${status}`).toBe(0);
        expectValid(domainOfStatus(status), `the domain in ${g.name}'s status file`);
      }
    }
  });
});

describe('the status files and our parser', () => {
  it("domainDevices reads the guest's name and its mdev from each form and each status file", () => {
    for (const g of GUESTS) {
      const forms = hookForms(read(g.file));
      for (const [op, xml] of Object.entries(forms)) expect(domainDevices(xml), `${g.file}, ${op}`).toMatchObject({ name: g.name, mdevs: [g.mdev] });
      const status = statusXml(forms['start begin']!, { id: 7, name: g.name, pid: 4242 });
      expect(domainDevices(status)).toMatchObject({ name: g.name, mdevs: [g.mdev] });
      expect(domainDevices(plainStatus(read(g.file)))).toMatchObject({ name: g.name, mdevs: [g.mdev] });
    }
    expect(domainDevices(statusXml(withId(read('no-vfio-ap.xml'), 1), { id: 1, name: 'Plain', pid: 4242 }))).toMatchObject({ name: 'Plain', mdevs: [] });
  });

  it('reconnect gets back the live definition the status file was written from', () => {
    for (const g of GUESTS) {
      const live = hookForms(read(g.file))['start begin']!;
      expect(domainOfStatus(statusXml(live, { id: 7, name: g.name, pid: 4242 }))).toBe(live);
    }
  });
});
