/**
 * Caller (server/hub/caller.ts) against a fake sink: the frames of one event-loop turn leave in one write, shared by
 * the callers that queued the same frames; a refused write holds the queue until 'drain', then everything follows
 * in order; a caller is judged queue-full only for bytes its socket refused.
 */
import t from 'tap'
import { Caller } from '../../server/hub/caller.js'
import type { CallerOptions, CloseReason } from '../../server/hub/caller.js'
import type { CallerSink } from '../../server/hub/sinks.js'
import { messageFrame } from '../../server/frames.js'

class FakeSink implements CallerSink {
  readonly format = 'sse' as const
  readonly joinable = true
  readonly writes: Buffer[] = []
  accept = true
  ended: { finalFrame: string | null, reason: string } | null = null
  #drain: (() => void) | null = null

  open (): Buffer | null { return Buffer.from('retry: 1000\n\n') }
  write (chunk: Buffer): boolean { this.writes.push(chunk); return this.accept }
  heartbeat (): Buffer | null { return null }
  end (finalFrame: Buffer | null, reason: string): void { this.ended = { finalFrame: finalFrame?.toString('utf8') ?? null, reason } }
  onClose (): void {}
  onError (): void {}
  onDrain (fn: () => void): void { this.#drain = fn }
  drain (): void { this.#drain?.() }
  /** every byte written after the preamble */
  text (): string { return Buffer.concat(this.writes.slice(1)).toString('utf8') }
}

const OPTIONS: CallerOptions = { maxQueueBytes: 1024 * 1024, writeTimeoutMs: 30_000, heartbeatMs: 60_000, retryMs: 1000 }
const turn = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }
const frames = (from: number, n: number, pad = 0) => Array.from({ length: n }, (_v, i) => {
  const id = `e-${from + i}`
  return { id, frame: messageFrame(id, '/a', { n: from + i, x: 'x'.repeat(pad) }, undefined) }
})
const ids = (text: string): number[] => [...text.matchAll(/^id: e-(\d+)$/gm)].map((m) => Number(m[1]))

function open (t: { teardown: (fn: () => unknown) => void }, options: CallerOptions = OPTIONS): { caller: Caller, sink: FakeSink, closed: CloseReason[] } {
  const sink = new FakeSink()
  const closed: CloseReason[] = []
  const caller = new Caller(sink, ['/a'], options, null, (_c, reason) => { closed.push(reason) })
  caller.start()
  t.teardown(() => { caller.close('shutdown', 'test over') })
  return { caller, sink, closed }
}

t.test('caller - the frames of one turn leave in one write, the same Buffer for callers with the same frames', async (t) => {
  const a = open(t)
  const b = open(t)
  const batch = frames(1, 3)
  for (const { id, frame } of batch) { a.caller.send(frame, id); b.caller.send(frame, id) }
  t.equal(a.sink.writes.length, 1, 'nothing but the preamble before the end of the turn')
  await turn()
  t.equal(a.sink.writes.length, 2, 'one write for the three frames')
  t.equal(a.sink.writes[1], b.sink.writes[1], 'both callers write the same joined Buffer')
  t.same(ids(a.sink.text()), [1, 2, 3])
  t.equal(a.caller.lastWrittenId, 'e-3')
  t.equal(a.caller.queuedBytes, 0)
  // a caller with other frames in the same turn gets its own
  const c = open(t)
  a.caller.send(batch[0]!.frame, batch[0]!.id)
  a.caller.send(batch[1]!.frame, batch[1]!.id)
  c.caller.send(batch[0]!.frame, batch[0]!.id)
  c.caller.send(batch[2]!.frame, batch[2]!.id)
  await turn()
  t.not(a.sink.writes[2], c.sink.writes[1], 'different frames, different writes')
  t.same(ids(c.sink.text()), [1, 3])
})

t.test('caller - a refused write holds the queue until drain, then everything follows in order', async (t) => {
  const { caller, sink, closed } = open(t)
  sink.accept = false
  for (const { id, frame } of frames(1, 2)) caller.send(frame, id)
  await turn()
  t.equal(sink.writes.length, 2, 'written, refused')
  for (let k = 0; k < 5; k++) {
    for (const { id, frame } of frames(3 + k * 100, 100, 200)) caller.send(frame, id)
    await turn()
  }
  t.equal(sink.writes.length, 2, 'nothing more is written before drain')
  t.ok(caller.queuedBytes > 100_000, 'the rest is queued')
  t.equal(caller.lastWrittenId, 'e-2', 'the last id written is the last one the socket took')
  sink.accept = true
  sink.drain()
  await turn()
  t.same(ids(sink.text()), Array.from({ length: 502 }, (_v, i) => i + 1), 'every frame, in order, once')
  t.equal(caller.queuedBytes, 0)
  t.equal(caller.lastWrittenId, 'e-502')
  t.ok(sink.writes.every((w, i) => i === 0 || w.length <= 16 * 1024 + 400), 'writes of at most 16 KiB (or one frame)')
  t.same(closed, [])
  // it keeps going after the drain
  for (const { id, frame } of frames(503, 1)) caller.send(frame, id)
  await turn()
  t.equal(caller.lastWrittenId, 'e-503')
})

t.test('caller - a backlog held over several turns (each turn joined into one entry) leaves in order, in one write after drain', async (t) => {
  const a = open(t)
  const b = open(t)
  a.sink.accept = false
  b.sink.accept = false
  for (const { id, frame } of frames(1, 1)) { a.caller.send(frame, id); b.caller.send(frame, id) }
  await turn()
  for (let k = 0; k < 3; k++) {
    for (const { id, frame } of frames(2 + k * 4, 4)) { a.caller.send(frame, id); b.caller.send(frame, id) }
    await turn()
  }
  t.equal(a.sink.writes.length, 2, 'refused, nothing more before drain')
  a.sink.accept = true
  b.sink.accept = true
  a.sink.drain()
  b.sink.drain()
  t.same(ids(a.sink.text()), Array.from({ length: 13 }, (_v, i) => i + 1), 'every frame, in order, once')
  t.same(ids(b.sink.text()), ids(a.sink.text()))
  t.equal(a.sink.writes.length, 3, 'the three held turns in one write')
  t.equal(b.sink.writes.length, 3)
  t.equal(a.caller.lastWrittenId, 'e-13')
  t.equal(a.caller.queuedBytes, 0)
})

t.test('caller - a socket that takes bytes is not queue-full, one that refuses is dropped with event: slow', async (t) => {
  const small: CallerOptions = { ...OPTIONS, maxQueueBytes: 4096 }
  const fast = open(t, small)
  for (const { id, frame } of frames(1, 40, 300)) fast.caller.send(frame, id)
  await turn()
  t.same(fast.closed, [], 'more than maxQueueBytes in one turn, all taken: not slow')
  t.same(ids(fast.sink.text()), Array.from({ length: 40 }, (_v, i) => i + 1))
  t.ok(fast.caller.maxQueuedBytes <= 4096 + 400, 'the queue never held more than the bound and one frame')

  const slow = open(t, small)
  slow.sink.accept = false
  for (const { id, frame } of frames(1, 2, 300)) slow.caller.send(frame, id)
  await turn()
  for (const { id, frame } of frames(3, 40, 300)) slow.caller.send(frame, id)
  t.same(slow.closed, ['slow'], 'over the bound while refused: dropped')
  t.equal(slow.caller.slowReason, 'queue-full')
  t.match(slow.sink.ended?.finalFrame ?? '', /^event: slow\ndata: \{"lastEventId":"e-2","reason":"queue-full"\}\n\n$/, 'event: slow names the last id written')
})
