/** Extensions, AuthExtension and headers against real peers. */
import t from 'tap'
import { Client, Extension, AuthExtension, ClientError, ServerError } from '../../client-core/index.js'
import type { Headers, Payload } from '../../client-core/index.js'
import { startFaye } from '../helpers/faye.js'
import type { FayeMessage } from '../helpers/faye.js'
import { startCometd } from '../helpers/cometd-server.js'
import { withDeadline } from '../helpers/wait.js'

class Recorder extends Extension {
  readonly out: string[][] = []
  readonly in: string[][] = []
  readonly order: string[]
  readonly name: string
  constructor (name: string, order: string[]) { super(); this.name = name; this.order = order }
  override async outgoing (payload: Payload, headers: Headers): Promise<void> {
    this.order.push(`out:${this.name}`)
    this.out.push(payload.map((m) => m.channel))
    headers['x-ext'] = this.name
  }

  override async incoming (payload: Payload): Promise<void> {
    this.order.push(`in:${this.name}`)
    this.in.push(payload.map((m) => m.channel))
  }
}

class TokenAuth extends AuthExtension {
  token = 'stale'
  calls = 0
  readonly order: string[]
  readonly fresh: () => string
  constructor (fresh: () => string, order: string[] = []) { super(); this.fresh = fresh; this.order = order }
  override async outgoing (payload: Payload, headers: Headers): Promise<void> {
    this.order.push('out:auth')
    headers.authorization = `Bearer ${this.token}`
    for (const m of payload) if (m.channel === '/meta/handshake') m.ext = { ...m.ext, token: this.token }
  }

  override async incoming (): Promise<void> { this.order.push('in:auth') }
  async authenticate (): Promise<void> {
    this.calls++
    this.token = this.fresh()
  }
}

t.test('extensions see every payload in order; auth runs last out and first in', async (t) => {
  const seenHeaders: Array<string | undefined> = []
  const faye = await startFaye({
    timeoutSec: 5,
    extensions: [{
      incoming (message: FayeMessage, request: unknown, callback: (m: FayeMessage) => void) {
        const headers = (request as { headers?: Record<string, string> } | undefined)?.headers
        if (message.channel === '/meta/handshake') seenHeaders.push(headers?.authorization)
        callback(message)
      }
    }]
  })
  t.teardown(faye.close)
  for (const type of ['long-polling', 'websocket'] as const) {
    const order: string[] = []
    const a = new Recorder('a', order)
    const b = new Recorder('b', order)
    const auth = new TokenAuth(() => 'fresh', order)
    auth.token = 'good'
    const c = new Client(faye.url, { connectionTypes: type, extensions: [a, b], auth })
    t.teardown(async () => await c.close())
    await c.open()
    await c.subscribe('/ext/x')
    await c.publish('/ext/x', 1)
    await withDeadline(c.receive(), 5000, 'receive')
    t.same(order.slice(0, 3), ['out:a', 'out:b', 'out:auth'], `${type}: outgoing in list order, auth last`)
    t.same(order.slice(3, 6), ['in:auth', 'in:a', 'in:b'], `${type}: incoming auth first, then the list`)
    t.same(a.out[0], ['/meta/handshake'], 'the handshake travels alone')
    t.ok(a.out.some((p) => p.includes('/meta/subscribe')))
    t.ok(a.in.length >= 3)
    t.equal(seenHeaders.at(-1), 'Bearer good', `${type}: extension headers reach the server (HTTP request or ws upgrade)`)
    t.equal(auth.calls, 0, 'no authentication needed')
    await c.close()
  }
})

t.test('an extension can drop a message: the call fails with ClientError', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  class Censor extends Extension {
    override async outgoing (payload: Payload): Promise<void> {
      for (let i = payload.length - 1; i >= 0; i--) if (payload[i]!.channel === '/censored/x') payload.splice(i, 1)
    }
  }
  const c = new Client(faye.url, { connectionTypes: 'long-polling', extensions: [new Censor()] })
  t.teardown(async () => await c.close())
  await c.open()
  await t.rejects(c.publish('/censored/x', 1), ClientError)
  const reply = await c.publish('/fine/x', 1)
  t.equal(reply.successful, true)
})

t.test('AuthExtension: authenticate() after a refused handshake, then the request is sent again', async (t) => {
  let valid = 'token-1'
  const cometd = await startCometd({
    options: { timeout: 3000 },
    policy: { canHandshake: (message) => (message.ext as { token?: string } | undefined)?.token === valid }
  })
  t.teardown(cometd.close)
  const auth = new TokenAuth(() => valid)
  const c = new Client(cometd.url, { connectionTypes: 'long-polling', auth })
  t.teardown(async () => await c.close())
  await c.open()
  t.equal(auth.calls, 1, 'authenticated once after 403::handshake_denied')
  t.equal(c.state, 'connected')
  await c.close()

  // The credentials go stale for good: open() fails with the server's reason after a single retry.
  valid = 'token-2'
  const stuck = new TokenAuth(() => 'never-valid')
  const d = new Client(cometd.url, { connectionTypes: 'long-polling', auth: stuck })
  t.teardown(async () => await d.close())
  const err = await d.open().then(() => null, (e: unknown) => e) as ServerError
  t.type(err, ServerError)
  t.equal(err.errorCode, 403)
  t.equal(stuck.calls, 1, 'one retry only: no loop')
})

t.test('headers: a function is called before each request and the websocket upgrade', async (t) => {
  const seen: string[] = []
  const faye = await startFaye({
    timeoutSec: 5,
    extensions: [{
      incoming (message: FayeMessage, request: unknown, callback: (m: FayeMessage) => void) {
        const value = (request as { headers?: Record<string, string> } | undefined)?.headers?.['x-request']
        if (value !== undefined) seen.push(value)
        callback(message)
      }
    }]
  })
  t.teardown(faye.close)
  let n = 0
  const c = new Client(faye.url, { connectionTypes: 'long-polling', headers: async () => ({ 'x-request': String(++n) }) })
  t.teardown(async () => await c.close())
  await c.open()
  await c.publish('/h/x', 1)
  t.ok(n >= 3, `called per request (${n} calls)`)
  t.ok(new Set(seen).size >= 3, 'each request carried its own value')
})
