#!/usr/bin/env node
/**
 * Long refusal (not in CI): how often does the bridge knock on an upstream that refuses every connection, once the
 * first minute of the outage is over? The compiled daemon (dist/server/main.js) is connected to a Faye upstream;
 * the upstream is stopped and its port taken by a listener that resets every connection (recording when); after
 * --seconds (default 180) Faye comes back on the same port and the time to reconnect is measured.
 *
 *   npm run build && node dist/bench/soak/refusal.js --seconds 180
 *
 * Prints the attempts per second in each 30 s window of the outage (goal: ≈ 0.25/s after the first minute, when the
 * backoff cap is 8 s with full jitter) and the time from Faye accepting again to the session being connected.
 */
import { spawn } from 'node:child_process'
import net from 'node:net'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { SoakUpstream } from './upstream.js'

const HERE = path.dirname(fileURLToPath(import.meta.url)) // dist/bench/soak
const MAIN = path.resolve(HERE, '../../server/main.js')
const i = process.argv.indexOf('--seconds')
const SECONDS = i >= 0 ? Number(process.argv[i + 1]) : 180
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function state (base: string): Promise<string> {
  try {
    const r = await fetch(`${base}/sessions/r`, { signal: AbortSignal.timeout(3_000) })
    return ((await r.json()) as { state: string }).state
  } catch { return 'unreachable' }
}

async function main (): Promise<void> {
  const upstream = new SoakUpstream()
  await upstream.start()
  const dir = mkdtempSync(path.join(tmpdir(), 'bridge-refusal-'))
  const cfg = path.join(dir, 'bridge.yaml')
  writeFileSync(cfg, ['listen: { host: 127.0.0.1, port: 0 }', 'logLevel: info', 'sessions:', '  r:', `    url: ${upstream.url}`, ''].join('\n'))
  const child = spawn(process.execPath, [MAIN, '--config', cfg], { stdio: ['ignore', 'pipe', 'inherit'] })
  process.on('exit', () => { child.kill('SIGKILL') })
  let port = 0
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (c: string) => { const m = /"port":(\d+)[^\n]*cometd-bridge listening|cometd-bridge listening[^\n]*"port":(\d+)/.exec(c); if (m !== null) port = Number(m[1] ?? m[2]) })
  for (let k = 0; k < 300 && port === 0; k++) await sleep(100)
  const base = `http://127.0.0.1:${port}`
  for (let k = 0; k < 300 && (await state(base)) !== 'connected'; k++) await sleep(100)
  console.log(`refusal: bridge ${base} connected to ${upstream.url}; refusing for ${SECONDS} s`)

  await upstream.stop()
  const attempts: number[] = []
  const refuser = net.createServer((s) => { attempts.push(Date.now()); s.on('error', () => {}); s.resetAndDestroy() })
  await new Promise<void>((resolve) => refuser.listen({ port: upstream.port, host: '127.0.0.1', exclusive: true }, resolve))
  const from = Date.now()
  await sleep(SECONDS * 1000)
  await new Promise<void>((resolve) => refuser.close(() => { resolve() }))
  await upstream.start()
  const back = Date.now()
  let reconnectMs = -1
  for (let k = 0; k < 400; k++) {
    if ((await state(base)) === 'connected') { reconnectMs = Date.now() - back; break }
    await sleep(50)
  }
  const windows: string[] = []
  for (let w = 0; w * 30 < SECONDS; w++) {
    const a = from + w * 30_000
    const b = Math.min(from + SECONDS * 1000, a + 30_000)
    const count = attempts.filter((x) => x >= a && x < b).length
    windows.push(`${w * 30}-${Math.round((b - from) / 1000)} s: ${count} (${(count / ((b - a) / 1000)).toFixed(2)}/s)`)
  }
  const late = attempts.filter((x) => x >= from + 60_000)
  const lateRate = late.length / Math.max(1, SECONDS - 60)
  console.log(`attempts: ${attempts.length} in ${SECONDS} s; per window: ${windows.join('; ')}`)
  console.log(`after the first minute: ${late.length} attempts in ${SECONDS - 60} s = ${lateRate.toFixed(3)}/s`)
  console.log(`connected again ${reconnectMs} ms after the upstream accepted (late phase: cap 8 s)`)
  child.kill('SIGTERM')
  await sleep(1_000)
  await upstream.stop()
  rmSync(dir, { recursive: true, force: true })
  process.exit(0)
}

main().catch((err: unknown) => { console.error(err); process.exit(1) })
