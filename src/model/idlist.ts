// ID lists in chzdev's grammar: comma-separated IDs 0-255, decimal or `0x`
// hex, and ranges `a-b`. Unlike chzdev, a reversed range is an error: chzdev
// turns `5-3` into nothing and so gives every queue away; and a decimal with
// a leading zero is refused: chzdev reads `010` as octal 8, a reader of our
// store might read 10.

import { InputError } from '../errors.js';
import { IdSet, MAX_ID } from './idset.js';

const ID_HINT = 'IDs are 0-255, decimal or 0x hex';

/** One ID: `171` or `0xab`. `what` names the token in messages ("adapter"). */
export function parseId(token: string, what = 'ID'): number {
  const t = token.trim();
  let value: number;
  if (/^0[0-9]+$/.test(t)) {
    // chzdev (strtoul base 0) and the kernel read a leading 0 as octal: never a third meaning.
    const octal = /^0[0-7]+$/.test(t) ? ` (chzdev and the kernel read it as octal ${parseInt(t, 8)})` : '';
    throw new InputError(`'${t}' has a leading zero${octal}; refused so that it means one thing`, { hint: `write ${octal ? `${parseInt(t, 8)} or 0x${parseInt(t, 8).toString(16)}` : 'the number without the leading zero'} (${ID_HINT})` });
  }
  if (/^[0-9]+$/.test(t)) value = parseInt(t, 10);
  else if (/^0x[0-9a-f]+$/i.test(t)) value = parseInt(t.slice(2), 16);
  else throw new InputError(`'${token}' is not a valid ${what}: use a decimal number or 0x hex`, { hint: ID_HINT });
  if (value > MAX_ID) throw new InputError(`${what} '${t}' is above 255`, { hint: ID_HINT });
  return value;
}

/** One list item: an ID or a range `a-b` with a <= b. */
export function parseIdItem(item: string, what = 'ID'): IdSet {
  return addIdItem(IdSet.empty(), item, what);
}

/** Adds one list item's IDs to `set` (no set per item: a store of 4,096 mdevs has some 12,000 lists). */
function addIdItem(set: IdSet, item: string, what: string): IdSet {
  const t = item.trim();
  if (t === '') throw new InputError(`empty item in the ${what} list`, { hint: 'remove the doubled or trailing comma' });
  const dash = t.indexOf('-', 1);
  if (dash < 0) return set.add(parseId(t, what));
  const from = parseId(t.slice(0, dash), what);
  const to = parseId(t.slice(dash + 1), what);
  if (from > to) {
    throw new InputError(`range '${t}' is reversed`, { hint: `write it low to high: ${to}-${from}` });
  }
  for (let id = from; id <= to; id++) set.add(id);
  return set;
}

/** A whole LIST. An empty list is an error unless `allowEmpty`. */
export function parseIdList(text: string, what = 'ID', allowEmpty = false): IdSet {
  if (text.trim() === '') {
    if (allowEmpty) return IdSet.empty();
    throw new InputError(`the ${what} list is empty`, { hint: 'give IDs like 5,6 or 0x04-0x08' });
  }
  const set = IdSet.empty();
  for (const item of text.split(',')) addIdItem(set, item, what);
  return set;
}
