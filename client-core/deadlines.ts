/**
 * A deadline list: entries sorted by deadline (epoch ms) in an intrusive doubly linked list, served by one unref'd
 * timer set for the earliest. Arming is O(1) in the usual case (equal timeouts: the entry joins at the tail);
 * disarming is O(1) and leaves the timer alone (when it fires early it finds nothing due and is set again).
 */

/** The fields an entry carries for the list (the list owns them; 0 = not armed). */
export interface DeadlineNode<T> {
  /** epoch ms, 0 when not armed */
  deadline: number
  /** the timeout the entry was last armed with */
  timeoutMs: number
  prev: T | null
  next: T | null
}

export class DeadlineList<T extends DeadlineNode<T>> {
  #head: T | null = null
  #tail: T | null = null
  #timer: NodeJS.Timeout | null = null
  #timerAt = Infinity
  readonly #expired: (entry: T) => void

  /** `expired` is called for each entry whose deadline passed; it must disarm the entry (the list does otherwise). */
  constructor (expired: (entry: T) => void) {
    this.#expired = expired
  }

  /** Whether no entry is armed. */
  get empty (): boolean { return this.#head === null }

  /** Starts (or restarts) the entry's deadline, `timeoutMs` from now. */
  arm (entry: T, timeoutMs: number): void {
    if (entry.deadline !== 0) this.disarm(entry)
    entry.timeoutMs = timeoutMs
    entry.deadline = Date.now() + timeoutMs
    let after = this.#tail
    while (after !== null && after.deadline > entry.deadline) after = after.prev
    entry.prev = after
    entry.next = after === null ? this.#head : after.next
    if (after === null) this.#head = entry
    else after.next = entry
    if (entry.next === null) this.#tail = entry
    else entry.next.prev = entry
    if (entry.deadline < this.#timerAt) this.#setTimer(entry.deadline)
  }

  /** Takes the entry off the list; a no-op when it is not armed. */
  disarm (entry: T): void {
    if (entry.deadline === 0) return
    entry.deadline = 0
    if (entry.prev === null) this.#head = entry.next
    else entry.prev.next = entry.next
    if (entry.next === null) this.#tail = entry.prev
    else entry.next.prev = entry.prev
    entry.prev = null
    entry.next = null
  }

  /** Clears the timer when no entry is left (it would only fire for nothing). */
  stopIfEmpty (): void {
    if (this.#head !== null || this.#timer === null) return
    clearTimeout(this.#timer)
    this.#timer = null
    this.#timerAt = Infinity
  }

  #setTimer (at: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timerAt = at
    this.#timer = setTimeout(() => { this.#expire() }, Math.max(1, at - Date.now()))
    this.#timer.unref()
  }

  #expire (): void {
    this.#timer = null
    this.#timerAt = Infinity
    const now = Date.now()
    let head = this.#head
    while (head !== null && head.deadline <= now) {
      this.#expired(head)
      // the callback should have disarmed it; if not, unlink it so that the loop ends
      if (this.#head === head) this.disarm(head)
      head = this.#head
    }
    if (head !== null) this.#setTimer(head.deadline)
  }
}
