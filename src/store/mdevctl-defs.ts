// mdevctl's definition files for parent `matrix` (etc/mdevctl.d/matrix/<uuid>):
// JSON with mdev_type, start and attrs, a list of one-key objects. The same
// attribute list arrives on the callout's stdin.

import { InputError } from '../errors.js';
import { IdSet, MAX_ID } from '../model/idset.js';
import { kstrtoul } from '../model/kstrtoul.js';
import type { MdevDefinition, StartMode } from '../model/mdev.js';
import type { Uuid } from '../model/uuid.js';

export const PASSTHROUGH_TYPE = 'vfio_ap-passthrough';

export interface MdevctlDevice {
  mdevType: string;
  start: StartMode;
  adapters: IdSet;
  domains: IdSet;
  controlDomains: IdSet;
  /** Attributes we do not interpret, kept for round trips. */
  otherAttrs: Record<string, string>[];
}

const ATTR_KEYS = {
  assign_adapter: 'adapters',
  assign_domain: 'domains',
  assign_control_domain: 'controlDomains',
} as const;

/**
 * Parses a device JSON document. Garbage (an ID like `zz`, a number where a
 * string belongs) is an InputError naming the attribute, never adapter 0.
 */
export function parseMdevctlJson(text: string, where: string): MdevctlDevice {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new InputError(`not valid JSON: ${(err as Error).message}`, { where });
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new InputError('the device JSON is not an object', { where });
  const obj = doc as Record<string, unknown>;
  const mdevType = obj['mdev_type'];
  if (typeof mdevType !== 'string') throw new InputError('mdev_type is missing or not a string', { where });
  const start = obj['start'] ?? 'manual';
  if (start !== 'auto' && start !== 'manual') throw new InputError(`start '${String(start)}' is neither auto nor manual`, { where });
  const device: MdevctlDevice = {
    mdevType,
    start,
    adapters: IdSet.empty(),
    domains: IdSet.empty(),
    controlDomains: IdSet.empty(),
    otherAttrs: [],
  };
  const attrs = obj['attrs'] ?? [];
  if (!Array.isArray(attrs)) throw new InputError('attrs is not a list', { where });
  attrs.forEach((attr, i) => {
    if (!attr || typeof attr !== 'object' || Array.isArray(attr)) {
      throw new InputError(`attrs[${i}] is not an object`, { where });
    }
    for (const [key, value] of Object.entries(attr as Record<string, unknown>)) {
      if (typeof value !== 'string') {
        throw new InputError(`attrs[${i}].${key} is ${JSON.stringify(value)}, not a string`, { where });
      }
      const field = ATTR_KEYS[key as keyof typeof ATTR_KEYS];
      if (!field) {
        device.otherAttrs.push({ [key]: value });
        continue;
      }
      device[field] = device[field].union(IdSet.of([attributeId(value, key.replace('assign_', '').replace('_', ' '), `attrs[${i}].${key}`, where)]));
    }
  });
  return device;
}

/**
 * An assign_* value as the kernel will read it when mdevctl writes it to
 * sysfs (kstrtoul base 0): "0010" is 8, "08", "5,6" and " 5" are no number.
 */
function attributeId(value: string, what: string, attr: string, where: string): number {
  const id = kstrtoul(value);
  if (typeof id !== 'bigint') {
    throw new InputError(`${attr}: '${value}' is not a valid ${what}: the kernel reads it with kstrtoul (decimal, 0x hex, a leading 0 as octal) and would refuse it (${id})`, {
      where,
      hint: 'one ID per attribute, e.g. "5" or "0x5"',
    });
  }
  if (id > BigInt(MAX_ID)) throw new InputError(`${attr}: ${what} '${value}' (${id}) is above 255`, { where });
  return Number(id);
}

export function toDefinition(uuid: Uuid, device: MdevctlDevice): MdevDefinition {
  return {
    uuid,
    adapters: device.adapters,
    domains: device.domains,
    controlDomains: device.controlDomains,
    start: device.start,
  };
}

/** mdevctl's own layout: 2-space indent, attributes as decimal strings. */
export function renderMdevctlJson(mdev: Pick<MdevDefinition, 'adapters' | 'domains' | 'controlDomains'>, start: StartMode): string {
  const attrs: Record<string, string>[] = [
    ...mdev.adapters.ids().map((id) => ({ assign_adapter: `${id}` })),
    ...mdev.domains.ids().map((id) => ({ assign_domain: `${id}` })),
    ...mdev.controlDomains.ids().map((id) => ({ assign_control_domain: `${id}` })),
  ];
  return JSON.stringify({ mdev_type: PASSTHROUGH_TYPE, start, attrs }, null, 2);
}
