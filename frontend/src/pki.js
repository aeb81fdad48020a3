// Key, CSR and PKCS#12 for certportal's in-page enrollment, built with PKI.js and asn1js.
//
// The private key is created here with WebCrypto and leaves this page only inside the
// password-protected PKCS#12 file that the customer saves; the server sees the CSR alone.
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";

// ECDSA P-256: every current browser generates and exports it with WebCrypto in well under
// a second (RSA 2048 takes seconds on slow machines), Windows (CNG), macOS and NSS import
// EC keys from PKCS#12, TLS 1.2/1.3 client authentication accepts it, and the portal's
// own CA is P-256 too.
export const KEY_ALGORITHM = { name: "ECDSA", namedCurve: "P-256" };
const SIGNATURE_HASH = "SHA-256";

// PKCS#12 protection (RFC 7292 with RFC 8018 PBES2): the key bag is encrypted with
// PBES2 = PBKDF2-HMAC-SHA-256 + AES-256-CBC, the whole file carries a SHA-256 MAC.
// No RC2, no 3DES, no SHA-1. Iteration counts: high enough to slow guessing, low enough
// for Windows' and NSS's importers to open the file without a noticeable wait.
const PBKDF2_ITERATIONS = 100000;
const MAC_ITERATIONS = 10000;

const OID = {
  commonName: "2.5.4.3",
  pkcs8ShroudedKeyBag: "1.2.840.113549.1.12.10.1.2",
  certBag: "1.2.840.113549.1.12.10.1.3",
  friendlyName: "1.2.840.113549.1.9.20",
  localKeyId: "1.2.840.113549.1.9.21",
};

function engine() {
  return pkijs.getCrypto(true);
}

export async function generateKeyPair() {
  // Extractable, because the key has to go into the PKCS#12 file; it is never sent anywhere.
  return crypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]);
}

function toBase64(bytes) {
  let binary = "";
  const view = new Uint8Array(bytes);
  for (let i = 0; i < view.length; i += 0x8000) {
    binary += String.fromCharCode(...view.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export function toPem(der, label) {
  const lines = toBase64(der).match(/.{1,64}/g).join("\n");
  return `-----BEGIN ${label}-----\n${lines}\n-----END ${label}-----\n`;
}

export function fromPem(pem) {
  const body = pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, "").replace(/\s+/g, "");
  const binary = atob(body);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

// A PKCS#10 request signed by the new key. The portal takes only its public key: the
// subject of the issued certificate is decided by the server from the logged-in ID.
export async function buildCsr(keys, commonName) {
  // An empty attributes set [0] is required by RFC 2986; strict parsers refuse a CSR without it.
  const request = new pkijs.CertificationRequest({ attributes: [] });
  request.subject.typesAndValues.push(
    new pkijs.AttributeTypeAndValue({ type: OID.commonName, value: new asn1js.Utf8String({ value: commonName }) }),
  );
  await request.subjectPublicKeyInfo.importKey(keys.publicKey, engine());
  await request.sign(keys.privateKey, SIGNATURE_HASH, engine());
  return toPem(request.toSchema().toBER(false), "CERTIFICATE REQUEST");
}

export function parseCertificate(pem) {
  return pkijs.Certificate.fromBER(fromPem(pem));
}

function bagAttributes(localKeyId, friendlyName) {
  return [
    new pkijs.Attribute({ type: OID.localKeyId, values: [new asn1js.OctetString({ valueHex: localKeyId })] }),
    new pkijs.Attribute({ type: OID.friendlyName, values: [new asn1js.BmpString({ value: friendlyName })] }),
  ];
}

// The certificate and its private key in one password-protected PKCS#12 (.p12) file.
export async function buildPkcs12({ privateKey, certificatePem, password, friendlyName }) {
  const crypto_ = engine();
  const certificate = parseCertificate(certificatePem);
  const passwordBytes = new TextEncoder().encode(password).buffer;
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", privateKey);
  const keyInfo = pkijs.PrivateKeyInfo.fromBER(pkcs8);
  // localKeyId ties the key bag to the certificate bag, as Windows and NSS expect.
  const localKeyId = await crypto.subtle.digest("SHA-256", certificate.toSchema().toBER(false));

  const keyBag = new pkijs.PKCS8ShroudedKeyBag({ parsedValue: keyInfo });
  await keyBag.makeInternalValues(
    {
      password: passwordBytes,
      contentEncryptionAlgorithm: { name: "AES-CBC", length: 256 },
      hmacHashAlgorithm: "SHA-256",
      iterationCount: PBKDF2_ITERATIONS,
    },
    crypto_,
  );

  const pfx = new pkijs.PFX({
    parsedValue: {
      integrityMode: 0, // password-based integrity: the MAC below
      authenticatedSafe: new pkijs.AuthenticatedSafe({
        parsedValue: {
          safeContents: [
            {
              privacyMode: 0, // the key bag is shrouded itself; the certificate is public
              value: new pkijs.SafeContents({
                safeBags: [
                  new pkijs.SafeBag({
                    bagId: OID.pkcs8ShroudedKeyBag,
                    bagValue: keyBag,
                    bagAttributes: bagAttributes(localKeyId, friendlyName),
                  }),
                  new pkijs.SafeBag({
                    bagId: OID.certBag,
                    bagValue: new pkijs.CertBag({ parsedValue: certificate }),
                    bagAttributes: bagAttributes(localKeyId, friendlyName),
                  }),
                ],
              }),
            },
          ],
        },
      }),
    },
  });
  await pfx.parsedValue.authenticatedSafe.makeInternalValues({ safeContents: [{}] }, crypto_);
  await pfx.makeInternalValues(
    {
      password: passwordBytes,
      iterations: MAC_ITERATIONS,
      pbkdf2HashAlgorithm: "SHA-256",
      hmacHashAlgorithm: "SHA-256",
    },
    crypto_,
  );
  return pfx.toSchema().toBER(false);
}
