// One truth with the peers: after generate, chzdev and mdevctl change the
// files they own. Every command then sees what the boot will use, says
// exactly what differs, and names the two ways out; the hook applies the
// peers' change rather than reverting it; import takes it in faithfully.

import { lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GUEST1, GUEST2, GUEST3, THREE_GUESTS_STORE, threeGuestsHost } from '../../src/fakehost/three-guests.js';
import { IdSet } from '../../src/model/idset.js';
import { parseChzdevRules } from '../../src/generate/chzdev-rules.js';
import { chzdevRulesText } from '../support/chzdev.js';
import { BINDINGS_COMPLETE, givenSimulatedHost, type SimHost } from '../support/sim-host.js';

const RULES = 'etc/udev/rules.d/41-ap.rules';
const APMASK = IdSet.full().minus(IdSet.of([5, 6]));
const AQMASK = IdSet.full().minus(IdSet.of([4, 0x47, 0xab, 0xff]));
const def = (uuid: string): string => `etc/mdevctl.d/matrix/${uuid}`;

/** The three-guest host, booted fresh, after `ap-persist generate`: the store and its boot files agree. */
async function generatedHost(): Promise<SimHost> {
  const host = givenSimulatedHost(threeGuestsHost(), '6.0');
  const g = await host.run(['generate']);
  expect(g.code, g.stderr).toBe(0);
  return host;
}

/** Whether the path is there; a generated link dangles until install has put its unit in place. */
function present(host: SimHost, rel: string): boolean {
  try {
    lstatSync(join(host.root, rel));
    return true;
  } catch {
    return false;
  }
}

function write(host: SimHost, rel: string, text: string): void {
  mkdirSync(dirname(join(host.root, rel)), { recursive: true });
  writeFileSync(join(host.root, rel), text);
}

/** What `mdevctl modify` leaves: the definition JSON with `edit` applied. */
function mdevctlEdit(host: SimHost, uuid: string, edit: (d: { start: string; attrs: Record<string, string>[] }) => void): void {
  const path = join(host.root, def(uuid));
  const doc = JSON.parse(readFileSync(path, 'utf8'));
  edit(doc);
  writeFileSync(path, JSON.stringify(doc, null, 2));
}

describe('chzdev changes the persistent masks after generate', () => {
  // `chzdev -t ap -p apmask=-8`: adapter 8 is freed for vfio_ap too.
  const chzdevFrees8 = (host: SimHost): void => write(host, RULES, chzdevRulesText(APMASK.minus(IdSet.of([8])), AQMASK));

  it('status and check show the exact difference and both ways out; mask show shows what the boot applies', async () => {
    const host = await generatedHost();
    chzdevFrees8(host);
    const status = await host.run(['status']);
    expect(status.stdout).toContain('boot files: 1 change(s) by other tools since ap-persist wrote them; the boot uses them:');
    expect(status.stdout).toContain('/etc/udev/rules.d/41-ap.rules was changed since ap-persist wrote it (chzdev -t ap writes it)');
    expect(status.stdout).toContain('apmask: store adapters 0-4,7-255; on disk adapters 0-4,7,9-255 (frees adapter(s) 8 for vfio_ap)');
    expect(status.stdout).toContain("'ap-persist import'");
    expect(status.stdout).toContain("'ap-persist generate --force'");

    const check = await host.run(['check']);
    expect(check.code, check.stderr).toBe(0);
    expect(check.stderr).toContain('apmask: store adapters 0-4,7-255; on disk adapters 0-4,7,9-255');

    const json = (await host.run(['--json', 'mask', 'show'])).stdout;
    expect(JSON.parse(json).persistent.apmask).toBe('0-4,7,9-255');
  });

  it('the hook applies chzdev\'s masks, not the store\'s, and reports the drift', async () => {
    const host = await generatedHost();
    chzdevFrees8(host);
    const r = await host.run(['hook'], BINDINGS_COMPLETE);
    expect(r.code, r.stderr).toBe(0);
    expect(host.kernel().read('bus/ap/apmask').trim()).toBe(`0x${APMASK.minus(IdSet.of([8])).toKernelHex().slice(2)}`);
    const report = JSON.parse(host.read('run/ap-persist/last-hook.json'));
    expect(report.drift).toEqual([expect.stringContaining('apmask: store adapters 0-4,7-255; on disk adapters 0-4,7,9-255')]);
    expect(r.stderr + r.stdout).toContain('drift (applied as on disk');
  });

  it('generate refuses (3) without a word changed; import takes it in, and the round trip is identical', async () => {
    const host = await generatedHost();
    chzdevFrees8(host);
    const before = readFileSync(join(host.root, RULES), 'utf8');
    expect((await host.run(['generate'])).code).toBe(3);
    expect(readFileSync(join(host.root, RULES), 'utf8')).toBe(before);

    const imp = await host.run(['import', '--from', 'chzdev']);
    expect(imp.code, imp.stderr).toBe(0);
    expect(imp.stdout).toContain('imported apmask "0-4,7,9-255" from chzdev (store: "0-4,7-255")');
    expect((await host.run(['generate'])).code).toBe(0);
    // lszdev reads the same masks from our file as from chzdev's.
    const ours = parseChzdevRules(readFileSync(join(host.root, RULES), 'utf8'));
    const theirs = parseChzdevRules(before);
    expect(ours.apmask!.equals(theirs.apmask!) && ours.aqmask!.equals(theirs.aqmask!)).toBe(true);
    expect((await host.run(['status'])).stdout).toContain('boot files: up to date with the store');
  });

  it('a removal (chzdev -r apmask) is imported as "not set", and generate writes no apmask line', async () => {
    const host = await generatedHost();
    // chzdev writes only the mask that is still set.
    write(host, RULES, chzdevRulesText(APMASK, AQMASK).replace(/^ATTR\{\.\.\/\.\.\/bus\/ap\/apmask\}=.*\n/m, ''));
    expect((await host.run(['check'])).stderr).toContain('apmask: store adapters 0-4,7-255; on disk not set');
    const imp = await host.run(['import', '--from', 'chzdev']);
    expect(imp.code, imp.stderr).toBe(0);
    expect(imp.stdout).toContain('imported removal of apmask from chzdev');
    expect(host.read('etc/ap-persist/ap-persist.conf')).not.toMatch(/^apmask/m);
    expect((await host.run(['generate'])).code).toBe(0);
    const parsed = parseChzdevRules(host.read(RULES));
    expect(parsed.apmask).toBeUndefined();
    expect(parsed.aqmask!.equals(AQMASK)).toBe(true);
  });

  it("chzdev sets masks where the store sets none: the way out named is chzdev's removal, since generate --force leaves a file it does not write", async () => {
    const store = THREE_GUESTS_STORE.replace(/^apmask = .*\n/m, '').replace(/^aqmask = .*\n/m, '');
    const host = givenSimulatedHost({ ...threeGuestsHost(), store }, '6.0');
    write(host, RULES, chzdevRulesText(APMASK, AQMASK));
    const status = (await host.run(['status'])).stdout;
    expect(status).toContain("keep chzdev's masks: 'ap-persist import --from chzdev'; or drop them: 'chzdev -t ap -p -r apmask -r aqmask' (the store sets none, so 'ap-persist generate --force' leaves the file)");
    expect(status).not.toContain("put the store's back");
    // As it says: --force leaves the file.
    expect((await host.run(['generate', '--force'])).code).toBe(0);
    expect(host.read(RULES)).toBe(chzdevRulesText(APMASK, AQMASK));
  });

  it('a line zdev drops in chzdev\'s file: the masks are still the file\'s, and check names the line', async () => {
    const host = await generatedHost();
    const rules = chzdevRulesText(APMASK.minus(IdSet.of([8])), AQMASK);
    write(host, RULES, rules.replace(/^(ATTR\{\.\.\/\.\.\/bus\/ap\/apmask\}.*)$/m, '- keep adapter 8 for vfio\n$1'));
    const check = await host.run(['check']);
    expect(check.stderr).toMatch(/41-ap\.rules:\d+ is not a udev rule: - keep adapter 8 for vfio; chzdev, lszdev and ap-check skip it/);
    expect(check.stderr).toContain('apmask: store adapters 0-4,7-255; on disk adapters 0-4,7,9-255');
    expect(check.stderr).not.toContain('cannot be read as chzdev writes it');
  });

  it('a deleted 41-ap.rules is reported, never silently rewritten; import drops both masks', async () => {
    const host = await generatedHost();
    rmSync(join(host.root, RULES));
    expect((await host.run(['status'])).stdout).toContain('/etc/udev/rules.d/41-ap.rules was removed (chzdev -r?); the boot sets no persistent masks');
    expect((await host.run(['generate'])).code).toBe(3);
    expect(present(host, RULES)).toBe(false);
    expect((await host.run(['import', '--from', 'chzdev'])).code).toBe(0);
    expect(host.read('etc/ap-persist/ap-persist.conf')).not.toMatch(/^a[pq]mask/m);
  });
});

describe('mdevctl edits our mdevs after generate', () => {
  it('an undefine: the hook does not start it, status says so, import undefines it in the store', async () => {
    const host = await generatedHost();
    rmSync(join(host.root, def(GUEST3)));
    expect((await host.run(['status'])).stdout).toContain(`mdev ${GUEST3} (guest3) was undefined in mdevctl`);
    const r = await host.run(['hook'], BINDINGS_COMPLETE);
    expect(r.code, r.stderr).toBe(0);
    expect(host.kernel().exists(`devices/vfio_ap/matrix/${GUEST3}`)).toBe(false);
    expect(host.kernel().exists(`devices/vfio_ap/matrix/${GUEST2}`)).toBe(true);
    // The target, up, wants guest3's linked unit too: the hook holds it back, and says why where systemd looks.
    expect(host.runner()!.units.get('ap-persist-mdevs.target')).toBe(0);
    expect(host.runner()!.units.has(GUEST3)).toBe(false);
    expect(host.read(`run/ap-persist/held/${GUEST3}`)).toContain("not an auto mdev of the boot's configuration");

    const imp = await host.run(['import', '--from', 'mdevctl']);
    expect(imp.code, imp.stderr).toBe(0);
    expect(imp.stdout).toContain(`imported undefine of mdev ${GUEST3} (guest3) from mdevctl`);
    expect(host.read('etc/ap-persist/ap-persist.conf')).not.toContain(GUEST3);
    expect((await host.run(['generate'])).code).toBe(0);
    expect(present(host, `etc/systemd/system/ap-persist-mdevs.target.wants/ap-persist-mdev@${GUEST3}.service`)).toBe(false);
  });

  it('an undefine of a running mdev (undefine does not stop it): import from all takes the undefine, not the running mdev back as auto', async () => {
    const host = await generatedHost();
    expect((await host.run(['hook'], BINDINGS_COMPLETE)).code).toBe(0);
    expect(host.kernel().exists(`devices/vfio_ap/matrix/${GUEST3}`)).toBe(true);
    rmSync(join(host.root, def(GUEST3)));
    const imp = await host.run(['import']);
    expect(imp.code, imp.stderr).toBe(0);
    expect(imp.stdout).toContain(`imported undefine of mdev ${GUEST3} (guest3) from mdevctl`);
    expect(imp.stdout).not.toContain('from sysfs');
    expect(host.read('etc/ap-persist/ap-persist.conf')).not.toContain(GUEST3);
    expect(present(host, def(GUEST3))).toBe(false);
  });

  it("another mdev type's definition under a store mdev's UUID: said so, not that the file is gone; the boot does not start it", async () => {
    const host = await generatedHost();
    write(host, def(GUEST3), JSON.stringify({ mdev_type: 'vfio_ccw-io', start: 'auto', attrs: [] }, null, 2));
    const status = (await host.run(['status'])).stdout;
    expect(status).toContain(`mdevctl's definition under mdev ${GUEST3} (guest3)'s UUID (/${def(GUEST3)}) is of another mdev type now; the boot does not start it as vfio_ap's`);
    expect(status).not.toContain(`${def(GUEST3)} is gone`);
  });

  it('modify --manual and an attribute change: the boot uses mdevctl\'s definition; import takes both', async () => {
    const host = await generatedHost();
    mdevctlEdit(host, GUEST1, (d) => {
      d.start = 'manual';
    });
    mdevctlEdit(host, GUEST2, (d) => {
      d.attrs = d.attrs.filter((a) => a['assign_domain'] !== '255');
    });
    const check = await host.run(['check']);
    expect(check.stderr).toContain('start auto -> manual');
    expect(check.stderr).toContain('domains 71,255 -> 71');
    const r = await host.run(['hook'], BINDINGS_COMPLETE);
    expect(r.code, r.stderr).toBe(0);
    expect(host.kernel().exists(`devices/vfio_ap/matrix/${GUEST1}`)).toBe(false);
    expect(host.kernel().read(`devices/vfio_ap/matrix/${GUEST2}/matrix`)).toBe('05.0047\n');

    const imp = await host.run(['import', '--from', 'mdevctl']);
    expect(imp.code, imp.stderr).toBe(0);
    expect(imp.stdout).toContain(`mdev ${GUEST1} (guest1): start manual (was auto) from mdevctl`);
    expect(imp.stdout).toContain(`imported mdev ${GUEST2} (guest2): adapters 5, domains 71, start auto from mdevctl (replaces the store's)`);
    expect((await host.run(['generate'])).code).toBe(0);
    expect((await host.run(['status'])).stdout).toContain('boot files: up to date with the store');
  });

  it("modify --manual of a running guest's mdev: events leave it be (status tells); once it is down, the boot's rule is mdevctl's", async () => {
    const host = await generatedHost();
    expect((await host.run(['hook'], BINDINGS_COMPLETE)).code).toBe(0);
    mdevctlEdit(host, GUEST1, (d) => {
      d.start = 'manual';
    });
    // The hook does nothing to an active mdev, whatever its definition says: it does not read it.
    const r = await host.run(['--json', 'hook'], { ...BINDINGS_COMPLETE, COMPLETECOUNT: '2' });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.drift).toBeUndefined();
    expect(report.mdevs.map((m: { outcome: string }) => m.outcome)).toEqual(['already-active', 'already-active', 'already-active']);
    expect(host.kernel().exists(`devices/vfio_ap/matrix/${GUEST1}`)).toBe(true);
    // status reads everything: the drift is there for the admin.
    expect((await host.run(['status'])).stdout).toContain(`mdevctl's definition of mdev ${GUEST1} (guest1)`);
    // Its guest is gone and the mdev stopped: the next event reads it and keeps it down, held back with the reason.
    await host.runner()!.run('systemctl', ['--no-block', 'stop', `ap-persist-mdev@${GUEST1}.service`]);
    const later = JSON.parse((await host.run(['--json', 'hook'], { ...BINDINGS_COMPLETE, COMPLETECOUNT: '3' })).stdout);
    expect(later.drift?.join('\n')).toContain(`mdev ${GUEST1} (guest1)`);
    expect(later.mdevs.map((m: { uuid: string }) => m.uuid)).toEqual([GUEST2, GUEST3]);
    expect(host.kernel().exists(`devices/vfio_ap/matrix/${GUEST1}`)).toBe(false);
    expect(host.read(`run/ap-persist/held/${GUEST1}`)).toContain("not an auto mdev of the boot's configuration");
  });

  it('modify --auto of a manual mdev that conflicts: check reports the conflict mdevctl made', async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0');
    expect((await host.run(['mdev', 'modify', GUEST3, '--start', 'manual'])).code).toBe(0);
    expect((await host.run(['mdev', 'modify', GUEST3, '--domains', '4'])).code).toBe(0);
    expect((await host.run(['generate'])).code).toBe(0);
    mdevctlEdit(host, GUEST3, (d) => {
      d.start = 'auto';
    });
    const check = await host.run(['check']);
    expect(check.code).toBe(3);
    expect(check.stdout + check.stderr).toContain('06.0004');
    expect(check.stderr).toContain('start manual -> auto');
  });

  it('an attribute the store cannot hold is refused by import with what and why, nothing changed', async () => {
    const host = await generatedHost();
    mdevctlEdit(host, GUEST2, (d) => {
      d.attrs.push({ 'added-attr': 'x' });
    });
    const before = host.read('etc/ap-persist/ap-persist.conf');
    const imp = await host.run(['import', '--from', 'mdevctl']);
    expect(imp.code).toBe(2);
    expect(imp.stderr).toContain(`{"added-attr":"x"}, which the store cannot hold`);
    expect(host.read('etc/ap-persist/ap-persist.conf')).toBe(before);
  });

  it('ap_config and unassign_* import with the matrix vfio_ap builds from them', async () => {
    const host = await generatedHost();
    const hex = (ids: number[]): string => IdSet.of(ids).toKernelHex();
    mdevctlEdit(host, GUEST2, (d) => {
      // ap_config replaces everything before it; the unassign after it removes domain 0xff again.
      d.attrs = [{ assign_adapter: '6' }, { ap_config: `${hex([5])},${hex([0x47, 0xff])},${hex([])}` }, { unassign_domain: '0xff' }];
    });
    expect((await host.run(['import', '--from', 'mdevctl'])).code).toBe(0);
    expect(host.read('etc/ap-persist/ap-persist.conf')).toContain(`[mdev.${GUEST2}]\nname = guest2\nadapters = 5\ndomains = 71\n`);
  });
});

describe('values as the kernel reads them', () => {
  it('"0010" in an mdevctl definition is domain 8 in every check', async () => {
    const host = givenSimulatedHost(threeGuestsHost(), '6.0');
    write(host, 'etc/ap-persist/ap-persist.conf', `${host.read('etc/ap-persist/ap-persist.conf')}\n[mdev.0badc0de-0000-4000-8000-000000000008]\nadapters = 5\ndomains = 8\nstart = auto\n`);
    write(host, 'etc/ap-persist/ap-persist.conf', host.read('etc/ap-persist/ap-persist.conf').replace('aqmask = 0-3,5-70,72-170,172-254', 'aqmask = 0-3,5-7,9-70,72-170,172-254'));
    write(host, def('0badc0de-0000-4000-8000-000000000010'), JSON.stringify({ mdev_type: 'vfio_ap-passthrough', start: 'auto', attrs: [{ assign_adapter: '5' }, { assign_domain: '0010' }] }, null, 2));
    const check = await host.run(['check']);
    expect(check.code).toBe(3);
    expect(check.stdout + check.stderr).toContain('05.0008');
  });
});

describe('edits persist at once on a host with boot files', () => {
  it('mdev define regenerates mdevctl\'s definition and the unit link in the same command', async () => {
    const host = await generatedHost();
    const uuid = '0badc0de-0000-4000-8000-0000000000aa';
    expect((await host.run(['mask', 'set', '--persistent', 'apmask=-7'])).code).toBe(0);
    expect(parseChzdevRules(host.read(RULES)).apmask!.has(7)).toBe(false);
    const r = await host.run(['mdev', 'define', uuid, '--adapters', '7', '--domains', '4']);
    expect(r.code, r.stderr).toBe(0);
    expect(present(host, def(uuid))).toBe(true);
    expect(present(host, `etc/systemd/system/ap-persist-mdevs.target.wants/ap-persist-mdev@${uuid}.service`)).toBe(true);
    expect((await host.run(['mdev', 'undefine', uuid])).code).toBe(0);
    expect(present(host, def(uuid))).toBe(false);
  });

  it('--no-generate changes the store alone, and status says the boot files are stale', async () => {
    const host = await generatedHost();
    expect((await host.run(['mdev', 'modify', GUEST2, '--start', 'manual', '--no-generate'])).code).toBe(0);
    expect(JSON.parse(host.read(def(GUEST2))).start).toBe('auto');
    expect((await host.run(['status'])).stdout).toMatch(/boot files: stale, \d+ file\(s\) behind the store/);
  });

  it('an edit over a peer\'s change is refused (3) and leaves the store as it was', async () => {
    const host = await generatedHost();
    write(host, RULES, chzdevRulesText(APMASK.minus(IdSet.of([8])), AQMASK));
    const store = host.read('etc/ap-persist/ap-persist.conf');
    const r = await host.run(['mdev', 'modify', GUEST1, '--name', 'renamed']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('refused: the edit would regenerate boot files that another tool changed; the store is unchanged');
    expect(host.read('etc/ap-persist/ap-persist.conf')).toBe(store);
    const mask = await host.run(['mask', 'set', 'apmask=-9']);
    expect(mask.code).toBe(3);
    expect(host.kernel().read('bus/ap/apmask')).not.toContain('f9bf');
  });
});

