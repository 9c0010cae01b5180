// Every path the tool touches, under one root, the way mdevctl's Environment
// does it: each command can run against a test root as well as against `/`.

import { isAbsolute, join, resolve } from 'node:path';
import { MDEVS_TARGET } from '../generate/unit-names.js';
import { confine } from '../fsio/confine.js';
import { InputError } from '../errors.js';
import { hasControlChar } from '../model/chars.js';

export const DEFAULT_STORE = 'etc/ap-persist/ap-persist.conf';

/** libvirt's hook for its qemu driver: the only one before 6.5, the first one since (src/host/libvirt-hooks.ts). */
export const LIBVIRT_QEMU_HOOK = 'etc/libvirt/hooks/qemu';

export class HostPaths {
  readonly root: string;
  readonly store: string;

  constructor(root = '/', config?: string) {
    // Both reach generated files (41-ap.rules names the store in a comment, units the paths):
    // a newline there would add lines of its own.
    for (const [option, value] of [['--root', root], ['--config', config]] as const) {
      if (value !== undefined && hasControlChar(value)) {
        throw new InputError(`${JSON.stringify(value)} holds a control character (a newline, a tab)`, { where: option, hint: 'give a path without control characters' });
      }
    }
    this.root = resolve(root);
    this.store = config ? (isAbsolute(config) ? config : resolve(config)) : this.at(DEFAULT_STORE);
  }

  /** True when this is the running host, where host commands may run. */
  get isRealRoot(): boolean {
    return this.root === '/';
  }

  at(relative: string): string {
    return join(this.root, relative);
  }

  /** `relative` under the root, for a write or a removal: refused when it leads out of the root. */
  confined(relative: string): string {
    return confine(this.root, this.at(relative));
  }

  get chzdevRules(): string {
    return this.at('etc/udev/rules.d/41-ap.rules');
  }
  get staticRulesDir(): string {
    return this.at('usr/lib/udev/rules.d');
  }
  get staticUnitsDir(): string {
    return this.at('usr/lib/systemd/system');
  }
  /** The package's systemd preset file (enable what the boot needs, once). */
  get presetDir(): string {
    return this.at('usr/lib/systemd/system-preset');
  }
  /** ap-persist-mdevs.target's wants: generate's link per auto mdev, the units the target starts. */
  get mdevsWantsDir(): string {
    return join(this.generatedUnitsDir, `${MDEVS_TARGET}.wants`);
  }
  get generatedUnitsDir(): string {
    return this.at('etc/systemd/system');
  }
  get generatedRulesDir(): string {
    return this.at('etc/udev/rules.d');
  }
  get mdevctlMatrixDir(): string {
    return this.at('etc/mdevctl.d/matrix');
  }
  /** mdevctl 1.2 and newer look in different places; we install into both. */
  get calloutDirs(): string[] {
    return [this.at('etc/mdevctl.d/scripts.d/callouts'), this.at('usr/lib/mdevctl/scripts.d/callouts')];
  }
  /** Files install moved out of the way (s390-tools' ap-check), at their own paths, for uninstall. */
  get setAsideDir(): string {
    return this.at('var/lib/ap-persist/set-aside');
  }
  get lock(): string {
    return this.at('run/lock/s390apconfig.lock');
  }
  /** libvirt's status files of running qemu guests. */
  get libvirtRunDir(): string {
    return this.at('run/libvirt/qemu');
  }
  /** libvirt's persistent qemu guest definitions. */
  get libvirtConfigDir(): string {
    return this.at('etc/libvirt/qemu');
  }
  /** libvirt 6.5 and newer run every executable here, after hooks/qemu. */
  get libvirtHooksDir(): string {
    return this.at('etc/libvirt/hooks/qemu.d');
  }
  /** Which guest each `guest` mdev was made for (the qemu hook's record), one file per mdev. */
  get guestRecordsDir(): string {
    return this.at('run/ap-persist/guests');
  }
  /** Made before the hook first asks systemd to start units of ours, this boot (/run is a tmpfs). */
  get unitsStarted(): string {
    return this.at('run/ap-persist/units-started');
  }
  /** Made before the hook first asks systemd to start ap-persist-mdevs.target, this boot. */
  get targetStarted(): string {
    return this.at('run/ap-persist/target-started');
  }
  /**
   * systemd's own marks of our mdev units: ap-persist-mdev@.service's
   * RuntimeDirectory=, a directory per UUID while its unit is active (or
   * coming up), removed when it stops or fails.
   */
  get unitMarksDir(): string {
    return this.at('run/ap-persist/units');
  }
  /**
   * The hook's verdicts on the mdev units the target wants: a file per UUID
   * it holds back (the reason inside), and `all` while a boot hook that the
   * target follows has not judged them all. ap-persist-mdev@.service has a
   * ConditionPathExists=! on each, so systemd skips such a unit's start.
   */
  get heldDir(): string {
    return this.at('run/ap-persist/held');
  }
  get lastHook(): string {
    return this.at('run/ap-persist/last-hook.json');
  }
  /** What generate wrote last time, so it can remove what it no longer needs. */
  get generatedManifest(): string {
    return this.at('etc/ap-persist/generated.json');
  }
  /**
   * The files a generate is putting in place, named before it moves any and
   * removed once its record is written: after a run killed in between, every
   * command (the next generate, status, check, the hook, import, uninstall)
   * still tells its files from chzdev's or mdevctl's, though the record does
   * not name them yet.
   */
  get generatedPending(): string {
    return this.at('etc/ap-persist/generated.pending.json');
  }
}
