// The domain XML the fake libvirtd hands its qemu hooks, and its status
// files, in the forms libvirt 9.0 writes them (pure; shared with the fast
// test that validates them against libvirt's schema):
// - a definition (/etc/libvirt/qemu/<name>.xml): no id;
// - `prepare begin`: the live definition, `<domain type='kvm' id='N'>`, no
//   device aliases yet;
// - from `start begin` on: aliases (`<alias name='hostdev0'/>`);
// - `stopped end` and `release end`: the id gone again, the aliases kept;
// - the status file /run/libvirt/qemu/<name>.xml: the live definition,
//   indented, inside a `<domstatus>` with the daemon's own elements first
//   (as libvirt's tests/qemustatusxml2xmldata/*.xml have them).

/** The root `<domain ...>` tag of a definition. */
const ROOT = /<domain\b[^>]*>/;

function rootTag(xml: string): string {
  const m = ROOT.exec(xml);
  if (!m) throw new Error('no <domain> element');
  return m[0];
}

/** Without the id attribute on the root element (a defined or stopped domain). */
export function withoutId(xml: string): string {
  const tag = rootTag(xml);
  return xml.replace(tag, tag.replace(/\s+id=(['"])[^'"]*\1/, ''));
}

/** The running domain's id on the root element, after its type, as libvirt formats it. */
export function withId(xml: string, id: number): string {
  const bare = withoutId(xml);
  const tag = rootTag(bare);
  const typed = tag.replace(/(\stype=(['"])[^'"]*\2)/, `$1 id='${id}'`);
  return bare.replace(tag, typed === tag ? tag.replace(/^<domain\b/, `<domain id='${id}'`) : typed);
}

/** Device aliases as qemuProcessPrepareDomain assigns them, for the hostdevs (hostdev0, hostdev1, ...). */
export function withHostdevAliases(xml: string): string {
  let n = 0;
  return xml.replace(/(<hostdev\b[^>]*>)([\s\S]*?)(\n?([ \t]*)<\/hostdev>)/g, (whole, open: string, body: string, close: string, indent: string) => {
    if (/<alias\b/.test(body)) return whole;
    return `${open}${body}\n${indent}  <alias name='hostdev${n++}'/>${close}`;
  });
}

/** The vfio-ap mdevs a definition names, as libvirt's qemu driver reads them (single or double quotes). */
export function vfioApUuids(xml: string): string[] {
  const out: string[] = [];
  for (const m of xml.matchAll(/<hostdev\b([^>]*)>([\s\S]*?)<\/hostdev>/g)) {
    if (!/\bmodel=(['"])vfio-ap\1/.test(m[1]!)) continue;
    const uuid = /<address\b[^>]*\buuid=(['"])([^'"]+)\1/.exec(m[2]!)?.[2];
    if (uuid) out.push(uuid.toLowerCase());
  }
  return out;
}

export interface StatusInfo {
  id: number;
  name: string;
  /** QEMU's pid. */
  pid: number;
  state?: 'running' | 'paused';
  reason?: string;
}

/** The status file of a running domain, around its live definition. */
export function statusXml(liveXml: string, info: StatusInfo): string {
  const dir = `/var/lib/libvirt/qemu/domain-${info.id}-${info.name}`;
  const aliases = [...liveXml.matchAll(/<alias name='([^']+)'\/>/g)].map((m) => `    <device alias='${m[1]}'/>\n`).join('');
  const indented = liveXml
    .trimEnd()
    .split('\n')
    .map((l) => (l ? `  ${l}` : l))
    .join('\n');
  return `<domstatus state='${info.state ?? 'running'}' reason='${info.reason ?? 'booted'}' pid='${info.pid}'>
  <taint flag='high-privileges'/>
  <monitor path='${dir}/monitor.sock' type='unix'/>
  <vcpus>
    <vcpu id='0' pid='${info.pid + 1}'/>
  </vcpus>
  <qemuCaps>
    <flag name='vfio-ap'/>
  </qemuCaps>
  <devices>
${aliases}  </devices>
  <libDir path='${dir}'/>
  <channelTargetDir path='/var/lib/libvirt/qemu/channel/target/domain-${info.id}-${info.name}'/>
  <allowReboot value='yes'/>
  <nodename index='0'/>
  <fdset index='0'/>
  <blockjobs active='no'/>
  <agentTimeout>-2</agentTimeout>
${indented}
</domstatus>
`;
}

/** The live definition inside a status file (for `reconnect begin`), as it was written. */
export function domainOfStatus(status: string): string {
  const start = status.search(/<domain[\s>]/);
  const end = status.lastIndexOf('</domain>');
  if (start < 0 || end < start) throw new Error('no <domain> in the status file');
  const inner = status.slice(start, end + '</domain>'.length);
  return `${inner.replace(/\n {2}/g, '\n')}\n`;
}
