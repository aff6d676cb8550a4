/**
 * Benchmark server process: a real faye 1.4.3 (NodeAdapter at /cometd, websocket and long-polling) or
 * cometd-nodejs-server 1.2.1 (long-polling) on 127.0.0.1, ephemeral port. Forked by the client suite:
 *
 *   node dist/bench/client/server.js --server faye|cometd
 *
 * Reports { port } with 'ready'; answers 'usage' with its CPU time and memory, and 'profileStart'/'profileStop'
 * (CPU profile to --profile-file).
 */
import http from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo, Socket } from 'node:net'
import { argValue, serveRpc } from '../lib/proc.js'
import { cpuMs, peakRssMB, rssMB } from '../lib/clock.js'
import { PhaseProfiler } from '../lib/profiler.js'

const require = createRequire(import.meta.url)

export type ServerName = 'faye' | 'cometd'
export const MOUNT = '/cometd'

interface FayeAdapter { attach: (server: http.Server) => void, close: () => void }
interface FayeModule { NodeAdapter: new (options: Record<string, unknown>) => FayeAdapter }

async function main (): Promise<void> {
  const name = argValue('server') as ServerName | undefined
  if (name !== 'faye' && name !== 'cometd') throw new Error('--server faye|cometd')
  const sockets = new Set<Socket>()
  let closeEngine: () => void
  let server: http.Server
  if (name === 'faye') {
    const faye = require('faye') as FayeModule
    const adapter = new faye.NodeAdapter({ mount: MOUNT, timeout: 30 })
    server = http.createServer((_req, res) => {
      res.statusCode = 404
      res.end()
    })
    adapter.attach(server)
    closeEngine = () => adapter.close()
  } else {
    const lib = require('cometd-nodejs-server') as typeof import('cometd-nodejs-server')
    const cometd = lib.createCometDServer({ timeout: 30_000 })
    server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0] ?? '/'
      if (path === MOUNT || path.startsWith(MOUNT + '/')) cometd.handle(req, res)
      else {
        res.statusCode = 404
        res.end()
      }
    })
    closeEngine = () => cometd.close()
  }
  server.requestTimeout = 0
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port: 0, host: '127.0.0.1' }, () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  const profileFile = argValue('profile-file')
  const profiler = profileFile === undefined ? null : new PhaseProfiler(profileFile)
  serveRpc({
    usage: () => ({ cpuMs: cpuMs(), rssMB: rssMB(), peakRssMB: peakRssMB(), connections: sockets.size }),
    profileStart: async () => { await profiler?.start() },
    profileStop: async () => await profiler?.stop() ?? null
  }, async () => {
    closeEngine()
    server.close()
    for (const s of sockets) s.destroy()
  }, { port, url: `http://127.0.0.1:${port}${MOUNT}` })
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
