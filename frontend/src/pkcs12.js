// The password-protected PKCS#12 (.p12) files of certportal's in-page enrollment.
//
// Two forms of the same certificate, chain and private key, byte for byte the structure
// OpenSSL 3 makes (RFC 7292; DER throughout; certificates first, then the key):
//
// - MODERN (`openssl pkcs12 -export`): certificates and key encrypted with PBES2 =
//   PBKDF2-HMAC-SHA-256 + AES-256-CBC, HMAC-SHA-256 MAC. Windows 10 1709+ and 11,
//   Firefox/NSS, OpenSSL 3, Java and GnuTLS open it.
// - COMPATIBILITY (`openssl pkcs12 -export -legacy`): key encrypted with
//   pbeWithSHAAnd3-KeyTripleDES-CBC, certificates with pbeWithSHAAnd40BitRC2-CBC (they are
//   public, so the weak cipher guards nothing secret), HMAC-SHA-1 MAC. For macOS, iOS,
//   Android and Windows before 10 1709 / Server 2016 and earlier, which refuse PBES2/AES.
//
// Every cipher and key derivation (PBKDF2, the PKCS#12 KDF of RFC 7292 B.2, AES, 3DES,
// RC2, HMAC) and the DER encoder come from node-forge; this file only assembles them.
// Salts and IVs come from WebCrypto's getRandomValues.
import forge from "node-forge/lib/forge";
import "node-forge/lib/aes";
import "node-forge/lib/asn1";
import "node-forge/lib/des";
import "node-forge/lib/hmac";
import "node-forge/lib/pbe";
import "node-forge/lib/pbkdf2";
import "node-forge/lib/rc2";
import "node-forge/lib/sha1";
import "node-forge/lib/sha256";

const { asn1 } = forge;
const UNIVERSAL = asn1.Class.UNIVERSAL;
const CONTEXT = asn1.Class.CONTEXT_SPECIFIC;
const T = asn1.Type;

const OID = {
  data: "1.2.840.113549.1.7.1",
  encryptedData: "1.2.840.113549.1.7.6",
  pkcs8ShroudedKeyBag: "1.2.840.113549.1.12.10.1.2",
  certBag: "1.2.840.113549.1.12.10.1.3",
  x509Certificate: "1.2.840.113549.1.9.22.1",
  friendlyName: "1.2.840.113549.1.9.20",
  localKeyId: "1.2.840.113549.1.9.21",
  pbes2: "1.2.840.113549.1.5.13",
  pbkdf2: "1.2.840.113549.1.5.12",
  hmacWithSHA256: "1.2.840.113549.2.9",
  aes256Cbc: "2.16.840.1.101.3.4.1.42",
  pbeWithSHAAnd3KeyTripleDESCBC: "1.2.840.113549.1.12.1.3",
  pbeWithSHAAnd40BitRC2CBC: "1.2.840.113549.1.12.1.6",
  sha1: "1.3.14.3.2.26",
  sha256: "2.16.840.1.101.3.4.2.1",
};

// OpenSSL 3's defaults for both the encryption and the MAC: under every importer's cap and
// quick on a phone; the file password (8+ characters, chosen by the customer) protects it.
export const ITERATIONS = 2048;
const SALT_BYTES = 8;

export const MODERN = {
  name: "modern",
  keyScheme: "pbes2",
  certificateScheme: "pbes2",
  macDigest: "sha256",
};
export const COMPATIBILITY = {
  name: "compatibility",
  keyScheme: "3des",
  certificateScheme: "rc2-40",
  macDigest: "sha1",
};

const DIGESTS = {
  sha1: { oid: OID.sha1, create: () => forge.md.sha1.create() },
  sha256: { oid: OID.sha256, create: () => forge.md.sha256.create() },
};

function randomBytes(length) {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return String.fromCharCode(...bytes);
}

function binaryOf(buffer) {
  const view = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < view.length; i += 0x8000) binary += String.fromCharCode(...view.subarray(i, i + 0x8000));
  return binary;
}

function bytesOf(binary) {
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

const oid = (value) => asn1.create(UNIVERSAL, T.OID, false, asn1.oidToDer(value).getBytes());
const octets = (binary) => asn1.create(UNIVERSAL, T.OCTETSTRING, false, binary);
const integer = (value) => asn1.create(UNIVERSAL, T.INTEGER, false, asn1.integerToDer(value).getBytes());
const sequence = (items) => asn1.create(UNIVERSAL, T.SEQUENCE, true, items);
const explicit = (tag, item) => asn1.create(CONTEXT, tag, true, [item]);
const nul = () => asn1.create(UNIVERSAL, T.NULL, false, "");
const der = (item) => asn1.toDer(item).getBytes();

// A SET OF in DER order (X.690 11.6: sorted by encoding), as OpenSSL writes it.
function setOf(items) {
  const sorted = items.map((item) => [der(item), item]).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return asn1.create(UNIVERSAL, T.SET, true, sorted.map(([, item]) => item));
}

function encryptWith(cipher, plaintext) {
  cipher.update(forge.util.createBuffer(plaintext));
  cipher.finish();
  return cipher.output.getBytes();
}

// Encrypts DER bytes under one of the three schemes; the AlgorithmIdentifier and the ciphertext.
function encrypt(scheme, plaintext, password) {
  const salt = randomBytes(SALT_BYTES);
  if (scheme === "pbes2") {
    // RFC 8018 PBES2: as OpenSSL writes it, without the optional keyLength, the PRF with NULL.
    const key = forge.pkcs5.pbkdf2(forge.util.encodeUtf8(password), salt, ITERATIONS, 32, forge.md.sha256.create());
    const iv = randomBytes(16);
    const cipher = forge.cipher.createCipher("AES-CBC", key);
    cipher.start({ iv });
    const algorithm = sequence([
      oid(OID.pbes2),
      sequence([
        sequence([oid(OID.pbkdf2), sequence([octets(salt), integer(ITERATIONS), sequence([oid(OID.hmacWithSHA256), nul()])])]),
        sequence([oid(OID.aes256Cbc), octets(iv)]),
      ]),
    ]);
    return { algorithm, ciphertext: encryptWith(cipher, plaintext) };
  }
  // RFC 7292 appendix C: key and IV from the PKCS#12 KDF (SHA-1) over the BMPString password.
  const pkcs12Key = (id, length) =>
    forge.pbe.generatePkcs12Key(password, forge.util.createBuffer(salt), id, ITERATIONS, length).getBytes();
  let cipher;
  let schemeOid;
  if (scheme === "3des") {
    schemeOid = OID.pbeWithSHAAnd3KeyTripleDESCBC;
    cipher = forge.cipher.createCipher("3DES-CBC", pkcs12Key(1, 24));
    cipher.start({ iv: pkcs12Key(2, 8) });
  } else if (scheme === "rc2-40") {
    schemeOid = OID.pbeWithSHAAnd40BitRC2CBC;
    cipher = forge.rc2.createEncryptionCipher(pkcs12Key(1, 5), 40);
    cipher.start(pkcs12Key(2, 8));
  } else {
    throw new Error(`unknown scheme ${scheme}`);
  }
  const algorithm = sequence([oid(schemeOid), sequence([octets(salt), integer(ITERATIONS)])]);
  return { algorithm, ciphertext: encryptWith(cipher, plaintext) };
}

function attributes(friendlyName, localKeyId) {
  // forge writes a BMPSTRING's JavaScript string as UTF-16BE itself.
  return setOf([
    sequence([oid(OID.friendlyName), setOf([asn1.create(UNIVERSAL, T.BMPSTRING, false, friendlyName)])]),
    sequence([oid(OID.localKeyId), setOf([octets(localKeyId)])]),
  ]);
}

function certificateBag(certificateDer, bagAttributes) {
  const value = sequence([oid(OID.x509Certificate), explicit(0, octets(certificateDer))]);
  const bag = [oid(OID.certBag), explicit(0, value)];
  if (bagAttributes) bag.push(bagAttributes);
  return sequence(bag);
}

// RFC 7292 appendix B: the HMAC key comes from the PKCS#12 KDF (ID 3) with the MAC's own digest.
function mac(digest, password, salt, iterations, data) {
  const length = digest.create().digestLength;
  const key = forge.pbe.generatePkcs12Key(password, forge.util.createBuffer(salt), 3, iterations, length, digest.create());
  const hmac = forge.hmac.create();
  hmac.start(digest.create(), key.getBytes());
  hmac.update(data);
  return hmac.digest().getBytes();
}

function macData(authenticatedSafe, password, digestName) {
  const digest = DIGESTS[digestName];
  const salt = randomBytes(SALT_BYTES);
  const value = mac(digest, password, salt, ITERATIONS, authenticatedSafe);
  return sequence([sequence([sequence([oid(digest.oid), nul()]), octets(value)]), octets(salt), integer(ITERATIONS)]);
}

/**
 * The PKCS#12 file (Uint8Array) of one certificate, its chain (issuing CA, root) and key.
 *
 * `privateKeyPkcs8` and the certificates are DER (ArrayBuffer); `password` is printable ASCII.
 */
export async function makePkcs12({ profile, privateKeyPkcs8, certificateDer, chainDer, password, friendlyName }) {
  const certificate = binaryOf(certificateDer);
  // localKeyID ties the key to its certificate: the certificate's SHA-1, as OpenSSL, Windows and NSS write it.
  const localKeyId = binaryOf(await crypto.subtle.digest("SHA-1", certificateDer));
  const bagAttributes = () => attributes(friendlyName, localKeyId);

  const certificates = sequence([
    certificateBag(certificate, bagAttributes()),
    ...chainDer.map((ca) => certificateBag(binaryOf(ca))),
  ]);
  const encryptedCertificates = encrypt(profile.certificateScheme, der(certificates), password);
  const certificatesInfo = sequence([
    oid(OID.encryptedData),
    explicit(0, sequence([
      integer(0),
      sequence([
        oid(OID.data),
        encryptedCertificates.algorithm,
        // [0] IMPLICIT OCTET STRING, primitive: DER, not BER's constructed form.
        asn1.create(CONTEXT, 0, false, encryptedCertificates.ciphertext),
      ]),
    ])),
  ]);

  const shroudedKey = encrypt(profile.keyScheme, binaryOf(privateKeyPkcs8), password);
  const keyBag = sequence([
    oid(OID.pkcs8ShroudedKeyBag),
    explicit(0, sequence([shroudedKey.algorithm, octets(shroudedKey.ciphertext)])),
    bagAttributes(),
  ]);
  const keyInfo = sequence([oid(OID.data), explicit(0, octets(der(sequence([keyBag]))))]);

  const authenticatedSafe = der(sequence([certificatesInfo, keyInfo]));
  const pfx = sequence([
    integer(3),
    sequence([oid(OID.data), explicit(0, octets(authenticatedSafe))]),
    macData(authenticatedSafe, password, profile.macDigest),
  ]);
  return bytesOf(der(pfx));
}

/**
 * Whether `password` opens the PKCS#12 file `bytes`: its MAC is checked, the way every
 * importer first checks the password. "opens", "wrong-password" or "not-pkcs12".
 */
export function checkPkcs12(bytes, password) {
  let fields;
  let authenticatedSafe;
  let digest;
  try {
    const pfx = asn1.fromDer(binaryOf(bytes), { strict: true, decodeBitStrings: false });
    const [version, authSafe, macField] = pfx.value;
    if (asn1.derToInteger(version.value) !== 3 || !macField) return "not-pkcs12";
    // Files from other tools may split it BER's way, as a constructed OCTET STRING.
    const content = authSafe.value[1].value[0];
    authenticatedSafe = content.constructed ? content.value.map((part) => part.value).join("") : content.value;
    fields = macField.value;
    digest = Object.values(DIGESTS).find((d) => d.oid === asn1.derToOid(fields[0].value[0].value[0].value));
    if (typeof authenticatedSafe !== "string" || !digest) return "not-pkcs12";
  } catch {
    return "not-pkcs12";
  }
  const [digestInfo, salt, iterationField] = fields;
  const iterations = iterationField ? asn1.derToInteger(iterationField.value) : 1;
  // A bound, so that a stray file cannot freeze the page.
  if (!(iterations >= 1 && iterations <= 10_000_000)) return "not-pkcs12";
  return mac(digest, password, salt.value, iterations, authenticatedSafe) === digestInfo.value[1].value
    ? "opens"
    : "wrong-password";
}
