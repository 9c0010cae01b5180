// Names of the systemd units ap-persist ships (units/) and links (generate).
// Kept free of imports so the boot-time hook can use them at no cost.

export const MDEV_TEMPLATE = 'ap-persist-mdev@.service';
export const MDEVS_TARGET = 'ap-persist-mdevs.target';
export const WAIT_SERVICE = 'ap-persist-wait.service';

/** The instance that creates and removes one mdev. */
export function mdevUnit(uuid: string): string {
  return `ap-persist-mdev@${uuid}.service`;
}

/** The UUID of an ap-persist-mdev@UUID.service instance, or undefined for any other unit. */
export function mdevUnitUuid(unit: string): string | undefined {
  return /^ap-persist-mdev@([0-9a-f-]{36})\.service$/.exec(unit)?.[1];
}

/**
 * The hook instances 42-ap-persist.rules queues together with MDEVS_TARGET,
 * ordered after the hook: the boot's first AP bus event (COMPLETECOUNT 1)
 * and coldplug's add of the bus. Later events queue the hook alone; it
 * starts what is to start itself.
 */
export const TARGET_EVENTS: readonly string[] = ['change-1', 'add'];
