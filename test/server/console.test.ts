/**
 * The browser console (issue 7), end to end in headless Chromium (Debian's `chromium` driven by playwright-core):
 * the login page takes the token, the page shows the demo session connected, ticks arrive through the browser's
 * own EventSource, a dropped stream is resumed by the browser with Last-Event-ID (nothing missed, nothing twice),
 * a publish from the page appears in the stream, the token is kept in memory only, no CSP violation. Then the
 * no-token (loopback) mode serves the page directly.
 *
 * Skipped (with the reason) only when /usr/bin/chromium is missing: .ci/run installs it.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startDemoUpstream, withDemoSession } from '../../server/demo/demo.js'
import { defaultConfig } from '../../config/index.js'
import { waitFor } from '../helpers/wait.js'
import { makeConfig, startBridge, waitConnected } from './fixtures/bridge.js'
import type { Teardown } from './fixtures/bridge.js'
import { tokenEntry } from './fixtures/callers.js'

const AUTH_DEFAULTS = defaultConfig().auth

const CHROMIUM = '/usr/bin/chromium'
const TOKEN = 'console-token-0123456789abcdef'
t.setTimeout(180_000)

const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install -y chromium; .ci/run does it)`

// page functions run in the browser: minimal declarations keep this file free of the DOM lib
declare const document: any, localStorage: any, sessionStorage: any, location: any

async function launch (t: Teardown) {
  const { chromium } = await import('playwright-core')
  const profile = mkdtempSync(join(tmpdir(), 'bridge-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
    timeout: 60_000
  })
  t.teardown(async () => {
    await context.close().catch(() => {})
    rmSync(profile, { recursive: true, force: true })
  })
  return context
}

t.test('console - in headless Chromium: login, live state, EventSource ticks and resume, publish', { skip }, async (t) => {
  const demo = await startDemoUpstream({ tickMs: 250 })
  t.teardown(demo.close)
  const config = withDemoSession(makeConfig({}, { sse: { retryMs: 300 } }), demo.url)
  config.auth = {
    ...AUTH_DEFAULTS,
    allowQueryToken: true,
    tokens: [tokenEntry({ name: 'console', token: TOKEN, sessions: ['*'], subscribe: ['/demo/**'], publish: ['/demo/chat'], console: true })]
  }
  const { app, base, logs } = await startBridge(t, config)
  await waitConnected(app)

  const started = Date.now()
  const context = await launch(t)
  const page = context.pages()[0] ?? await context.newPage()
  t.comment(`chromium started in ${Date.now() - started} ms`)
  const cspViolations: string[] = []
  const pageErrors: string[] = []
  page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) cspViolations.push(m.text()) })
  page.on('pageerror', (e) => { pageErrors.push(String(e)) })

  const nav = await page.goto(`${base}/`)
  t.equal(nav?.status(), 401, 'the navigation is answered 401 …')
  await page.waitForSelector('#login-token')
  t.pass('… with the login page')
  await page.fill('#login-token', 'wrong-token-0123456789abcdef')
  await page.click('#login-submit')
  await page.waitForFunction(() => (document.getElementById('login-error')?.textContent ?? '') !== '')
  t.match(await page.textContent('#login-error'), /Invalid token/, 'a wrong token is refused')
  await page.fill('#login-token', TOKEN)
  await page.click('#login-submit')

  await page.waitForSelector('tr[data-session="demo"] td.state', { timeout: 20_000 })
  await page.waitForFunction(() => document.querySelector('tr[data-session="demo"] td.state')?.textContent === 'connected', undefined, { timeout: 20_000 })
  t.pass('the demo session shows connected')
  t.match(await page.textContent('#who'), /token: console/)

  await page.fill('#sub-channel', '/demo/**')
  await page.click('#sub-start')
  await page.waitForFunction(() => document.querySelectorAll('#events li.message').length >= 3, undefined, { timeout: 20_000 })
  t.equal(await page.textContent('#stream-mode'), 'EventSource', 'the browser\'s own EventSource (token via ?access_token=)')
  t.pass('ticks arrive')

  // drop the stream from the server side: the browser reconnects by itself, sending Last-Event-ID
  const lastShown = await page.textContent('#stream-last-id')
  const opened = (): Array<Record<string, unknown>> => logs.lines.filter((l) => l.msg === 'stream opened' && l.session === 'demo')
  t.equal(opened().length, 1)
  app.bridge.sessions.get('demo')!.shutdownCallers()
  await page.waitForFunction(() => document.getElementById('stream-opens')?.textContent === '2', undefined, { timeout: 20_000 })
  await waitFor(() => opened().length === 2)
  const resumedFrom = opened()[1]!.lastEventId as string
  t.match(resumedFrom, /^[a-z0-9]+-\d+$/, `the browser reconnected with Last-Event-ID ${resumedFrom}`)
  t.ok(lastShown !== null && Number(resumedFrom.split('-')[1]) >= Number(lastShown.split('-')[1]), 'from what it had shown (or later)')
  await page.waitForFunction(() => document.querySelectorAll('#events li.message').length >= 10, undefined, { timeout: 20_000 })
  const ticks = await page.$$eval('#events li.message', (items) => items.map((li) => li.textContent ?? '').filter((x) => x.includes('/demo/ticks')).map((x) => Number(/"n":(\d+)/.exec(x)?.[1])).reverse())
  t.ok(ticks.length >= 8, `${ticks.length} ticks shown`)
  t.same(ticks, Array.from({ length: ticks.length }, (_, i) => ticks[0]! + i), 'ticks contiguous across the reconnection: nothing missed, nothing twice')

  await page.fill('#pub-channel', '/demo/chat')
  await page.fill('#pub-data', '{"text":"hello from chromium"}')
  await page.click('#pub-send')
  await page.waitForFunction(() => (document.getElementById('pub-result')?.textContent ?? '').includes('"successful":true'), undefined, { timeout: 20_000 })
  await page.waitForFunction(() => [...document.querySelectorAll('#events li.message')].some((li) => li.textContent?.includes('/demo/chat') && li.textContent.includes('hello from chromium')), undefined, { timeout: 20_000 })
  t.pass('a publish from the page appears in the stream')

  await page.fill('#pub-channel', '/demo/other')
  await page.click('#pub-send')
  await page.waitForFunction(() => (document.getElementById('errors')?.textContent ?? '').includes('forbidden'), undefined, { timeout: 20_000 })
  t.pass('a refused publish shows in the last errors')

  const storage = await page.evaluate(() => ({ local: localStorage.length, session: sessionStorage.length, cookie: document.cookie, url: location.href }))
  t.same(storage, { local: 0, session: 0, cookie: '', url: `${base}/` }, 'the token is not stored (memory only) and not in the page URL')
  t.same(cspViolations, [], 'no CSP violation')
  t.same(pageErrors, [], 'no page error')
})

t.test('console - no tokens configured: a loopback browser gets the page directly', { skip }, async (t) => {
  const demo = await startDemoUpstream({ tickMs: 250 })
  t.teardown(demo.close)
  const { app, base } = await startBridge(t, withDemoSession(makeConfig({}), demo.url))
  await waitConnected(app)
  const context = await launch(t)
  const page = context.pages()[0] ?? await context.newPage()
  const nav = await page.goto(`${base}/`)
  t.equal(nav?.status(), 200)
  await page.waitForFunction(() => document.querySelector('tr[data-session="demo"] td.state')?.textContent === 'connected', undefined, { timeout: 20_000 })
  await page.click('#sub-start')
  await page.waitForFunction(() => document.querySelectorAll('#events li.message').length >= 2, undefined, { timeout: 20_000 })
  t.match(await page.textContent('#who'), /no token needed/)
  t.pass('page, state and ticks without a token')
})
