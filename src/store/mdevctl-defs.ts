// mdevctl's definition files for parent `matrix` (etc/mdevctl.d/matrix/<uuid>):
// JSON with mdev_type, start and attrs, a list of one-key objects. The same
// attribute list arrives on the callout's stdin.

import { InputError } from '../errors.js';
import { IdSet, MAX_ID } from '../model/idset.js';
import { apConfigFields } from '../model/ap-config.js';
import { kstrtoul } from '../model/kstrtoul.js';
import { mdevctlStart, type MdevctlStart, type MdevDefinition, type StartMode } from '../model/mdev.js';
import type { Uuid } from '../model/uuid.js';

export const PASSTHROUGH_TYPE = 'vfio_ap-passthrough';

export interface MdevctlDevice {
  mdevType: string;
  start: MdevctlStart;
  adapters: IdSet;
  domains: IdSet;
  controlDomains: IdSet;
  /** Attributes we do not interpret, kept for round trips. */
  otherAttrs: Record<string, string>[];
  /** The definition sets the matrix through `ap_config`, which only kernels 6.10 and later have. */
  usesApConfig: boolean;
  /** It removes IDs again (`unassign_*`): its matrix is not the plain list of its assign_ values. */
  usesUnassign: boolean;
}

/** The attributes that change the matrix, in vfio_ap's sysfs names. */
const MATRIX_ATTR = /^(un)?assign_(adapter|domain|control_domain)$/;
const FIELD = { adapter: 'adapters', domain: 'domains', control_domain: 'controlDomains' } as const;

/**
 * Parses a device JSON document. mdevctl creates the mdev empty and writes the
 * attributes to sysfs in their order, so the matrix is what those writes
 * build in vfio_ap: `assign_*` adds an ID, `unassign_*` removes it,
 * `ap_config` replaces all three lists. Each value is read as the kernel
 * reads it. Garbage (an ID like `zz`, a number where a
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
  // As mdevctl reads it (mdev.rs load_from_json): no start at all is an invalid file, and any start but "auto" is manual.
  if (obj['start'] === undefined || obj['start'] === null) throw new InputError("start is missing: mdevctl refuses the file (\"invalid json\"), and with it lists and autostarts no mdev of this parent", { where });
  const start = obj['start'] === 'auto' ? 'auto' : 'manual';
  const device: MdevctlDevice = {
    mdevType,
    start,
    adapters: IdSet.empty(),
    domains: IdSet.empty(),
    controlDomains: IdSet.empty(),
    otherAttrs: [],
    usesApConfig: false,
    usesUnassign: false,
  };
  const attrs = obj['attrs'] ?? [];
  if (!Array.isArray(attrs)) throw new InputError('attrs is not a list', { where });
  attrs.forEach((attr, i) => {
    if (!attr || typeof attr !== 'object' || Array.isArray(attr)) {
      throw new InputError(`attrs[${i}] is not an object`, { where });
    }
    // mdevctl's add_attributes: one field per attribute object, else the whole definition is refused.
    const fields = Object.keys(attr).length;
    if (fields !== 1) throw new InputError(`attrs[${i}] has ${fields} fields: mdevctl takes one per attribute, refuses the file, and with it lists and autostarts no mdev of this parent`, { where });
    for (const [key, value] of Object.entries(attr as Record<string, unknown>)) {
      if (typeof value !== 'string') {
        throw new InputError(`attrs[${i}].${key} is ${JSON.stringify(value)}, not a string`, { where });
      }
      applyAttribute(device, key, value, `attrs[${i}].${key}`, where);
    }
  });
  return device;
}

/** One attribute write, as vfio_ap's store function for it would take it. */
function applyAttribute(device: MdevctlDevice, key: string, value: string, attr: string, where: string): void {
  const change = MATRIX_ATTR.exec(key);
  if (change) {
    const axis = change[2] as keyof typeof FIELD;
    const id = attributeId(value, axis.replace('_', ' '), attr, where);
    const field = FIELD[axis];
    if (change[1]) {
      device[field] = device[field].minus(IdSet.of([id]));
      device.usesUnassign = true;
    } else device[field] = device[field].union(IdSet.of([id]));
    return;
  }
  if (key === 'ap_config') {
    const fields = apConfigFields(value);
    if (!fields) {
      throw new InputError(`${attr}: '${value}' is not what vfio_ap's ap_config takes (three hex masks: adapters, usage domains, control domains, separated by commas); the kernel would refuse it (EINVAL)`, {
        where,
        hint: 'e.g. "0x0600...,0x0800...,0x0800..." with at most 64 hex digits each',
      });
    }
    [device.adapters, device.domains, device.controlDomains] = fields;
    device.usesApConfig = true;
    return;
  }
  device.otherAttrs.push({ [key]: value });
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

/** mdevctl's own layout: 2-space indent, attributes as decimal strings; a guest mdev is manual there. */
export function renderMdevctlJson(mdev: Pick<MdevDefinition, 'adapters' | 'domains' | 'controlDomains'>, mode: StartMode): string {
  const start = mdevctlStart(mode);
  const attrs: Record<string, string>[] = [
    ...mdev.adapters.ids().map((id) => ({ assign_adapter: `${id}` })),
    ...mdev.domains.ids().map((id) => ({ assign_domain: `${id}` })),
    ...mdev.controlDomains.ids().map((id) => ({ assign_control_domain: `${id}` })),
  ];
  return JSON.stringify({ mdev_type: PASSTHROUGH_TYPE, start, attrs }, null, 2);
}
