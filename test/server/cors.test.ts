/**
 * CORS in headless Chromium: pages served by two other local http servers (two origins) open an EventSource on
 * the bridge and publish with fetch (a preflighted request: Authorization + JSON). The listed origin streams and
 * publishes; the other is refused by the browser. A token-less bridge stays strict: even with CORS forced into its
 * config it refuses the cross-origin stream (403), and the config refuses `http.cors` without tokens.
 */
import http from 'node:http'
import t from 'tap'
import { defaultConfig, parseConfigObject } from '../../config/index.js'
import type { Config } from '../../config/index.js'
import { startDemoUpstream, withDemoSession } from '../../server/demo/demo.js'
import { closeServer, createHttpServer, listen } from '../helpers/net-util.js'
import { makeConfig, request, startBridge, waitConnected } from './fixtures/bridge.js'
import type { Teardown } from './fixtures/bridge.js'
import { tokenEntry } from './fixtures/callers.js'
import { chromiumSkip, launchChromium } from './fixtures/chromium.js'

const AUTH_DEFAULTS = defaultConfig().auth
const TOKEN = 'cors-token-0123456789abcdef'
t.setTimeout(180_000)

// page functions run in the browser: minimal declarations keep this file free of the DOM lib
declare const EventSource: any, fetch: any

/** A page server: its origin is what the browser sends as Origin. */
async function pageServer (t: Teardown): Promise<string> {
  const { server, sockets } = createHttpServer((_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>app</title><p>app</p>')
  })
  const port = await listen(server)
  t.teardown(async () => { await closeServer(server, sockets) })
  return `http://127.0.0.1:${port}`
}

interface StreamOutcome { ticks: number, errored: boolean, readyState: number }

/** In the page: an EventSource on `url` for up to `ms`, counting ticks; stops at the first error. */
async function streamFromPage (page: import('playwright-core').Page, url: string, ms: number): Promise<StreamOutcome> {
  return await page.evaluate(async ({ url, ms }) => await new Promise<StreamOutcome>((resolve) => {
    const source = new EventSource(url)
    let ticks = 0
    const done = (errored: boolean): void => {
      const readyState = source.readyState as number
      source.close()
      resolve({ ticks, errored, readyState })
    }
    source.addEventListener('message', () => { if (++ticks >= 3) done(false) })
    source.onerror = () => { done(true) }
    setTimeout(() => { done(false) }, ms)
  }), { url, ms })
}

/** In the page: a JSON publish with a Bearer token (preflighted); the status, or the browser's refusal. */
async function publishFromPage (page: import('playwright-core').Page, url: string): Promise<number | string> {
  return await page.evaluate(async (url) => {
    try {
      const res = await fetch(url, { method: 'POST', headers: { Authorization: `Bearer ${'cors-token-0123456789abcdef'}`, 'Content-Type': 'application/json' }, body: '{"text":"hi"}' })
      return res.status as number
    } catch (err) {
      return String(err)
    }
  }, url)
}

async function demoBridge (t: Teardown, edit: (config: Config) => void) {
  const demo = await startDemoUpstream({ tickMs: 100 })
  t.teardown(demo.close)
  const config = withDemoSession(makeConfig({}), demo.url)
  edit(config)
  const bridge = await startBridge(t, config)
  await waitConnected(bridge.app)
  return bridge
}

t.test('cors - an EventSource and a preflighted publish from another origin: allowed when listed, refused when not', { skip: chromiumSkip }, async (t) => {
  const allowed = await pageServer(t)
  const other = await pageServer(t)
  const { base } = await demoBridge(t, (config) => {
    config.auth = { ...AUTH_DEFAULTS, allowQueryToken: true, tokens: [tokenEntry({ token: TOKEN, sessions: ['*'], subscribe: ['/demo/**'], publish: ['/demo/chat'] })] }
    config.http.cors = { origins: [allowed], credentials: false, maxAgeSec: 60 }
  })
  const context = await launchChromium(t)
  const page = context.pages()[0] ?? await context.newPage()
  const refusals: string[] = []
  page.on('console', (m) => { if (/CORS policy/i.test(m.text())) refusals.push(m.text()) })
  const streamUrl = `${base}/sessions/demo/events?channel=/demo/ticks&access_token=${TOKEN}`

  await page.goto(`${allowed}/`)
  const ok = await streamFromPage(page, streamUrl, 10_000)
  t.same(ok, { ticks: 3, errored: false, readyState: 1 }, `${allowed}: three ticks through the browser's EventSource`)
  t.equal(await publishFromPage(page, `${base}/sessions/demo/publish/demo/chat`), 200, `${allowed}: the preflighted publish`)
  t.equal(refusals.length, 0, 'no CORS refusal on the allowed origin')

  await page.goto(`${other}/`)
  const refused = await streamFromPage(page, streamUrl, 10_000)
  t.same(refused, { ticks: 0, errored: true, readyState: 2 }, `${other}: the EventSource fails for good (CLOSED)`)
  t.match(await publishFromPage(page, `${base}/sessions/demo/publish/demo/chat`), /TypeError/, `${other}: fetch refused by the browser`)
  t.ok(refusals.some((m) => m.includes(other)), `Chromium says why: ${refusals[0]?.slice(0, 160) ?? '(nothing)'}`)

  // what the browser saw, without a browser
  const preflight = await request(`${base}/sessions/demo/publish/demo/chat`, { method: 'OPTIONS', headers: { Origin: allowed, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' } })
  t.equal(preflight.status, 204, 'a preflight is answered without a token')
  t.equal(preflight.headers.get('access-control-allow-origin'), allowed)
  t.match(preflight.headers.get('access-control-allow-headers') ?? '', /Authorization/)
  t.equal(preflight.headers.get('access-control-max-age'), '60')
  t.equal(preflight.headers.get('access-control-allow-credentials'), null, 'credentials off by default')
  const foreign = await request(`${base}/sessions/demo/publish/demo/chat`, { method: 'OPTIONS', headers: { Origin: other, 'Access-Control-Request-Method': 'POST' } })
  t.equal(foreign.headers.get('access-control-allow-origin'), null, 'no Allow-Origin for an unlisted origin')
  const unauth = await request(`${base}/sessions/demo/events?channel=/demo/ticks`, { headers: { Origin: allowed } })
  t.equal(unauth.status, 401, 'CORS does not open anything a token does not')
  t.equal(unauth.headers.get('access-control-allow-origin'), allowed, 'the 401 is readable by the page')
})

t.test('cors - a token-less (loopback) bridge stays strict: cross-origin refused even with CORS forced in; the config refuses it', { skip: chromiumSkip }, async (t) => {
  const page1 = await pageServer(t)
  const { base } = await demoBridge(t, (config) => {
    config.http.cors = { origins: [page1], credentials: false, maxAgeSec: 60 }
  })
  const direct = await request(`${base}/sessions/demo/events?channel=/demo/ticks`, { headers: { Origin: page1 } })
  t.equal(direct.status, 403, 'the Origin check of the token-less mode still answers first')
  t.match(direct.json?.message, /cross-origin requests are refused/)
  const context = await launchChromium(t)
  const page = context.pages()[0] ?? await context.newPage()
  await page.goto(`${page1}/`)
  const outcome = await streamFromPage(page, `${base}/sessions/demo/events?channel=/demo/ticks`, 10_000)
  t.same(outcome, { ticks: 0, errored: true, readyState: 2 }, 'the browser gets no stream')

  const parsed = parseConfigObject({ http: { cors: { origins: ['https://app.example'] } } }, {})
  t.notOk(parsed.ok)
  if (!parsed.ok) t.match(parsed.errors, [{ path: 'http.cors.origins', message: /CORS needs callers with tokens/ }])
})

t.test('cors - config: origins are origins, "*" not with credentials', async (t) => {
  const tokens = [{ token: TOKEN, sessions: ['*'] }]
  const parse = (cors: unknown) => parseConfigObject({ auth: { tokens }, http: { cors } }, {})
  const good = parse({ origins: ['https://App.example:443/', 'http://localhost:3000'] })
  t.ok(good.ok)
  if (good.ok) t.same(good.config.http.cors, { origins: ['https://app.example', 'http://localhost:3000'], credentials: false, maxAgeSec: 600 }, 'normalized as browsers send them; defaults')
  for (const bad of ['https://app.example/path', 'app.example', 'ftp://app.example', 'https://u:p@app.example', 'https://app.example?x=1']) {
    const r = parse({ origins: [bad] })
    t.notOk(r.ok, `${bad} refused`)
    if (!r.ok) t.match(r.errors, [{ path: 'http.cors.origins[0]', message: /must be an origin/ }])
  }
  const star = parse({ origins: ['*'], credentials: true })
  t.notOk(star.ok)
  if (!star.ok) t.match(star.errors, [{ path: 'http.cors.origins', message: /cannot be "\*" with credentials/ }])
  t.ok(parse({ origins: ['*'] }).ok, '"*" without credentials')
})
