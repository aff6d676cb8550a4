/**
 * server/session/startup.ts: sessions opened a few at a time (a slow first attempt gives its slot up after slotMs, a
 * shutdown stops the start-up), the lazy child logger, and the one-off GC.
 */
import t from 'tap'
import { PassThrough } from 'node:stream'
import { fullGc, openSessions } from '../../server/session/startup.js'
import { LazyChildLogger } from '../../server/ops/lazy-log.js'
import { createLogger } from '../../server/ops/logger.js'

function fakeSessions (n: number, attemptMs: (i: number) => number) {
  let running = 0
  let maxRunning = 0
  const order: number[] = []
  const sessions = Array.from({ length: n }, (_v, i) => ({
    start: async (): Promise<void> => {
      order.push(i)
      running++
      maxRunning = Math.max(maxRunning, running)
      await new Promise((resolve) => setTimeout(resolve, attemptMs(i)))
      running--
    }
  }))
  return { sessions, order, get maxRunning () { return maxRunning }, get running () { return running } }
}

t.test('openSessions - at most `concurrency` first attempts at a time, all of them started, in order', async (t) => {
  const f = fakeSessions(25, () => 5)
  await openSessions(f.sessions, { concurrency: 4, slotMs: 10_000, stopped: () => false })
  t.equal(f.order.length, 25)
  t.same(f.order, [...f.order].sort((a, b) => a - b))
  t.equal(f.maxRunning, 4)
  t.equal(f.running, 0, 'resolves when every attempt is over')
})

t.test('openSessions - a slow attempt gives its slot up after slotMs; the promise waits for it', async (t) => {
  const f = fakeSessions(3, (i) => (i === 0 ? 400 : 5))
  const started = Date.now()
  let othersDone = 0
  const p = openSessions(f.sessions, { concurrency: 1, slotMs: 50, stopped: () => false })
  await new Promise((resolve) => setTimeout(resolve, 250))
  othersDone = f.order.length
  await p
  t.equal(othersDone, 3, 'the others started while the slow one was still opening')
  t.ok(Date.now() - started >= 350, 'settles after the slow attempt')
})

t.test('openSessions - stops starting sessions once stopped', async (t) => {
  const f = fakeSessions(10, () => 5)
  let stop = false
  const p = openSessions(f.sessions, { concurrency: 2, slotMs: 10_000, stopped: () => stop })
  stop = true
  await p
  t.ok(f.order.length <= 2, `started ${f.order.length}`)
})

t.test('fullGc - runs without --expose-gc', async (t) => {
  t.equal(fullGc(), true)
  t.equal((globalThis as { gc?: unknown }).gc === undefined || typeof (globalThis as { gc?: unknown }).gc === 'function', true)
})

t.test('LazyChildLogger - no pino child until a line is logged at an enabled level; bindings and arguments kept', async (t) => {
  let text = ''
  const out = new PassThrough()
  out.on('data', (c: Buffer) => { text += c.toString('utf8') })
  const root = createLogger('info', out)
  let children = 0
  const counting = Object.assign(Object.create(root) as typeof root, {
    child: (b: Record<string, unknown>) => { children++; return root.child(b) }
  })
  const session = new LazyChildLogger(counting, { session: 's1' })
  const client = new LazyChildLogger(session, { component: 'client' })
  client.debug({ a: 1 }, 'below the level')
  t.equal(children, 0)
  t.equal(client.isLevelEnabled('debug'), false)
  client.warn({ token: 'secret' }, 'with %s', 'arg')
  session.info('plain')
  t.equal(children, 1, 'the session child, made once')
  await new Promise((resolve) => setImmediate(resolve))
  const lines = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  t.match(lines[0], { level: 40, session: 's1', component: 'client', token: '[redacted]', msg: 'with arg' })
  t.match(lines[1], { level: 30, session: 's1', msg: 'plain' })
  t.notOk('component' in lines[1]!)
})
