/**
 * A self-signed TLS certificate for tests: CN=localhost, subjectAltName DNS:localhost and
 * IP:127.0.0.1, made in-process at test time with the `selfsigned` devDependency (no openssl
 * binary, nothing on disk). EC P-256 keys keep generation in the milliseconds. The result is
 * cached per process. Clients must trust it explicitly (`ca: cert`), never via
 * NODE_TLS_REJECT_UNAUTHORIZED.
 */
import { X509Certificate } from 'node:crypto'
import { generate } from 'selfsigned'

export interface SelfSignedCert {
  /** PEM private key (PKCS#8). */
  key: string
  /** PEM certificate; also the CA to trust (`ca: cert`). */
  cert: string
}

let cached: Promise<SelfSignedCert> | undefined

/** Returns (and caches) a certificate valid for https://127.0.0.1 and https://localhost. */
export function selfSignedCert(): Promise<SelfSignedCert> {
  cached ??= make()
  return cached
}

async function make(): Promise<SelfSignedCert> {
  const notBeforeDate = new Date(Date.now() - 60_000)
  const notAfterDate = new Date(Date.now() + 7 * 24 * 3600_000)
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyCertSign: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  })
  const result = { key: pems.private, cert: pems.cert }
  // Fail here, with a clear message, rather than in a TLS handshake later.
  const x509 = new X509Certificate(result.cert)
  if (!x509.checkIP('127.0.0.1') || !x509.checkHost('localhost')) {
    throw new Error(`selfSignedCert: generated certificate does not cover 127.0.0.1/localhost: ${x509.subjectAltName}`)
  }
  return result
}
