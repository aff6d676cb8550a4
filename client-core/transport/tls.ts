/** TLS settings shared by both transports, including certificate pinning by SHA-256 fingerprint. */
import type { TLSSocket, PeerCertificate } from 'node:tls'
import type { TlsOptions } from '../options.js'
import { TransportError } from '../errors.js'

export function normalizeFingerprint (value: string): string {
  return value.replace(/:/g, '').toUpperCase()
}

/** Options for tls.connect / ws / undici's connector. With a pinned fingerprint the chain is not checked: the pin is. */
export function tlsConnectOptions (tls: TlsOptions | undefined): { rejectUnauthorized: boolean, ca?: TlsOptions['ca'] } {
  const pinned = typeof tls?.fingerprint256 === 'string'
  const out: { rejectUnauthorized: boolean, ca?: TlsOptions['ca'] } = {
    rejectUnauthorized: pinned ? false : (tls?.rejectUnauthorized ?? true)
  }
  if (tls?.ca !== undefined) out.ca = tls.ca
  return out
}

/** Throws when a pin is set and the peer's certificate does not match it. */
export function checkPin (tls: TlsOptions | undefined, socket: TLSSocket): void {
  if (typeof tls?.fingerprint256 !== 'string') return
  const cert: PeerCertificate = socket.getPeerCertificate()
  const actual = typeof cert?.fingerprint256 === 'string' ? normalizeFingerprint(cert.fingerprint256) : ''
  if (actual !== normalizeFingerprint(tls.fingerprint256)) {
    throw new TransportError(`Server certificate fingerprint ${actual || '(none)'} does not match the pinned one`)
  }
}
