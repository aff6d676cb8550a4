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
