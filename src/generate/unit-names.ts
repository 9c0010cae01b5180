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
