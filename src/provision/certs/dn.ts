/**
 * Subject DN strings as swtpm_cert's `--subject` reads them (GnuTLS `set_dn`, observed,
 * provisioning.md §5.2): RFC 4514-style `K=V,K=V` with `\` escapes; the RDNs are encoded in
 * reverse string order; a value is a PrintableString when every character allows it,
 * otherwise a UTF8String.
 */
import {
  AttributeTypeAndValue,
  AttributeValue,
  Name,
  RelativeDistinguishedName,
} from '@peculiar/asn1-x509';

const ATTR_OIDS: Readonly<Record<string, string>> = {
  CN: '2.5.4.3',
  C: '2.5.4.6',
  L: '2.5.4.7',
  ST: '2.5.4.8',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  SERIALNUMBER: '2.5.4.5',
  DC: '0.9.2342.19200300.100.1.25',
  UID: '0.9.2342.19200300.100.1.1',
};

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** Splits on unescaped `sep`, keeping escapes for the next step. */
function splitUnescaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && i + 1 < s.length) {
      cur += c + s[i + 1]!;
      i++;
    } else if (c === sep) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/**
 * An attribute value: unescaped leading and trailing spaces dropped (GnuTLS, observed:
 * `CN=  both  ` → `both`, `CN=\ x` → ` x`), then `\c` → `c`.
 */
function attrValue(raw: string): string {
  const chars: Array<{ c: string; esc: boolean }> = [];
  for (let i = 0; i < raw.length; i++) {
    const esc = raw[i] === '\\' && i + 1 < raw.length;
    if (esc) i++;
    chars.push({ c: raw[i]!, esc });
  }
  const plainSpace = (x: { c: string; esc: boolean } | undefined) => x?.c === ' ' && !x.esc;
  while (plainSpace(chars[0])) chars.shift();
  while (plainSpace(chars[chars.length - 1])) chars.pop();
  return chars.map((x) => x.c).join('');
}

/**
 * Parses a DN string into an X.500 Name the way swtpm_cert encodes it.
 *
 * @example subjectName('CN=test') // one RDN, CN as PrintableString
 */
export function subjectName(dn: string): Name {
  if (dn === '') return new Name();
  const rdns = splitUnescaped(dn, ',').map((part) => {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`Invalid subject '${dn}'`);
    const key = part.slice(0, eq).trim().toUpperCase();
    const type = ATTR_OIDS[key] ?? (/^\d+(\.\d+)+$/.test(key) ? key : undefined);
    if (type === undefined) throw new Error(`Unknown attribute '${key}' in subject '${dn}'`);
    const v = attrValue(part.slice(eq + 1));
    const value = new AttributeValue(
      PRINTABLE.test(v) ? { printableString: v } : { utf8String: v },
    );
    return new RelativeDistinguishedName([new AttributeTypeAndValue({ type, value })]);
  });
  return new Name(rdns.reverse());
}
