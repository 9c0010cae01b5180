// Names of the systemd units ap-persist ships (units/) and links (generate).
// Kept free of imports but model/uuid.ts, which the boot-time hook loads anyway.

import { uuidOf } from '../model/uuid.js';

export const MDEV_TEMPLATE = 'ap-persist-mdev@.service';
export const MDEVS_TARGET = 'ap-persist-mdevs.target';
export const WAIT_SERVICE = 'ap-persist-wait.service';

const MDEV_PREFIX = 'ap-persist-mdev@';
const MDEV_SUFFIX = '.service';

/** The instance that creates and removes one mdev. */
export function mdevUnit(uuid: string): string {
  return `${MDEV_PREFIX}${uuid}${MDEV_SUFFIX}`;
}

/** The UUID of an ap-persist-mdev@UUID.service instance, or undefined for any other unit. */
export function mdevUnitUuid(unit: string): string | undefined {
  if (!unit.startsWith(MDEV_PREFIX) || !unit.endsWith(MDEV_SUFFIX)) return undefined;
  const uuid = unit.slice(MDEV_PREFIX.length, -MDEV_SUFFIX.length);
  // As generate names them: the UUID as uuidOf gives it (lower case, nothing around it).
  return uuidOf(uuid) === uuid ? uuid : undefined;
}

/**
 * The hook instances 42-ap-persist.rules queues together with MDEVS_TARGET,
 * ordered after the hook: the boot's first AP bus event (COMPLETECOUNT 1)
 * and coldplug's add of the bus. Later events queue the hook alone; it
 * starts what is to start itself.
 */
export const TARGET_EVENTS: readonly string[] = ['change-1', 'add'];
