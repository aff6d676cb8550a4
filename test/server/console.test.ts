/**
 * The browser console (issue 7), end to end in headless Chromium (Debian's `chromium` driven by playwright-core):
 * the login page takes the token, the page shows the demo session connected, ticks arrive through the browser's
 * own EventSource, a dropped stream is resumed by the browser with Last-Event-ID (nothing missed, nothing twice),
 * a publish from the page appears in the stream, the token is kept in memory only, no CSP violation. Then the
 * no-token (loopback) mode serves the page directly, shows each session's subscriptions, last event id and the
 * stream's in-band status events, and clears an upstream error once the upstream is back.
 * Both modes are laid out at 1280×800, 390×844 and 360×740: every element inside the viewport, no sideways
 * scrolling, the page as wide as the screen; screenshots go to .tap/artifacts/ (kept by CI).
 *
 * Skipped (with the reason) only when /usr/bin/chromium is missing: .ci/run installs it.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { startDemoUpstream, withDemoSession } from '../../server/demo/demo.js'
import { defaultConfig } from '../../config/index.js'
import { waitFor } from '../helpers/wait.js'
import { makeConfig, startBridge, waitConnected } from './fixtures/bridge.js'
import { tokenEntry } from './fixtures/callers.js'
import { chromiumSkip, launchChromium } from './fixtures/chromium.js'
import { ROOT } from './fixtures/spawn.js'

const AUTH_DEFAULTS = defaultConfig().auth

const TOKEN = 'console-token-0123456789abcdef'
t.setTimeout(180_000)

const skip = chromiumSkip

// page functions run in the browser: minimal declarations keep this file free of the DOM lib
declare const document: any, localStorage: any, sessionStorage: any, location: any, requestAnimationFrame: (fn: () => void) => void

const ARTIFACTS = join(ROOT, '.tap', 'artifacts')
const VIEWPORTS = [{ width: 1280, height: 800 }, { width: 390, height: 844 }, { width: 360, height: 740 }]

type Page = Awaited<ReturnType<Awaited<ReturnType<typeof launchChromium>>['newPage']>>

/** Elements outside the viewport's width, sideways scrolling, a page narrower than the screen (up to 1600 px). */
async function layoutProblems (page: Page, selectors: string): Promise<string[]> {
  return await page.evaluate((sel: string) => {
    const width = document.documentElement.clientWidth
    const out: string[] = []
    if (document.documentElement.scrollWidth > width) out.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} px wide in ${width}`)
    for (const node of document.querySelectorAll(sel)) {
      const r = node.getBoundingClientRect()
      if (r.width === 0 && r.height === 0) continue // not displayed
      const name = node.tagName.toLowerCase() + (node.id !== '' ? '#' + node.id : '')
      if (r.left < -0.5 || r.right > width + 0.5) out.push(`${name} spans ${Math.round(r.left)}..${Math.round(r.right)} of ${width}`)
    }
    const main = document.querySelector('main') ?? document.body
    const used = main.getBoundingClientRect().width
    if (document.querySelector('main') !== null && used < Math.min(width, 1600) - 1) out.push(`main is ${Math.round(used)} px wide in ${width}`)
    return out
  }, selectors)
}

const CONSOLE_PARTS = 'header, main, section, table, tr, td, form, input, select, textarea, button, ol, li, .status'

/** At each viewport: the layout checked and a screenshot saved (`name`-WxH.png). */
async function checkLayouts (t: Test, page: Page, name: string, selectors = CONSOLE_PARTS): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true })
  for (const viewport of VIEWPORTS) {
    await page.setViewportSize(viewport)
    await page.evaluate(() => new Promise<void>((resolve) => { requestAnimationFrame(() => { requestAnimationFrame(() => { resolve() }) }) }))
    t.same(await layoutProblems(page, selectors), [], `${name} at ${viewport.width}×${viewport.height}: everything inside, no sideways scrolling`)
    await page.screenshot({ path: join(ARTIFACTS, `${name}-${viewport.width}x${viewport.height}.png`), fullPage: true })
  }
  await page.setViewportSize(VIEWPORTS[0]!)
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
  const context = await launchChromium(t)
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
  await checkLayouts(t, page, 'console-login', 'h1, form, input, button, p')
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
  await checkLayouts(t, page, 'console-token')

  // drop the stream from the server side: the browser reconnects by itself, sending Last-Event-ID
  const lastShown = await page.textContent('#stream-last-id')
  const opened = (): Array<Record<string, unknown>> => logs.lines.filter((l) => l.msg === 'stream opened' && l.session === 'demo')
  t.equal(opened().length, 1)
  app.bridge.sessions.get('demo')!.shutdownCallers()
  await page.waitForFunction(() => document.getElementById('stream-opens')?.textContent === '2', undefined, { timeout: 20_000 })
  t.match(await page.textContent('#stream-last-status'), /^shutdown \{"lastEventId":/, 'the in-band shutdown event is shown')
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

t.test('console - no tokens configured: the page directly; sessions, status events, an upstream error cleared when resolved', { skip }, async (t) => {
  let demo = await startDemoUpstream({ tickMs: 250 })
  t.teardown(async () => { await demo.close() })
  const port = demo.port
  const { app, base } = await startBridge(t, withDemoSession(makeConfig({}, { sse: { retryMs: 300 } }), demo.url))
  await waitConnected(app)
  const context = await launchChromium(t)
  const page = context.pages()[0] ?? await context.newPage()
  const pageErrors: string[] = []
  page.on('pageerror', (e) => { pageErrors.push(String(e)) })
  const nav = await page.goto(`${base}/`)
  t.equal(nav?.status(), 200)
  const row = 'tr[data-session="demo"]'
  await page.waitForFunction((r: string) => document.querySelector(`${r} td.state`)?.textContent === 'connected', row, { timeout: 20_000 })
  await page.click('#sub-start')
  await page.waitForFunction(() => document.querySelectorAll('#events li.message').length >= 2, undefined, { timeout: 20_000 })
  t.match(await page.textContent('#who'), /no token needed/)
  await page.waitForFunction((r: string) => /-\d+$/.test(document.querySelector(`${r} td.last-id`)?.textContent ?? ''), row, { timeout: 10_000 })
  await page.waitForFunction((r: string) => (document.querySelector(`${r} td.subscriptions`)?.textContent ?? '').includes('1 caller)'), row, { timeout: 10_000 })
  t.match(await page.textContent(`${row} td.subscriptions`), /\/demo\/ticks \(subscribed, held, 1 caller\)/, 'the subscriptions: held, with their callers')
  t.equal(await page.textContent(`${row} td.last-error`), '', 'no error while all is well')
  await checkLayouts(t, page, 'console-no-token')

  // the upstream goes away: the state, the error and the stream's in-band status event show it …
  await demo.close()
  await page.waitForFunction((r: string) => document.querySelector(`${r} td.state`)?.textContent !== 'connected', row, { timeout: 20_000 })
  await page.waitForFunction(() => (document.getElementById('stream-last-status')?.textContent ?? '').startsWith('upstream'), undefined, { timeout: 20_000 })
  t.match(await page.textContent('#stream-last-status'), /"status":"down"/, 'the in-band upstream event is shown')
  await page.waitForFunction(() => (document.getElementById('errors')?.textContent ?? '').includes('demo: '), undefined, { timeout: 20_000 })
  t.pass(`the error is listed: ${await page.textContent('#errors li')}`)
  await checkLayouts(t, page, 'console-no-token-upstream-down')
  // … and once it is back, the error is gone from the list and from the session's row
  demo = await startDemoUpstream({ tickMs: 250, port })
  await page.waitForFunction((r: string) => document.querySelector(`${r} td.state`)?.textContent === 'connected' && document.querySelector(`${r} td.ready`)?.textContent === 'yes', row, { timeout: 30_000 })
  await page.waitForFunction(() => !(document.getElementById('errors')?.textContent ?? '').includes('demo: '), undefined, { timeout: 10_000 })
  t.equal(await page.textContent(`${row} td.last-error`), '', 'the resolved error is cleared')
  await page.waitForFunction(() => (document.getElementById('stream-last-status')?.textContent ?? '').includes('"status":"up"'), undefined, { timeout: 20_000 })
  t.pass('the upstream-up status event is shown')
  t.same(pageErrors, [], 'no page error')
})
