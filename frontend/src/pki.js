// Key and CSR for certportal's in-page enrollment, built with PKI.js and asn1js (the PKCS#12
// files are made in pkcs12.js).
//
// The private key is created here with WebCrypto and leaves this page only inside the
// password-protected PKCS#12 files that the customer saves; the server sees the CSR alone.
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";

// ECDSA P-256: every current browser generates and exports it with WebCrypto in well under
// a second (RSA 2048 takes seconds on slow machines), Windows (CNG), macOS and NSS import
// EC keys from PKCS#12, TLS 1.2/1.3 client authentication accepts it, and the portal's
// own CA is P-256 too.
export const KEY_ALGORITHM = { name: "ECDSA", namedCurve: "P-256" };
const SIGNATURE_HASH = "SHA-256";

const OID = {
  commonName: "2.5.4.3",
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
