/**
 * Websocket frames are received one at a time and in order, also when the session's receive() is slow (an
 * asynchronous incoming extension): frames that arrive meanwhile wait, and a long backlog pauses the socket
 * without the read deadline taking the pause for a dead connection. Against a real faye server.
 */
import t from 'tap'
import type { Test } from 'tap'
import { Client, Extension } from '../../client-core/index.js'
import type { Payload } from '../../client-core/index.js'
import { startFaye } from '../helpers/faye.js'
import { delay, waitFor } from '../helpers/wait.js'

/** Counts payloads with events and how many were being received at once; can hold them back. */
class SlowIncoming extends Extension {
  active = 0
  maxActive = 0
  eventPayloads = 0
  gate: Promise<void> | null = null
  jitter = false
  override async incoming (payload: Payload): Promise<void> {
    if (!payload.some((m) => m.channel === '/frames/x')) return
    this.eventPayloads++
    this.active++
    this.maxActive = Math.max(this.maxActive, this.active)
    try {
      if (this.gate !== null) await this.gate
      if (this.jitter) await delay(this.eventPayloads % 3)
    } finally {
      this.active--
    }
  }
}

async function setup (t: Test, options: { pingIntervalMs?: number } = {}): Promise<{ faye: Awaited<ReturnType<typeof startFaye>>, client: Client, ext: SlowIncoming, got: number[], states: string[] }> {
  const faye = await startFaye({ timeoutSec: 10 })
  t.teardown(faye.close)
  const ext = new SlowIncoming()
  const client = new Client(faye.url, { connectionTypes: 'websocket', extensions: [ext], ...options })
  t.teardown(async () => await client.close())
  const states: string[] = []
  client.on('state', (change) => { states.push(`${change.to}:${change.reason}`) })
  await client.open()
  const got: number[] = []
  await client.subscribe('/frames/x', (m) => { got.push(m.data as number) })
  states.length = 0
  return { faye, client, ext, got, states }
}

t.test('websocket: frames are received one at a time, in order, while an incoming extension is slow', async (t) => {
  const { faye, ext, got } = await setup(t)
  ext.jitter = true
  const n = 300
  for (let i = 0; i < n; i++) await faye.publish('/frames/x', i)
  await waitFor(() => got.length >= n, { timeoutMs: 20_000, message: () => `got ${got.length} of ${n}` })
  t.same(got, Array.from({ length: n }, (_, i) => i), 'every event once, in publication order')
  t.equal(ext.maxActive, 1, 'never two frames in receive() at once')
  t.ok(ext.eventPayloads > 1, `several frames (${ext.eventPayloads})`)
})

t.test('websocket: a long backlog pauses the socket; the read deadline does not count the pause as silence', async (t) => {
  const { faye, client, ext, got, states } = await setup(t, { pingIntervalMs: 100 })
  let open!: () => void
  ext.gate = new Promise<void>((resolve) => { open = resolve })
  const n = 1500 // more frames than the backlog holds before pausing (1,024)
  for (let i = 0; i < n; i++) await faye.publish('/frames/x', i)
  await delay(600) // > 2 ping intervals with the socket (possibly) paused
  t.equal(got.length, 0, 'nothing delivered while the first frame is held')
  open()
  ext.gate = null
  await waitFor(() => got.length >= n, { timeoutMs: 30_000, message: () => `got ${got.length} of ${n}` })
  t.same(got, Array.from({ length: n }, (_, i) => i), 'every event once, in publication order')
  t.equal(ext.maxActive, 1)
  t.same(states, [], 'no state change: the connection was never taken for dead')
  t.equal(client.state, 'connected')
})

t.test('WebSocketTransport: a context that finishes synchronously is not waited for; frames stay in order either way', async (t) => {
  // The transport alone, under a stub context, against a ws server that sends a burst of frames in one go.
  const { WebSocketServer } = await import('ws')
  const { WebSocketTransport } = await import('../../client-core/transport/websocket.js')
  const { SessionCookieJar } = await import('../../client-core/transport/transport.js')
  const n = 200
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  t.teardown(() => { for (const c of wss.clients) c.terminate(); wss.close() })
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
  wss.on('connection', (socket) => {
    socket.once('message', () => {
      for (let i = 0; i < n; i++) socket.send(JSON.stringify([{ channel: '/x', data: i }]))
    })
  })
  const port = (wss.address() as { port: number }).port
  const seen: number[] = []
  let pending = 0
  let overlap = 0
  let waited = 0
  const silent = { debug () {}, info () {}, warn () {}, error () {} }
  const transport = new WebSocketTransport({
    url: new URL(`http://127.0.0.1:${port}/cometd`),
    proxy: null,
    cookies: new SessionCookieJar(),
    tls: undefined,
    logger: silent as never,
    maxNetworkDelayMs: 5000,
    pingIntervalMs: 0,
    appendMessageTypeToURL: false,
    stringify: JSON.stringify,
    parse: (text) => JSON.parse(text) as Payload,
    receive (payload) {
      if (pending > 0) overlap++
      const i = payload[0]!.data as number
      seen.push(i)
      if (i % 3 !== 0) return undefined as unknown as Promise<void> // finished synchronously
      pending++
      waited++
      return new Promise<void>((resolve) => setTimeout(() => { pending--; resolve() }, i % 2))
    },
    closed () {}
  })
  t.teardown(async () => await transport.close())
  await transport.send([{ channel: '/meta/connect' }], {}, { timeoutMs: 5000, signal: new AbortController().signal, isConnect: false, messageType: null })
  await waitFor(() => seen.length >= n, { timeoutMs: 10_000, message: () => `seen ${seen.length} of ${n}` })
  await waitFor(() => pending === 0, { timeoutMs: 5000 })
  t.same(seen, Array.from({ length: n }, (_, i) => i), 'in order')
  t.equal(overlap, 0, 'no frame handed over while an earlier one was still being received')
  t.equal(waited, Math.ceil(n / 3))
})
