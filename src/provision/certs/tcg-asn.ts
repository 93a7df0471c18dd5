/**
 * The TCG-specific ASN.1 that swtpm_cert puts into EK and platform certificates
 * (provisioning.md §5.3), built from @peculiar/asn1-x509 types. The two structures the
 * library lacks (TPMSpecification and the TPM 1.2 platform SAN, which is not a valid
 * X.500 Name) are declared here as asn1-schema classes.
 */
import {
  AsnConvert,
  AsnProp,
  AsnPropTypes,
  AsnType,
  AsnTypeTypes,
  OctetString,
} from '@peculiar/asn1-schema';
import {
  Attribute,
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityKeyIdentifier,
  BasicConstraints,
  ExtendedKeyUsage,
  GeneralName,
  GeneralNames,
  KeyUsage,
  KeyUsageFlags,
  Name,
  RelativeDistinguishedName,
  SubjectDirectoryAttributes,
} from '@peculiar/asn1-x509';

/** TCG OIDs (TCG EK Credential Profile; names as in the spec and swtpm's sources). */
export const TCG_OID = {
  tcg_at_tpmManufacturer: '2.23.133.2.1',
  tcg_at_tpmModel: '2.23.133.2.2',
  tcg_at_tpmVersion: '2.23.133.2.3',
  /** TPM 1.2 platform SAN (inside the non-X.500 directoryName). */
  tcg_at_platformManufacturer: '2.23.133.2.4',
  tcg_at_platformModel: '2.23.133.2.5',
  tcg_at_platformVersion: '2.23.133.2.6',
  tcg_at_tpmSpecification: '2.23.133.2.16',
  /** TPM 2 platform SAN. */
  platformManufacturerStr: '2.23.133.5.1.1',
  platformModel: '2.23.133.5.1.4',
  platformVersion: '2.23.133.5.1.5',
  tcg_kp_EKCertificate: '2.23.133.8.1',
  tcg_kp_PlatformCertificate: '2.23.133.8.2',
} as const;

/** TPMSpecification ::= SEQUENCE { family UTF8String, level INTEGER, revision INTEGER } */
class TPMSpecification {
  family = '';
  level = 0;
  revision = 0;
}
AsnProp({ type: AsnPropTypes.Utf8String })(TPMSpecification.prototype, 'family');
AsnProp({ type: AsnPropTypes.Integer })(TPMSpecification.prototype, 'level');
AsnProp({ type: AsnPropTypes.Integer })(TPMSpecification.prototype, 'revision');
AsnType({ type: AsnTypeTypes.Sequence })(TPMSpecification);

/** The TPM 1.2 platform directoryName content: SEQUENCE { tpm Name, platform Name }. */
class Tpm12PlatformNames {
  tpm = new Name();
  platform = new Name();
}
AsnProp({ type: Name })(Tpm12PlatformNames.prototype, 'tpm');
AsnProp({ type: Name })(Tpm12PlatformNames.prototype, 'platform');
AsnType({ type: AsnTypeTypes.Sequence })(Tpm12PlatformNames);

/** GeneralNames with one `[4] EXPLICIT Tpm12PlatformNames` (swtpm_cert's TPM 1.2 SAN). */
class Tpm12PlatformSan {
  dir = new Tpm12PlatformNames();
}
AsnProp({ type: Tpm12PlatformNames, context: 4 })(Tpm12PlatformSan.prototype, 'dir');
AsnType({ type: AsnTypeTypes.Sequence })(Tpm12PlatformSan);

/** One `[oid, UTF8String value]` pair per RDN, in the given order. */
export function utf8Name(pairs: ReadonlyArray<readonly [string, string]>): Name {
  return new Name(
    pairs.map(
      ([type, v]) =>
        new RelativeDistinguishedName([
          new AttributeTypeAndValue({ type, value: new AttributeValue({ utf8String: v }) }),
        ]),
    ),
  );
}

const der = (v: unknown): ArrayBuffer => AsnConvert.serialize(v);

/** TPM manufacturer, model and version as swtpm_cert orders them. */
export interface TpmAttrs {
  readonly manufacturer: string;
  readonly model: string;
  readonly version: string;
}
export interface PlatformAttrs {
  readonly manufacturer: string;
  readonly model: string;
  readonly version: string;
}

const tpmName = (t: TpmAttrs) =>
  utf8Name([
    [TCG_OID.tcg_at_tpmManufacturer, t.manufacturer],
    [TCG_OID.tcg_at_tpmModel, t.model],
    [TCG_OID.tcg_at_tpmVersion, t.version],
  ]);

/** EK subjectAltName: directoryName with TPM manufacturer, model, version. */
export function ekSan(t: TpmAttrs): ArrayBuffer {
  return der(new GeneralNames([new GeneralName({ directoryName: tpmName(t) })]));
}

/** TPM 2 platform subjectAltName: platformManufacturerStr, platformModel, platformVersion. */
export function platformSan2(p: PlatformAttrs): ArrayBuffer {
  const name = utf8Name([
    [TCG_OID.platformManufacturerStr, p.manufacturer],
    [TCG_OID.platformModel, p.model],
    [TCG_OID.platformVersion, p.version],
  ]);
  return der(new GeneralNames([new GeneralName({ directoryName: name })]));
}

/** TPM 1.2 platform subjectAltName: the TPM Name and the platform Name in one SEQUENCE. */
export function platformSan12(t: TpmAttrs, p: PlatformAttrs): ArrayBuffer {
  const san = new Tpm12PlatformSan();
  san.dir.tpm = tpmName(t);
  san.dir.platform = utf8Name([
    [TCG_OID.tcg_at_platformManufacturer, p.manufacturer],
    [TCG_OID.tcg_at_platformModel, p.model],
    [TCG_OID.tcg_at_platformVersion, p.version],
  ]);
  return der(san);
}

/** subjectDirectoryAttributes with one tcg-at-tpmSpecification attribute. */
export function tpmSpecSda(family: string, level: number, revision: number): ArrayBuffer {
  const spec = Object.assign(new TPMSpecification(), { family, level, revision });
  const attr = new Attribute({ type: TCG_OID.tcg_at_tpmSpecification, values: [der(spec)] });
  return der(new SubjectDirectoryAttributes([attr]));
}

export const extKeyUsage = (oid: string): ArrayBuffer => der(new ExtendedKeyUsage([oid]));

/** basicConstraints; cA FALSE is the DEFAULT and so is left out (`30 00`). */
export function basicConstraints(ca: boolean): ArrayBuffer {
  return der(ca ? new BasicConstraints({ cA: true }) : new BasicConstraints());
}

export const keyUsage = (flags: number): ArrayBuffer => der(new KeyUsage(flags));
export { KeyUsageFlags };

/** authorityKeyIdentifier holding only the issuer's key identifier. */
export function authorityKeyId(keyId: ArrayBuffer): ArrayBuffer {
  return der(new AuthorityKeyIdentifier({ keyIdentifier: new OctetString(keyId) }));
}

export const subjectKeyId = (keyId: ArrayBuffer): ArrayBuffer => der(new OctetString(keyId));
