/** Who a request comes from, and what it may do: the answer of authentication (auth.ts, jwt.ts). */
export interface Principal {
  /** stable identity (owner of dynamic sessions): `#<index>` of the token entry, or `anonymous` */
  readonly id: string
  /** for logs and views: the entry's `name`, `token-<index>`, or `anonymous` */
  readonly name: string
  /** no tokens configured: a loopback (or allowUnauthenticated) caller with every right */
  readonly anonymous: boolean
  readonly allSessions: boolean
  readonly sessions: ReadonlySet<string>
  readonly subscribe: readonly string[]
  readonly publish: readonly string[]
  readonly console: boolean
  readonly metrics: boolean
  readonly createSessions: boolean
  /** may reload the configuration (POST /admin/reload) */
  readonly admin: boolean
  /** a JWT's `exp`, epoch ms: streams opened with it end then (jwt.ts, open-streams.ts) */
  readonly expiresAt?: number
}
