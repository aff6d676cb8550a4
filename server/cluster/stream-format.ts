/**
 * The shape of a session's Redis stream, shared by the writer (append.ts) and the readers (stream-log.ts).
 *
 * Entry fields: `k` kind, `c` channel, `p` payload (JSON text), `r` replay position (`1234`, `s:<token>`, or ''),
 * `n` the entry's number in the session (consecutive across holders: a missing number means a trimmed entry).
 *   m  an upstream message; `p` is the message frame's data (`{"channel":…,"data":…,"ext":…}`), serialized once
 *      by the holder and used as is by every replica
 *   u  an in-band `upstream` event for live callers (`p` its data; `c` set when it concerns one channel)
 *   x  a marker for resume planning only (a subscription made or dropped upstream), never shown to callers
 *
 * Caller-facing ids are `<epoch>:<stream entry id>` (`mq1x2k9a3b4c5d6e:1733212345678-0`): identical on every
 * replica, and meaningless after Redis lost its data (another epoch).
 */
import type { ReplayPosition } from '../../client-core/index.js'

export type EntryKind = 'm' | 'u' | 'x'

/** A stream entry as XRANGE / XREAD return it (RESP2): [id, [field, value, …]]. */
export type RawEntry = [string, string[]]

export interface StreamEntry {
  /** the stream entry id, `<ms>-<n>` */
  streamId: string
  kind: EntryKind
  channel: string
  payload: string
  replayId: ReplayPosition | undefined
  /** consecutive per session; 0 when absent */
  n: number
}

const ID_RE = /^([a-z0-9]{1,40}):(\d{1,20}-\d{1,20})$/
const STREAM_ID_RE = /^(\d{1,20})-(\d{1,20})$/

export function formatClusterId (epoch: string, streamId: string): string {
  return `${epoch}:${streamId}`
}

export function parseClusterId (id: string): { epoch: string, streamId: string } | null {
  const m = ID_RE.exec(id)
  return m === null ? null : { epoch: m[1]!, streamId: m[2]! }
}

/** Order of two stream ids (`<ms>-<n>`): negative, 0 or positive. */
export function compareStreamIds (a: string, b: string): number {
  const ma = STREAM_ID_RE.exec(a)
  const mb = STREAM_ID_RE.exec(b)
  if (ma === null || mb === null) return a < b ? -1 : a > b ? 1 : 0
  const msA = BigInt(ma[1]!)
  const msB = BigInt(mb[1]!)
  if (msA !== msB) return msA < msB ? -1 : 1
  const nA = BigInt(ma[2]!)
  const nB = BigInt(mb[2]!)
  return nA < nB ? -1 : nA > nB ? 1 : 0
}

/** Milliseconds (Redis clock) of a stream id. */
export function streamIdTime (streamId: string): number {
  return Number(streamId.slice(0, streamId.indexOf('-')))
}

export function encodePosition (position: ReplayPosition | undefined): string {
  if (position === undefined) return ''
  return typeof position === 'number' ? String(position) : `s:${position}`
}

export function decodePosition (text: string | undefined): ReplayPosition | undefined {
  if (text === undefined || text === '') return undefined
  if (text.startsWith('s:')) return text.slice(2)
  const n = Number(text)
  return Number.isSafeInteger(n) ? n : undefined
}

export function parseEntry (raw: RawEntry): StreamEntry | null {
  const [streamId, fields] = raw
  if (typeof streamId !== 'string' || !Array.isArray(fields)) return null
  const f: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) f[String(fields[i])] = String(fields[i + 1])
  const kind = f.k
  if (kind !== 'm' && kind !== 'u' && kind !== 'x') return null
  return { streamId, kind, channel: f.c ?? '', payload: f.p ?? 'null', replayId: decodePosition(f.r), n: Number(f.n ?? 0) }
}
