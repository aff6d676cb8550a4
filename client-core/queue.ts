/**
 * The receive buffer: a bounded FIFO with waiting readers. Pushing never blocks (the connect loop and replies must
 * keep flowing whatever the consumer does); when full, the OLDEST message is dropped and returned to the caller so
 * that it can be counted and reported.
 */
export class BoundedQueue<T> {
  readonly #items: T[] = []
  #head = 0
  readonly #limit: number
  readonly #waiters: Array<{ resolve: (value: T) => void }> = []

  /** limit <= 0 means unbounded */
  constructor (limit: number) {
    this.#limit = limit > 0 ? limit : Infinity
  }

  get size (): number { return this.#items.length - this.#head }

  /** Hands the item to a waiting reader, or queues it. Returns the dropped item when the queue was full. */
  push (item: T): T | undefined {
    const waiter = this.#waiters.shift()
    if (waiter !== undefined) {
      waiter.resolve(item)
      return undefined
    }
    let dropped: T | undefined
    if (this.size >= this.#limit) dropped = this.shift()
    this.#items.push(item)
    return dropped
  }

  shift (): T | undefined {
    if (this.size === 0) return undefined
    const item = this.#items[this.#head]
    this.#items[this.#head] = undefined as T
    this.#head++
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items.splice(0, this.#head)
      this.#head = 0
    }
    return item
  }

  /**
   * Waits for the next item. `cancel()` withdraws the wait and returns true; it returns false when an item was
   * already handed over, which the promise then yields (so nothing is lost in a race with a timeout).
   */
  wait (): { promise: Promise<T>, cancel: () => boolean } {
    if (this.size > 0) {
      const item = this.shift() as T
      return { promise: Promise.resolve(item), cancel: () => false }
    }
    let waiter!: { resolve: (value: T) => void }
    const promise = new Promise<T>((resolve) => { waiter = { resolve } })
    this.#waiters.push(waiter)
    return {
      promise,
      cancel: () => {
        const i = this.#waiters.indexOf(waiter)
        if (i < 0) return false
        this.#waiters.splice(i, 1)
        return true
      }
    }
  }

  clear (): void {
    this.#items.length = 0
    this.#head = 0
  }
}
