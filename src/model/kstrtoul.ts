// Numbers as the kernel reads what is written to sysfs: kstrtoul(s, 0)
// (lib/kstrtox.c) takes an optional '+', then `0x`/`0X` hex, a leading 0 as
// octal, or decimal, and one trailing newline; nothing else. mdevctl writes
// its definitions' attribute values to sysfs as they are, so that is how we
// must read them too: "0010" is 8, "08" is no number at all. Pure.

/** The kernel's number-in-a-string pattern; group 1 is the number. */
export const KERNEL_NUMBER = '(0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*)';
const ULONG = new RegExp(`^\\+?${KERNEL_NUMBER}\\n?$`, 'i');
export const ULONG_MAX = 2n ** 64n - 1n;

/** The value, or 'EINVAL' / 'ERANGE' as kstrtoul answers. */
export function kstrtoul(text: string): bigint | 'EINVAL' | 'ERANGE' {
  const m = ULONG.exec(text);
  if (!m) return 'EINVAL';
  const value = kernelNumber(m[1]!);
  return value > ULONG_MAX ? 'ERANGE' : value;
}

/** One number token (already matched by KERNEL_NUMBER) as simple_strtoul with base 0 reads it. */
export function kernelNumber(token: string): bigint {
  if (/^0x/i.test(token)) return BigInt(`0x${token.slice(2)}`);
  return token.length > 1 && token.startsWith('0') ? BigInt(`0o${token.slice(1)}`) : BigInt(token);
}
