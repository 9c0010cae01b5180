// The persistent masks in the file s390-tools' `chzdev -t ap` writes
// (/etc/udev/rules.d/41-ap.rules, zdev ap.c) and `lszdev -t ap` and ap-check
// read back (libap ap_read_udev_masks). Writer and reader live together so
// they cannot drift apart. Pure: the template comes compiled, the text comes
// read.
//
// The rule lines are byte-identical to chzdev's for the same masks, plus one
// guard: once vfio_ap is loaded (it holds the mdevs) the rule leaves the masks
// alone, so no replay (udevadm trigger, a rescan) hands an mdev's queues to
// the host; the hook applies the masks then, keeping active mdevs' APQNs out.
// (Not "while an mdev exists": udev 252's TEST glob misses entries with
// names as long as a UUID.) Its first key is TEST, so zdev's reader skips it
// like the comments. chzdev rewrites
// the whole file without it; generate reports that as drift. A mask the store leaves
// unset gets no ATTR line: s390-tools then take that mask from sysfs, just as
// the hook leaves it as the kernel has it.

import { IdSet } from '../model/idset.js';
import type { HostMasks } from '../model/mdev.js';

/** What templates/41-ap.rules.hbs is rendered from. */
export interface ChzdevRulesModel {
  /** The store, as the admin names it, for the header. */
  store: string;
  /** `0x` + 64 hex digits, or null when the store does not set the mask. */
  apmask: string | null;
  aqmask: string | null;
}

export type RenderChzdevRules = (model: ChzdevRulesModel) => string;

/**
 * The file for `masks`, or undefined when neither mask is set: chzdev then
 * deletes the file instead of writing one without masks.
 */
export function renderChzdevRules(render: RenderChzdevRules, masks: HostMasks, store: string): string | undefined {
  if (!masks.apmask && !masks.aqmask) return undefined;
  return render({
    store,
    apmask: masks.apmask?.toKernelHex() ?? null,
    aqmask: masks.aqmask?.toKernelHex() ?? null,
  });
}

export interface ChzdevRulesProblem {
  line: number;
  message: string;
}

export interface ParsedChzdevRules {
  /** Undefined when the file sets no such mask (s390-tools then read sysfs). */
  apmask: IdSet | undefined;
  aqmask: IdSet | undefined;
  /** Lines zdev aborts on (a bad mask value): what the file sets is unknown. */
  problems: ChzdevRulesProblem[];
  /** Lines zdev drops, saying "Unrecognized udev rule", and reads on (libutil util_udev_read_file). */
  skipped: ChzdevRulesProblem[];
}

// One `KEY OP VALUE` entry of a udev rule line, as libutil's util_udev.c reads it.
const ENTRY = /^\s*(\w+(?:\{[^}]*\})?)\s*(==|!=|\+=|:=|=)\s*(.*?)\s*$/;
const MASK_VALUE = /^(?:0x)?([0-9a-fA-F]{64})$/;

/**
 * Reads the masks the way zdev does: every line that is not blank or a comment
 * is split into entries at unquoted commas; a line with an entry that is not
 * `KEY OP VALUE` is dropped (zdev says so and reads on); otherwise only the
 * FIRST entry counts: when its key is `ATTR{...}` naming apmask (or else
 * aqmask), its value is that mask. A later line wins over an earlier one, as
 * in libap.
 */
export function parseChzdevRules(text: string): ParsedChzdevRules {
  const out: ParsedChzdevRules = { apmask: undefined, aqmask: undefined, problems: [], skipped: [] };
  text.split('\n').forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const entries = splitEntries(trimmed).map((e) => ENTRY.exec(e));
    const entry = entries[0];
    if (!entry || entries.some((e) => !e)) {
      out.skipped.push({ line, message: `not a udev rule: ${trimmed}` });
      return;
    }
    const key = entry[1]!;
    if (!key.startsWith('ATTR{')) return;
    const which = key.includes('apmask') ? 'apmask' : key.includes('aqmask') ? 'aqmask' : undefined;
    if (!which) return;
    const value = unquote(entry[3]!);
    const digits = MASK_VALUE.exec(value);
    if (!digits) {
      // zdev asserts (aborts) on this; report it instead.
      out.problems.push({ line, message: `${which} value '${value}' is not 0x and 64 hex digits` });
      return;
    }
    out[which] = IdSet.fromHexDigits(digits[1]!);
  });
  return out;
}

/** Splits at commas outside double or single quotes. */
function splitEntries(line: string): string[] {
  const entries: string[] = [];
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === ',') {
      entries.push(line.slice(start, i));
      start = i + 1;
    }
  }
  entries.push(line.slice(start));
  return entries;
}

function unquote(value: string): string {
  const q = value[0];
  return (q === '"' || q === "'") && value.length >= 2 && value.endsWith(q) ? value.slice(1, -1) : value;
}
