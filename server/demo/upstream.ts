#!/usr/bin/env node
/**
 * The demo upstream on its own (docker-compose service `demo-upstream`): a Faye server publishing a tick on
 * /demo/ticks every second. DEMO_HOST (default 0.0.0.0) and DEMO_PORT (default 9000); exits 0 on SIGTERM/SIGINT.
 */
import { startDemoUpstream } from './demo.js'

const host = process.env.DEMO_HOST ?? '0.0.0.0'
const port = Number(process.env.DEMO_PORT ?? '9000')
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`demo-upstream: DEMO_PORT must be a port number, got ${JSON.stringify(process.env.DEMO_PORT)}\n`)
  process.exit(78)
}

const demo = await startDemoUpstream({ host, port })
process.stdout.write(JSON.stringify({ level: 30, time: Date.now(), msg: 'demo upstream listening', url: demo.url, host, port: demo.port }) + '\n')

const stop = (): void => {
  const force = setTimeout(() => { process.exit(0) }, 5_000)
  force.unref()
  void demo.close().then(() => { process.exit(0) })
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
