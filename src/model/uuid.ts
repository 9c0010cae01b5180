import { InputError } from '../errors.js';

export type Uuid = string & { readonly __uuid: unique symbol };

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(text: string): boolean {
  return UUID_RE.test(text.trim());
}

/** The UUID `text` names, lower-cased, or undefined: one test where isUuid then parseUuid would make two. */
export function uuidOf(text: string): Uuid | undefined {
  const t = text.trim();
  return UUID_RE.test(t) ? (t.toLowerCase() as Uuid) : undefined;
}

/** Validates and lower-cases a UUID as mdevctl and sysfs spell it. */
export function parseUuid(text: string): Uuid {
  const uuid = uuidOf(text);
  if (!uuid) {
    throw new InputError(`'${text}' is not a UUID`, {
      hint: 'write it as 8-4-4-4-12 hex digits, e.g. bfccf00d-21f1-448c-9979-b7341129d985 (uuidgen makes one)',
    });
  }
  return uuid;
}
