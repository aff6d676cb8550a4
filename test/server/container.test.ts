/**
 * Dockerfile and docker-compose.yml, checked without a Docker engine: the files parsed and cross-checked
 * (ports, user, health checks, stop signal, production-only dependencies, the bridge's config validated by the
 * real config loader), then the image's commands run directly from a fresh compile: the demo upstream entry
 * and the bridge with the compose environment, and `curl -N …/demo/ticks` shows ticks.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import YAML from 'yaml'
import { loadConfig } from '../../config/index.js'
import { waitFor } from '../helpers/wait.js'
import { openSse, request } from './fixtures/bridge.js'
import { ROOT, cleanEnv, spawnNode } from './fixtures/spawn.js'

const run = promisify(execFile)
// a full TypeScript compile plus two node processes: slow on a busy machine
t.setTimeout(240_000)
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
const compose = YAML.parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as any
const dockerignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim())

/** Instructions of the last stage, continuation lines joined. */
function finalStage (): string[] {
  const lines = dockerfile.replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
  const lastFrom = lines.map((l) => l.startsWith('FROM ')).lastIndexOf(true)
  return lines.slice(lastFrom)
}
const instr = (name: string): string[] => finalStage().filter((l) => l.startsWith(name + ' ')).map((l) => l.slice(name.length + 1).trim())
/** The exec-form JSON array of an instruction. */
const execForm = (value: string): string[] => JSON.parse(value.replace(/^CMD\s+/, '')) as string[]

const healthCommand = (): string[] => execForm(instr('HEALTHCHECK')[0]!.replace(/^.*?CMD\s+/, ''))

function envOf (service: any): Record<string, string> {
  const env = service.environment as Record<string, string | number>
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]))
}

t.test('Dockerfile - multi-stage, production deps only, non-root, health check, stop signal, start command', async (t) => {
  t.ok((dockerfile.match(/^FROM /gm) ?? []).length >= 3, 'build, deps and runtime stages')
  t.match(dockerfile, /npm ci --omit=dev/, 'production dependencies only in the copied node_modules')
  const copies = instr('COPY')
  t.ok(copies.some((c) => c.includes('--from=deps') && c.includes('node_modules')), 'node_modules come from the deps stage')
  t.notOk(copies.some((c) => c.includes('--from=build') && c.includes('node_modules')), 'no dev node_modules in the final image')
  t.same(instr('USER'), ['node'])
  t.same(instr('STOPSIGNAL'), ['SIGTERM'])
  t.same(instr('EXPOSE'), ['8080'])
  const env = instr('ENV').join(' ')
  t.match(env, /COMETD_BRIDGE_HOST=0\.0\.0\.0/)
  t.match(env, /COMETD_BRIDGE_PORT=8080/)
  const shutdown = Number(/COMETD_BRIDGE_SHUTDOWN_TIMEOUT_MS=(\d+)/.exec(env)?.[1])
  t.ok(shutdown > 0 && shutdown <= 9_000, `shutdown ${shutdown} ms fits the default 10 s grace period with a margin`)
  t.same(execForm(instr('CMD')[0]!), ['node', 'dist/server/main.js'])
  t.match(dockerfile, /cp -r server\/http\/console dist\/server\/http\/console/, 'the console files are copied next to the compiled server (as npm run build does)')
  t.same(healthCommand().slice(0, 2), ['node', '-e'], 'health check with node (no curl in slim images)')
  t.match(healthCommand()[2], /\/healthz/)
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>, scripts: Record<string, string> }
  t.ok('faye' in pkg.dependencies, 'faye is a runtime dependency (the demo)')
  t.equal(pkg.scripts.start, 'exec node dist/server/main.js', 'npm start runs the same entry as the image (exec: npm\'s SIGTERM reaches the daemon)')
  for (const dir of ['node_modules', 'dist', '.git', 'test']) t.ok(dockerignore.includes(dir), `.dockerignore excludes ${dir}`)
})

t.test('docker-compose.yml - services wired, ports consistent, bridge config valid for the real schema', async (t) => {
  const bridge = compose.services.bridge
  const upstream = compose.services['demo-upstream']
  t.ok(bridge !== undefined && upstream !== undefined, 'two services: bridge and demo-upstream')
  t.same(upstream.command, ['node', 'dist/server/demo/upstream.js'])
  t.equal(upstream.image, bridge.image, 'the same image')
  const upstreamPort = Number(envOf(upstream).DEMO_PORT)
  t.same(upstream.expose.map(String), [String(upstreamPort)])
  t.equal(bridge.depends_on['demo-upstream'].condition, 'service_healthy')
  t.match(upstream.healthcheck.test.join(' '), new RegExp(`127\\.0\\.0\\.1:${upstreamPort}/`), 'the upstream health check probes its own port')

  const env = envOf(bridge)
  const dir = mkdtempSync(join(tmpdir(), 'bridge-compose-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const configSource = bridge.configs.find((c: { target: string }) => c.target === env.COMETD_BRIDGE_CONFIG)
  t.ok(configSource, 'COMETD_BRIDGE_CONFIG points at the mounted config')
  const file = join(dir, 'bridge.yaml')
  writeFileSync(file, compose.configs[configSource.source].content as string)
  const loaded = loadConfig({ argv: [], env: { ...env, COMETD_BRIDGE_CONFIG: file }, cwd: dir })
  if (!loaded.ok) t.fail(loaded.text)
  else {
    const cfg = loaded.config
    t.equal(cfg.listen.host, '0.0.0.0', 'listens on all interfaces inside the container')
    const [hostPort, containerPort] = String(bridge.ports[0]).split(':').map(Number)
    t.equal(cfg.listen.port, containerPort, 'published port maps to the listen port')
    t.equal(hostPort, 8080, 'localhost:8080 as in the README')
    t.equal(cfg.demo, false)
    const url = new URL(cfg.sessions.demo!.url)
    t.equal(url.hostname, 'demo-upstream', 'the session reaches the upstream by its service name')
    t.equal(Number(url.port), upstreamPort)
    t.equal(url.pathname, '/cometd')
    t.ok(cfg.shutdownTimeoutMs < Number(String(bridge.stop_grace_period).replace('s', '')) * 1000, 'shutdown fits the stop grace period')
  }
})

t.test('image commands run directly: demo upstream + bridge with the compose config serve ticks', async (t) => {
  // A fresh compile of exactly what the image's build stage compiles, inside the repository (so node_modules resolve).
  const out = mkdtempSync(join(ROOT, '.tap', 'image-build-'))
  t.teardown(() => { rmSync(out, { recursive: true, force: true }) })
  // The image copies only client-core/, config/ and server/ before `tsc -p tsconfig.build.json`: the same here.
  const tsconfig = join(out, 'tsconfig.image.json')
  writeFileSync(tsconfig, JSON.stringify({
    extends: join(ROOT, 'tsconfig.build.json'),
    compilerOptions: { rootDir: ROOT, outDir: out, sourceMap: false, declaration: false },
    include: ['client-core', 'config', 'server'].map((d) => join(ROOT, d))
  }))
  const started = Date.now()
  await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', tsconfig], { cwd: ROOT, timeout: 90_000, env: cleanEnv() })
  t.comment(`tsc -p tsconfig.build.json took ${Date.now() - started} ms`)

  const upstream = spawnNode(t, join(out, 'server/demo/upstream.js'), [], { DEMO_HOST: '127.0.0.1', DEMO_PORT: '0' })
  const listening = await waitFor(() => upstream.stdoutLines.find((l) => l.msg === 'demo upstream listening'), { timeoutMs: 15_000 })
  const upstreamPort = listening.port as number

  const bridgeEnv = envOf(compose.services.bridge)
  const dir = mkdtempSync(join(tmpdir(), 'bridge-compose-run-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'bridge.yaml')
  // the only substitutions: the service name becomes 127.0.0.1 and the ports become ephemeral
  const content = (compose.configs['bridge-config'].content as string).replace('http://demo-upstream:9000/', `http://127.0.0.1:${upstreamPort}/`)
  writeFileSync(file, content)
  const bridge = spawnNode(t, join(out, 'server/main.js'), [], { ...bridgeEnv, COMETD_BRIDGE_CONFIG: file, COMETD_BRIDGE_HOST: '127.0.0.1', COMETD_BRIDGE_PORT: '0' })
  const port = await bridge.port()
  const base = `http://127.0.0.1:${port}`
  const ticks = await openSse(t, `${base}/sessions/demo/events?channel=/demo/ticks`)
  await ticks.waitEvent((e) => e.event === 'message', { count: 2, timeoutMs: 10_000 })
  t.equal(ticks.messages()[0]!.channel, '/demo/ticks')
  t.equal((await request(`${base}/readyz`)).status, 200)

  // the image's HEALTHCHECK command, as Docker would run it inside the container
  const [cmd, ...args] = healthCommand()
  t.equal(cmd, 'node')
  const probe = await run(process.execPath, args, { env: cleanEnv({ COMETD_BRIDGE_PORT: String(port) }), timeout: 10_000 }).then(() => 0, (err: { code?: number }) => err.code ?? 1)
  t.equal(probe, 0, 'HEALTHCHECK passes against the running bridge')
  const [ucmd, ...uargs] = compose.services['demo-upstream'].healthcheck.test.slice(1) as string[]
  t.equal(ucmd, 'node')
  const uprobe = await run(process.execPath, uargs.map((a) => a.replace('127.0.0.1:9000', `127.0.0.1:${upstreamPort}`)), { env: cleanEnv(), timeout: 10_000 }).then(() => 0, (err: { code?: number }) => err.code ?? 1)
  t.equal(uprobe, 0, 'the demo-upstream health check passes')

  const stopStarted = Date.now()
  bridge.proc.kill('SIGTERM')
  upstream.proc.kill('SIGTERM')
  t.same(await bridge.exited, { code: 0, signal: null }, 'bridge exits 0 on SIGTERM')
  t.same(await upstream.exited, { code: 0, signal: null }, 'demo upstream exits 0 on SIGTERM')
  t.comment(`both stopped within ${Date.now() - stopStarted} ms`)
  await ticks.done
})
