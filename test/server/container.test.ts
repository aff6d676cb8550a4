/**
 * Dockerfile and docker-compose.yml, checked without a Docker engine (none on these machines):
 * - the rules, linted: Node 24, production dependencies only, tini as PID 1, a non-root user with read-only
 *   application files, a /data volume, no environment default that would override a mounted config file,
 *   compose publishing on 127.0.0.1 only (with the comment on tokens), read-only containers;
 * - the configuration compose gives the bridge, validated by the real loader, and a mounted file winning over
 *   the image's defaults;
 * - the image's layout, built in a temporary folder from the Dockerfile's own COPY lines (the build stage's RUN
 *   lines run as written: compile and `npm pack`; `npm ci --omit=dev` for the dependencies), then run the way the
 *   image runs it: as an unprivileged user when this test is root, the demo upstream and the bridge with the
 *   compose configuration serve ticks, the HEALTHCHECK command passes, SIGTERM stops both, nothing was written
 *   outside the data folder.
 */
import { execFile, spawnSync } from 'node:child_process'
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import YAML from 'yaml'
import { ENV_OPTIONS, loadConfig } from '../../config/index.js'
import { waitFor } from '../helpers/wait.js'
import { openSse, request } from './fixtures/bridge.js'
import { buildLayout, envOf, execForm, parseCopy, parseDockerfile, readDockerignore } from './fixtures/dockerfile.js'
import type { RunStandIn, Stage } from './fixtures/dockerfile.js'
import { ROOT, cleanEnv, spawnProgram } from './fixtures/spawn.js'

const run = promisify(execFile)
// a compile, npm pack, npm ci of the production dependencies and two node processes: slow on a busy machine
t.setTimeout(300_000)

const { args: buildArgs, stages } = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
const composeText = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')
const compose = YAML.parse(composeText) as any
const ignored = readDockerignore(join(ROOT, '.dockerignore'))
const final = stages.at(-1)!
const instr = (stage: Stage, op: string): string[] => stage.instructions.filter((i) => i.op === op).map((i) => i.args)
const imageEnv = envOf(final)
const healthCommand = execForm(instr(final, 'HEALTHCHECK')[0]!)
/** Settings a config file also sets: the image must not fix them in its environment (the environment would win). */
const FILE_SETTINGS = ENV_OPTIONS.map((o) => o.name)

function stringEnv (service: any): Record<string, string> {
  return Object.fromEntries(Object.entries(service.environment as Record<string, unknown>).map(([k, v]) => [k, String(v)]))
}

/** Stands for the image's environment: COMETD_BRIDGE_DEFAULTS points into the folder standing for /app. */
function imageEnvAt (app: string): Record<string, string> {
  return { ...imageEnv, COMETD_BRIDGE_DEFAULTS: imageEnv.COMETD_BRIDGE_DEFAULTS!.replace(/^\/app\//, `${app}/`) }
}

t.test('Dockerfile - Node 24, production deps, tini as PID 1, non-root, read-only app files, /data, no config-overriding env', async (t) => {
  t.equal(buildArgs.NODE_VERSION, '24', 'Node 24 LTS')
  t.ok(stages.length >= 3 && stages.every((s) => s.from === 'node:${NODE_VERSION}-bookworm-slim'), 'build, deps and runtime stages, all on node:24 slim')
  const deps = stages.find((s) => instr(s, 'RUN').some((r) => r.includes('npm ci --omit=dev')))
  t.ok(deps, 'a stage installs production dependencies only')
  const copies = instr(final, 'COPY').map(parseCopy)
  t.ok(copies.some((c) => c.from === deps?.name), 'the final stage takes the application from it')
  t.notOk(copies.some((c) => c.from !== undefined && c.from !== deps?.name), 'nothing else from the build stage (no dev dependencies)')
  t.ok(copies.every((c) => c.chown === 'root:root'), 'application files owned by root: read-only for the user')
  t.same(instr(final, 'USER'), ['node'], 'runs as the unprivileged node user')
  t.same(execForm(instr(final, 'ENTRYPOINT')[0]!), ['/usr/bin/tini', '--'], 'tini is PID 1: reaps children, passes signals on')
  t.ok(instr(final, 'RUN').some((r) => /apt-get install .*\btini\b/.test(r)), 'tini is installed in the final stage')
  const cmd = execForm(instr(final, 'CMD')[0]!)
  t.same(cmd, ['node', '--max-semi-space-size=2', 'dist/server/main.js'], 'the daemon with a young generation of 2 MB semi-spaces (docs/BENCHMARKS.md, streaming memory)')
  t.same(instr(final, 'STOPSIGNAL'), ['SIGTERM'])
  t.same(instr(final, 'EXPOSE'), ['8080'])
  t.match(instr(final, 'VOLUME').join(' '), /"\/data"/, '/data is a volume (the only place written)')
  t.ok(instr(final, 'RUN').some((r) => /chown node:node \/data/.test(r)), '/data belongs to the user')
  t.same(Object.keys(imageEnv).sort(), ['COMETD_BRIDGE_DEFAULTS', 'NODE_ENV'], 'no COMETD_BRIDGE_* setting in the image environment …')
  t.notOk(Object.keys(imageEnv).some((k) => FILE_SETTINGS.includes(k)), '… that a mounted config file could not override')
  t.same(healthCommand, ['node', 'dist/server/ops/healthcheck.js'], 'the health check reads the same configuration')
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>, scripts: Record<string, string> }
  t.ok('faye' in pkg.dependencies, 'faye is a runtime dependency (the demo)')
  t.equal(pkg.scripts.start, `exec ${cmd.join(' ')}`, 'npm start runs the image\'s entry, same flags (exec: npm\'s SIGTERM reaches the daemon)')
  for (const dir of ['node_modules', 'dist', '.git', 'test']) t.ok(ignored.includes(dir), `.dockerignore excludes ${dir}`)
})

t.test('docker-compose.yml - loopback only, read-only, a data volume, the bridge config valid and winning over the image', async (t) => {
  const bridge = compose.services.bridge
  const upstream = compose.services['demo-upstream']
  t.ok(bridge !== undefined && upstream !== undefined, 'two services: bridge and demo-upstream')
  t.same(upstream.command, ['node', 'dist/server/demo/upstream.js'])
  t.equal(upstream.image, bridge.image, 'the same image')
  const upstreamPort = Number(stringEnv(upstream).DEMO_PORT)
  t.same(upstream.expose.map(String), [String(upstreamPort)])
  t.equal(bridge.depends_on['demo-upstream'].condition, 'service_healthy')
  t.match(upstream.healthcheck.test.join(' '), new RegExp(`127\\.0\\.0\\.1:${upstreamPort}/`), 'the upstream health check probes its own port')
  t.ok(bridge.ports.every((p: string) => p.startsWith('127.0.0.1:')), 'published on this machine\'s loopback only')
  t.match(composeText, /#.*COMETD_BRIDGE_TOKEN[^\n]*\n(?:\s*#[^\n]*\n)*\s*- "127\.0\.0\.1:8080:8080"/, 'a comment above the ports says how to expose it: with tokens')
  t.equal(bridge.read_only, true)
  t.equal(upstream.read_only, true)
  t.ok(bridge.volumes.some((v: string) => v.endsWith(':/data')), 'a volume for /data')
  const env = stringEnv(bridge)
  t.notOk(Object.keys(env).some((k) => ['COMETD_BRIDGE_HOST', 'COMETD_BRIDGE_PORT', 'COMETD_BRIDGE_DATA_DIR', 'COMETD_BRIDGE_SHUTDOWN_TIMEOUT_MS'].includes(k)),
    'compose leaves listen, dataDir and shutdownTimeoutMs to the image defaults and the config file')

  const dir = mkdtempSync(join(tmpdir(), 'bridge-compose-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const configSource = bridge.configs.find((c: { target: string }) => c.target === env.COMETD_BRIDGE_CONFIG)
  t.ok(configSource, 'COMETD_BRIDGE_CONFIG points at the mounted config')
  const file = join(dir, 'bridge.yaml')
  writeFileSync(file, compose.configs[configSource.source].content as string)
  const containerEnv = { ...imageEnvAt(ROOT.replace(/\/$/, '')), ...env, COMETD_BRIDGE_CONFIG: file }
  const loaded = loadConfig({ argv: [], env: containerEnv, cwd: dir })
  if (!loaded.ok) throw new Error(loaded.text)
  const cfg = loaded.config
  t.same([cfg.listen.host, cfg.listen.port, cfg.dataDir], ['0.0.0.0', 8080, '/data'], 'the image defaults: 0.0.0.0:8080, /data')
  const [, hostPort, containerPort] = String(bridge.ports[0]).split(':').map(Number)
  t.equal(cfg.listen.port, containerPort, 'the published port maps to the listen port')
  t.equal(hostPort, 8080, 'localhost:8080 as in the README')
  t.equal(cfg.demo, false)
  const url = new URL(cfg.sessions.demo!.url)
  t.same([url.hostname, Number(url.port), url.pathname], ['demo-upstream', upstreamPort, '/cometd'], 'the session reaches the upstream by its service name')
  t.same(cfg.sessions.demo!.subscribe, ['/demo/ticks'], 'ticks held: the README\'s resume example has no gap')
  t.ok(cfg.shutdownTimeoutMs < Number(String(bridge.stop_grace_period).replace('s', '')) * 1000, 'shutdown fits the stop grace period')

  const mine = join(dir, 'mine.yaml')
  writeFileSync(mine, 'listen: { port: 9000 }\ndataDir: /srv/bridge\nshutdownTimeoutMs: 3000\nauth: { allowUnauthenticated: true }\n')
  const mounted = loadConfig({ argv: [], env: { ...imageEnvAt(ROOT.replace(/\/$/, '')), COMETD_BRIDGE_CONFIG: mine }, cwd: dir })
  if (!mounted.ok) throw new Error(mounted.text)
  t.same([mounted.config.listen.host, mounted.config.listen.port, mounted.config.dataDir, mounted.config.shutdownTimeoutMs], ['0.0.0.0', 9000, '/srv/bridge', 3000],
    'a mounted config file wins over the image\'s defaults; what it leaves out keeps them')
})

/** Files below `dir` (not following the node_modules link), for a before/after comparison. */
function listFiles (dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = `${prefix}${e.name}`
    return e.isDirectory() ? [path + '/', ...listFiles(join(dir, e.name), path + '/')] : [path]
  })
}

t.test('the image layout, from the Dockerfile\'s COPY lines and npm pack, runs as the image runs it', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'bridge-image-'))
  t.teardown(() => { rmSync(work, { recursive: true, force: true }) })
  chmodSync(work, 0o755)
  // npm as a user's shell runs it: none of npm's own variables from `npm test`
  const npmEnv = cleanEnv()
  for (const k of Object.keys(npmEnv)) if (/^npm_/i.test(k)) delete npmEnv[k]
  const sh = (command: string): RunStandIn => async (cwd) => {
    const started = Date.now()
    await run('sh', ['-c', command], { cwd, env: npmEnv, timeout: 180_000, maxBuffer: 16 * 1024 * 1024 })
    t.comment(`${command.slice(0, 60)}… took ${Date.now() - started} ms`)
  }
  const roots = await buildLayout(stages, {
    context: ROOT,
    ignored,
    work,
    runs: (stage, line) => {
      if (stage === final) return 'skip' // apt-get (tini) and mkdir /data: checked by the lint above
      if (line.startsWith('npm ci --ignore-scripts')) return async (cwd) => { symlinkSync(join(ROOT, 'node_modules'), join(cwd, 'node_modules')) }
      if (line.startsWith('npm ci --omit=dev')) return sh('npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline && rm package-lock.json')
      if (/(^|\s)\//.test(line)) throw new Error(`a build RUN line with an absolute path cannot run here: ${line}`)
      return sh(line)
    }
  })
  const app = join(roots.get(final.name)!, 'app')
  t.same(readdirSync(app).sort(), ['LICENSE', 'README.md', 'container', 'dist', 'node_modules', 'package.json'], 'the image\'s /app: the package, its dependencies, the defaults')
  t.notOk(readdirSync(join(app, 'node_modules')).includes('typescript'), 'no dev dependencies')
  const data = join(work, 'data')
  mkdirSync(data)
  // as the image's user: when this test is root, an unprivileged uid that may write the data folder only
  // (and only when that uid can run this node binary and read the layout: a private checkout or TMPDIR hides them)
  const nobody = { uid: 65534, gid: 65534 }
  const user = process.getuid?.() === 0 && spawnSync(process.execPath, ['-e', 'require("./package.json")'], { ...nobody, cwd: app, stdio: 'ignore' }).status === 0 ? nobody : undefined
  if (user !== undefined) chownSync(data, user.uid, user.gid)
  t.comment(user !== undefined ? 'running as uid 65534: the app files are root\'s, read-only' : `running as this user (uid ${process.getuid?.() ?? '?'}): uid 65534 cannot be used here`)
  const before = listFiles(app)

  const base = { ...cleanEnv(), ...imageEnvAt(app) }
  const upstream = spawnProgram(t, process.execPath, ['dist/server/demo/upstream.js'], { cwd: app, env: { ...base, DEMO_HOST: '127.0.0.1', DEMO_PORT: '0' }, ...(user !== undefined ? { user } : {}) })
  const listening = await waitFor(() => upstream.stdoutLines.find((l) => l.msg === 'demo upstream listening'), { timeoutMs: 15_000 })
  const config = join(work, 'bridge.yaml')
  // the only substitutions: the service name becomes 127.0.0.1 and the ports become ephemeral
  writeFileSync(config, (compose.configs['bridge-config'].content as string).replace('http://demo-upstream:9000/', `http://127.0.0.1:${listening.port as number}/`))
  chmodSync(config, 0o644)
  const env = { ...base, ...stringEnv(compose.services.bridge), COMETD_BRIDGE_CONFIG: config, COMETD_BRIDGE_HOST: '127.0.0.1', COMETD_BRIDGE_PORT: '0', COMETD_BRIDGE_DATA_DIR: data }
  const bridge = spawnProgram(t, process.execPath, execForm(instr(final, 'CMD')[0]!).slice(1), { cwd: app, env, ...(user !== undefined ? { user } : {}) })
  const port = await bridge.port()
  const ticks = await openSse(t, `http://127.0.0.1:${port}/sessions/demo/events?channel=/demo/ticks`)
  await ticks.waitEvent((e) => e.event === 'message', { count: 2, timeoutMs: 10_000 })
  t.equal(ticks.messages()[0]!.channel, '/demo/ticks')
  t.equal((await request(`http://127.0.0.1:${port}/readyz`)).status, 200)

  const probe = async (extra: Record<string, string>): Promise<number> =>
    await run(process.execPath, healthCommand.slice(1), { cwd: app, env: { ...env, ...extra }, timeout: 10_000 }).then(() => 0, (err: { code?: number }) => err.code ?? 1)
  t.equal(await probe({ COMETD_BRIDGE_PORT: String(port) }), 0, 'the HEALTHCHECK command passes against the running bridge')
  t.equal(await probe({ COMETD_BRIDGE_PORT: '1' }), 1, 'and fails where nothing listens')
  const [ucmd, ...uargs] = compose.services['demo-upstream'].healthcheck.test.slice(1) as string[]
  t.equal(ucmd, 'node')
  const uprobe = await run(process.execPath, uargs.map((a) => a.replace('127.0.0.1:9000', `127.0.0.1:${listening.port as number}`)), { env: cleanEnv(), timeout: 10_000 }).then(() => 0, (err: { code?: number }) => err.code ?? 1)
  t.equal(uprobe, 0, 'the demo-upstream health check passes')

  const stopStarted = Date.now()
  bridge.proc.kill('SIGTERM')
  upstream.proc.kill('SIGTERM')
  t.same(await bridge.exited, { code: 0, signal: null }, 'bridge exits 0 on SIGTERM')
  t.same(await upstream.exited, { code: 0, signal: null }, 'demo upstream exits 0 on SIGTERM')
  t.comment(`both stopped within ${Date.now() - stopStarted} ms`)
  await ticks.done
  t.same(listFiles(app), before, 'nothing written in /app (a read-only root filesystem is fine)')
})
