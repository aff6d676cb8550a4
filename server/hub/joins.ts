/**
 * Joining a caller's queued frames into one write. Frames queued in one event-loop turn leave in one write per
 * caller (at most MAX_JOIN_BYTES); in the flush pass, callers that queued the same frames (by identity) write the
 * same joined Buffer, built once.
 */

/**
 * At most this many bytes per joined write (the socket's high-water mark), so a caller's backlog leaves in writes of
 * this size, not one per frame. A single larger frame is written alone.
 */
export const MAX_JOIN_BYTES = 16 * 1024

/** A joined run of frames, shared by every caller that has the same frames queued in one flush pass. */
interface Joined { parts: Buffer[], joined: Buffer }

/** The joined runs of one flush pass, by their first frame; cleared at the end of the pass. */
export class PassJoins {
  readonly #joins = new Map<Buffer, Joined[]>()

  /** One Buffer for bufs[from..to) of `bytes` bytes; `share`: the same Buffer for the same frames within the pass. */
  join (bufs: ReadonlyArray<Buffer | undefined>, from: number, to: number, bytes: number, share: boolean): Buffer {
    const n = to - from
    const first = bufs[from]!
    let candidates: Joined[] | undefined
    if (share) {
      candidates = this.#joins.get(first)
      if (candidates !== undefined) {
        for (const c of candidates) {
          if (c.parts.length !== n) continue
          let same = true
          for (let i = 1; i < n; i++) if (c.parts[i] !== bufs[from + i]) { same = false; break }
          if (same) return c.joined
        }
      }
    }
    const parts = bufs.slice(from, to) as Buffer[]
    const joined = Buffer.concat(parts, bytes)
    if (share) {
      if (candidates === undefined) this.#joins.set(first, [{ parts, joined }])
      else candidates.push({ parts, joined })
    }
    return joined
  }

  clear (): void { this.#joins.clear() }
}

/**
 * The end of the run of bufs[from..stop) that one write takes: at least one frame, more while the run stays within
 * MAX_JOIN_BYTES and the sink's frames can be joined (`joinable`: a byte stream, not WebSocket messages).
 */
export function runEnd (bufs: ReadonlyArray<Buffer | undefined>, from: number, stop: number, joinable: boolean): number {
  let end = from + 1
  if (!joinable) return end
  let bytes = bufs[from]!.length
  while (end < stop && bytes + bufs[end]!.length <= MAX_JOIN_BYTES) bytes += bufs[end++]!.length
  return end
}
