/**
 * Callers presenting a signed JWT instead of a configured token (config `auth.jwt`, docs/security.md). The
 * signature and the registered claims (exp, nbf, iss, aud) are checked by `jose`; the rights come from the
 * claims, under the names of a token entry (`sessions`, `subscribe`, `publish`, `console`, `metrics`,
 * `createSessions`) or in Mercure's shape (`mercure.subscribe` / `mercure.publish`).
 *
 * A token that fails is a 401 naming the reason (`expired`, `bad_signature`, `wrong_audience` …); a key set
 * that cannot be fetched is a 503 (the caller's token may be fine). Nothing here logs or echoes the token.
 */
import { createHash, createPublicKey } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRemoteJWKSet, errors as joseErrors, jwtVerify } from 'jose'
import type { JWTPayload, JWTVerifyGetKey, JWTVerifyOptions } from 'jose'
import { channelProblem } from '../channels.js'
import type { JwtConfig } from '../../config/index.js'
import { ErrorCode, HttpError } from '../errors.js'
import type { Principal } from './principal.js'

export type JwtRejection = 'malformed' | 'expired' | 'not_yet_valid' | 'bad_signature' | 'wrong_issuer' |
  'wrong_audience' | 'algorithm_not_allowed' | 'unknown_key' | 'invalid_claims'

const HMAC = ['HS256', 'HS384', 'HS512']
const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']
const EC_CURVES: Record<string, string> = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' }
/** A JWT travels in one header (or query value): anything longer is refused before parsing. */
const MAX_JWT_LENGTH = 8192
const JWKS_TIMEOUT_MS = 5_000
const SESSION_REF_RE = /^(\*|[A-Za-z0-9_-]{1,64})$/

/** The algorithms a public key can verify (an RSA key: RS* and PS*; an EC key: the one of its curve). */
export function keyAlgorithms (key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa': return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']
    case 'rsa-pss': return ['PS256', 'PS384', 'PS512']
    case 'ec': {
      const alg = EC_CURVES[String(key.asymmetricKeyDetails?.namedCurve)]
      if (alg === undefined) throw new Error(`auth.jwt.publicKeyFile: unsupported EC curve ${String(key.asymmetricKeyDetails?.namedCurve)}`)
      return [alg]
    }
    case 'ed25519': return ['EdDSA', 'Ed25519']
    case 'ed448': return ['EdDSA']
    default: throw new Error(`auth.jwt.publicKeyFile: unsupported key type ${String(key.asymmetricKeyType)}`)
  }
}

function rejected (reason: JwtRejection, message: string): HttpError {
  const description = message.replace(/["\\]/g, '')
  return new HttpError(401, ErrorCode.UNAUTHORIZED, `Invalid token: ${message}`, {
    headers: { 'WWW-Authenticate': `Bearer realm="cometd-bridge", error="invalid_token", error_description="${description}"` },
    details: { reason }
  })
}

/** jose's verdict → a 401 with a reason, or a 503 when the key set could not be had. */
function toHttpError (err: unknown): HttpError {
  if (err instanceof HttpError) return err
  if (err instanceof joseErrors.JWTExpired) return rejected('expired', `the token expired (${String(err.claim)})`)
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'nbf': return rejected('not_yet_valid', 'the token is not valid yet (nbf)')
      case 'iss': return rejected('wrong_issuer', err.payload.iss === undefined ? 'the token has no issuer (iss)' : 'the token has the wrong issuer (iss)')
      case 'aud': return rejected('wrong_audience', err.payload.aud === undefined ? 'the token has no audience (aud)' : 'the token has the wrong audience (aud)')
      default: return rejected('invalid_claims', `the ${err.claim} claim is invalid`)
    }
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return rejected('bad_signature', 'the signature does not verify')
  if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) return rejected('algorithm_not_allowed', 'the token\'s algorithm (alg) is not accepted')
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) return rejected('unknown_key', 'no key of the key set matches the token (kid)')
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWKInvalid) return rejected('malformed', 'not a well-formed JWT')
  return new HttpError(503, ErrorCode.AUTH_UNAVAILABLE, 'The key set that verifies tokens (auth.jwt.jwksUrl) cannot be fetched; try again', {
    headers: { 'Retry-After': '5' },
    cause: err
  })
}

function stringList (claims: Record<string, unknown>, name: string, valid: (s: string) => boolean, what: string): string[] | undefined {
  const value = claims[name]
  if (value === undefined) return undefined
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && valid(v))) throw rejected('invalid_claims', `the ${name} claim must be a list of ${what}`)
  return value as string[]
}

function flag (claims: Record<string, unknown>, name: string): boolean {
  const value = claims[name]
  if (value === undefined) return false
  if (typeof value !== 'boolean') throw rejected('invalid_claims', `the ${name} claim must be true or false`)
  return value
}

const isAclPattern = (p: string): boolean => channelProblem(p, true) === null && p !== '/meta' && !p.startsWith('/meta/')

/** Mercure topics that name channels: `*` is everything, a channel pattern is itself, other topics (URLs, URI templates) grant nothing. */
function mercureTopics (claims: Record<string, unknown>, name: 'subscribe' | 'publish'): string[] {
  const mercure = claims.mercure
  if (mercure === undefined) return []
  if (typeof mercure !== 'object' || mercure === null || Array.isArray(mercure)) throw rejected('invalid_claims', 'the mercure claim must be an object')
  const topics = stringList(mercure as Record<string, unknown>, name, () => true, 'topics') ?? []
  return topics.flatMap((topic) => (topic === '*' ? ['/**'] : isAclPattern(topic) ? [topic] : []))
}

/** A readable, bounded label for logs: `jwt:<sub>`. */
function identity (payload: JWTPayload, token: string): { id: string, name: string } {
  if (typeof payload.sub === 'string' && payload.sub !== '') {
    const sub = payload.sub.replace(/[^\w.@:-]/g, '_').slice(0, 64)
    const digest = createHash('sha256').update(payload.sub).digest('hex').slice(0, 12)
    // the id keeps subjects that differ only in replaced characters apart
    return { id: `jwt:${digest}`, name: `jwt:${sub}` }
  }
  const digest = createHash('sha256').update(token).digest('hex').slice(0, 12)
  return { id: `jwt:#${digest}`, name: `jwt:#${digest}` }
}

/**
 * The rights a verified token's claims carry. `expiresAt` is when the bridge stops accepting the token: `exp`
 * plus the clock tolerance (a stream ended earlier would be reopened with the same, still accepted, token).
 */
export function principalFromClaims (payload: JWTPayload, token: string, defaultSessions: readonly string[], toleranceMs = 0): Principal {
  const claims = payload as Record<string, unknown>
  const sessions = stringList(claims, 'sessions', (s) => SESSION_REF_RE.test(s), 'session names (or "*")') ?? [...defaultSessions]
  const subscribe = [...(stringList(claims, 'subscribe', isAclPattern, 'channel patterns') ?? []), ...mercureTopics(claims, 'subscribe')]
  const publish = [...(stringList(claims, 'publish', isAclPattern, 'channel patterns') ?? []), ...mercureTopics(claims, 'publish')]
  const { id, name } = identity(payload, token)
  return Object.freeze({
    id,
    name,
    anonymous: false,
    allSessions: sessions.includes('*'),
    sessions: new Set(sessions.filter((s) => s !== '*')),
    subscribe: [...new Set(subscribe)],
    publish: [...new Set(publish)],
    console: flag(claims, 'console'),
    metrics: flag(claims, 'metrics'),
    createSessions: flag(claims, 'createSessions'),
    admin: flag(claims, 'admin'),
    ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp * 1000 + toleranceMs } : {})
  })
}

type Key = Uint8Array | KeyObject | JWTVerifyGetKey

function keyOf (config: JwtConfig): { key: Key, algorithms: string[] } {
  if (config.secret !== undefined) return { key: new TextEncoder().encode(config.secret), algorithms: HMAC }
  if (config.publicKeyFile !== undefined) {
    const key = createPublicKey(readFileSync(config.publicKeyFile, 'utf8'))
    return { key, algorithms: keyAlgorithms(key) }
  }
  if (config.jwksUrl !== undefined) {
    const key = createRemoteJWKSet(new URL(config.jwksUrl), {
      cacheMaxAge: config.jwksCacheMaxAgeSec * 1000,
      timeoutDuration: JWKS_TIMEOUT_MS
    })
    return { key, algorithms: ASYMMETRIC }
  }
  throw new Error('auth.jwt: give exactly one of secret, publicKeyFile or jwksUrl')
}

export class JwtVerifier {
  readonly onExpiry: JwtConfig['onExpiry']
  readonly #key: Key
  readonly #options: JWTVerifyOptions
  readonly #defaultSessions: readonly string[]
  readonly #toleranceMs: number

  /** Reads the key file now (synchronously, at start-up); the key set is fetched on the first token. */
  constructor (config: JwtConfig) {
    const { key, algorithms } = keyOf(config)
    const wanted: readonly string[] | undefined = config.algorithms
    const allowed = wanted === undefined ? algorithms : algorithms.filter((a) => wanted.includes(a))
    if (allowed.length === 0) throw new Error(`auth.jwt.algorithms: none of them can be verified with this key (${algorithms.join(', ')})`)
    this.#key = key
    this.#options = {
      algorithms: allowed,
      clockTolerance: config.clockToleranceSec,
      ...(config.issuer !== undefined ? { issuer: config.issuer } : {}),
      ...(config.audience !== undefined ? { audience: config.audience } : {})
    }
    this.onExpiry = config.onExpiry
    this.#defaultSessions = [...config.defaultSessions]
    this.#toleranceMs = config.clockToleranceSec * 1000
  }

  /** The principal of a valid token; rejects with an HttpError (401 with a reason, 503 when the key set is unreachable). */
  async authenticate (token: string): Promise<Principal> {
    if (token.length > MAX_JWT_LENGTH || token.split('.').length !== 3) throw rejected('malformed', 'neither a configured token nor a JWT')
    try {
      // the overloads differ only by the key's type
      const { payload } = typeof this.#key === 'function'
        ? await jwtVerify(token, this.#key, this.#options)
        : await jwtVerify(token, this.#key, this.#options)
      return principalFromClaims(payload, token, this.#defaultSessions, this.#toleranceMs)
    } catch (err) {
      throw toHttpError(err)
    }
  }
}
