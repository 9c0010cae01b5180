// A libvirt domain's XML, as far as ap-persist needs it: the guest's name and
// the vfio-ap mdevs it uses. libvirt writes
//   <hostdev mode='subsystem' type='mdev' managed='no' model='vfio-ap'>
//     <source><address uuid='...'/></source> ...
// with the attributes in any order (and hand-written XML in the domain
// directory may use double quotes). The status files under
// /run/libvirt/qemu/ wrap the same <domain> in a <domstatus>. Pure.

import { isUuid, parseUuid, type Uuid } from './uuid.js';

export interface DomainDevices {
  /** The guest's name, as libvirt passes it to the hook. */
  name: string | undefined;
  /** The vfio-ap mdevs the guest uses, in document order, each once. */
  mdevs: Uuid[];
  /** Every mdev it uses, of any model (vfio-ap, vfio-ccw, vfio-pci, or none written): what a running guest holds. */
  anyMdevs: Uuid[];
}

/** `name='value'` or `name="value"` pairs of one start tag. */
function attributes(tag: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of tag.matchAll(/([\w:.-]+)\s*=\s*(?:'([^']*)'|"([^"]*)")/g)) out.set(m[1]!, unescape(m[2] ?? m[3] ?? ''));
  return out;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function unescape(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/g, (_, e: string) =>
    e.startsWith('#x') ? String.fromCodePoint(parseInt(e.slice(2), 16)) : e.startsWith('#') ? String.fromCodePoint(parseInt(e.slice(1), 10)) : ENTITIES[e]!,
  );
}

/** Without comments: a commented-out hostdev is no device. */
const uncommented = (xml: string): string => xml.replace(/<!--[\s\S]*?-->/g, '');

/** Whether the text could name a vfio-ap device at all: the hook's quick look before it parses. */
export function mayUseVfioAp(xml: string): boolean {
  return /vfio-ap/.test(xml);
}

/**
 * The name and vfio-ap mdevs of the first <domain> in `xml` (a domain
 * definition, or a status file that wraps one). A hostdev whose address is
 * no UUID is skipped: libvirt would not have accepted it.
 */
export function domainDevices(xml: string): DomainDevices {
  const text = uncommented(xml);
  const start = text.search(/<domain[\s>]/);
  const domain = start < 0 ? '' : text.slice(start);
  const nameMatch = /<name>([^<]*)<\/name>/.exec(domain);
  const mdevs: Uuid[] = [];
  const anyMdevs: Uuid[] = [];
  for (const m of domain.matchAll(/<hostdev\b([^>]*)>([\s\S]*?)<\/hostdev>/g)) {
    const attrs = attributes(m[1]!);
    if (attrs.get('mode') !== 'subsystem' || attrs.get('type') !== 'mdev') continue;
    const source = /<source\b[^>]*>([\s\S]*?)<\/source>/.exec(m[2]!);
    const address = source ? /<address\b([^>]*)\/?>/.exec(source[1]!) : null;
    const uuid = address ? attributes(address[1]!).get('uuid') : undefined;
    if (uuid === undefined || !isUuid(uuid)) continue;
    const parsed = parseUuid(uuid);
    if (!anyMdevs.includes(parsed)) anyMdevs.push(parsed);
    if (attrs.get('model') === 'vfio-ap' && !mdevs.includes(parsed)) mdevs.push(parsed);
  }
  return { name: nameMatch ? unescape(nameMatch[1]!.trim()) : undefined, mdevs, anyMdevs };
}
