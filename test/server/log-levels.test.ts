/**
 * The log of a short scripted run, read line by line: probes and routine requests at debug, caller mistakes at
 * info without a stack, an upstream outage (a real faye, stopped and started again) at warn with the reason, and
 * nothing at error — nothing in the run is a fault of the bridge's own.
 */
import t from 'tap'
import { ErrorCode, HttpError } from '../../server/errors.js'
import { requestLogLevel } from '../../server/ops/request-log.js'
import { startFaye } from '../helpers/faye.js'
import { waitFor } from '../helpers/wait.js'
import { makeConfig, request, startBridge, waitConnected } from './fixtures/bridge.js'

t.setTimeout(90_000)

const DEBUG = 20
const INFO = 30
const WARN = 40

t.test('log levels - probes, routine requests, caller mistakes, an upstream outage', async (t) => {
  const faye = await startFaye({ timeoutSec: 2 })
  t.teardown(faye.close)
  const { app, base, logs } = await startBridge(t, makeConfig({ f: { url: faye.url, subscribe: ['/keep'] } }), { logLevel: 'debug' })
  await waitConnected(app)
  await waitFor(async () => (await request(`${base}/readyz`)).status === 200, { timeoutMs: 10_000 })

  const requestLine = (method: string, url: string, status: number): Record<string, unknown> => {
    const line = logs.lines.find((l) => {
      const req = l.req as { method?: string, url?: string } | undefined
      return req?.method === method && req.url === url && l.statusCode === status
    })
    if (line === undefined) throw new Error(`no log line for ${method} ${url} ${status}`)
    return line
  }

  for (const probe of ['/healthz', '/readyz', '/metrics']) t.equal((await request(`${base}${probe}`)).status, 200)
  t.equal((await request(`${base}/sessions/f`)).status, 200)
  t.equal((await request(`${base}/sessions/nope`)).status, 404)
  const bad = await request(`${base}/sessions/f/publish/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{oops' })
  t.equal(bad.status, 400)

  await faye.stop()
  const lost = await waitFor(() => logs.lines.find((l) => l.msg === 'upstream connection lost'), { timeoutMs: 15_000 })
  const published = await request(`${base}/sessions/f/publish/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"text":"hi"}' })
  t.equal(published.status, 503, `publish during the outage: ${published.json?.error as string}`)
  t.equal((await request(`${base}/readyz`)).status, 503)
  await faye.start()
  const back = await waitFor(() => logs.lines.find((l) => l.msg === 'upstream connection back'), { timeoutMs: 20_000 })

  for (const probe of ['/healthz', '/readyz', '/metrics']) t.equal(requestLine('GET', probe, 200).level, DEBUG, `GET ${probe} at debug`)
  t.equal(requestLine('GET', '/readyz', 503).level, DEBUG, 'a failing readiness probe is still a probe (the outage has its own line)')
  t.equal(requestLine('GET', '/sessions/f', 200).level, DEBUG, 'a routine request at debug')

  const unknown = requestLine('GET', '/sessions/nope', 404)
  t.match(unknown, { level: INFO, error: 'unknown_session', reason: /No session named "nope"/ }, 'a caller mistake at info, with its code')
  t.match(requestLine('POST', '/sessions/f/publish/chat', 400), { level: INFO, error: 'bad_json' })

  t.match(lost, { level: WARN, session: 'f', reason: /\S/ }, `the outage at warn with the reason: ${String(lost.reason)} / ${String(lost.error)}`)
  const refused = requestLine('POST', '/sessions/f/publish/chat', 503)
  t.match(refused, { level: WARN, error: 'upstream_unavailable', reason: /not connected upstream/ }, 'the publish refused by the outage at warn, with the reason')
  t.match(back, { level: INFO, session: 'f' })
  t.ok((back.downMs as number) > 0, `back after ${String(back.downMs)} ms`)

  const errors = logs.lines.filter((l) => (l.level as number) > WARN)
  t.same(errors.map((l) => l.msg), [], 'nothing at error: no fault of our own happened')
  // stacks belong to debug (diagnosis) and error (our faults); info and warn lines say what happened in words
  const stacks = logs.lines.filter((l) => (l.level === INFO || l.level === WARN) && JSON.stringify(l).includes('"stack"'))
  t.same(stacks.map((l) => l.msg), [], 'no stack trace at info or warn')
  t.notOk(logs.lines.some((l) => l.msg === 'incoming request'), 'fastify\'s own request lines are off')
  const histogram: Record<string, number> = {}
  for (const l of logs.lines) histogram[`${String(l.level)} ${String(l.msg)}`] = (histogram[`${String(l.level)} ${String(l.msg)}`] ?? 0) + 1
  t.comment(`log lines by level and message: ${JSON.stringify(histogram)}`)
})

t.test('log levels - the policy for what the run cannot show (a fault of our own)', async (t) => {
  t.equal(requestLogLevel(false, 500, new HttpError(500, ErrorCode.INTERNAL, 'Internal error', { cause: new Error('bug') })), 'error')
  t.equal(requestLogLevel(true, 500, undefined), 'error', 'a probe that fails by our fault is an error too')
  t.equal(requestLogLevel(false, 503, new HttpError(503, ErrorCode.TOO_MANY_CALLERS, 'full')), 'warn')
  t.equal(requestLogLevel(false, 504, new HttpError(504, ErrorCode.CALL_TIMEOUT, 'slow')), 'warn')
  t.equal(requestLogLevel(false, 401, new HttpError(401, ErrorCode.UNAUTHORIZED, 'no token')), 'info')
  t.equal(requestLogLevel(false, 200, undefined), 'debug')
})
