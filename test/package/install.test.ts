/**
 * The package as a user gets it: `npm pack`, then `npm install ./cometd-bridge-x.y.z.tgz` in an empty folder.
 * The pack takes the repository's dist/ as `npm install`/`npm ci` built it (--ignore-scripts: rebuilding dist/
 * here would rewrite files that other tests run at the same time; container.test.ts builds from the sources). There, `npx cometd-bridge` prints its version, help and effective config and runs the embedded
 * demo (ticks over SSE, stopped by SIGTERM to npx with nothing left behind), and
 * `import { Client } from 'cometd-bridge/client'` works from JavaScript and type-checks from TypeScript.
 *
 * npm runs for real here (dependencies come from npm's cache, or the registry): bounded generously.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { openSse } from '../server/fixtures/bridge.js'
import { ROOT, spawnProgram } from '../server/fixtures/spawn.js'
import { descendants, isAlive } from '../helpers/proc-tree.js'
import { waitFor } from '../helpers/wait.js'

const run = promisify(execFile)
t.setTimeout(420_000)

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string, version: string }

/** The environment of a user's shell: none of npm's own variables (npm test sets them), none of ours or tap's. */
function userEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_|COMETD_BRIDGE_|TAP|_TAPJS|NODE_OPTIONS$|INIT_CWD$)/i.test(k)) continue
    env[k] = v
  }
  return { ...env, ...extra }
}

async function npm (args: string[], cwd: string, timeoutMs: number): Promise<string> {
  const started = Date.now()
  const { stdout } = await run('npm', args, { cwd, env: userEnv(), timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 })
  t.comment(`npm ${args[0]} took ${Date.now() - started} ms`)
  return stdout
}

const work = mkdtempSync(join(tmpdir(), 'bridge-package-'))
t.teardown(() => { rmSync(work, { recursive: true, force: true }) })
const app = join(work, 'app')

t.before(async () => {
  if (!existsSync(join(ROOT, 'dist/server/main.js'))) throw new Error('dist/ is missing: npm install (or npm run build) makes it')
  const packed = JSON.parse(await npm(['pack', '--json', '--ignore-scripts', '--pack-destination', work], ROOT, 120_000)) as Array<{ filename: string, files: Array<{ path: string }> }>
  const tarball = join(work, packed[0]!.filename)
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'uses-cometd-bridge', private: true, type: 'module' }))
  await npm(['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], app, 240_000)
})

/** npm_config_yes=false: npx never fetches a package of that name from the registry (it must be the installed one). */
const NPX_ENV = { npm_config_yes: 'false' }

async function npx (args: string[]): Promise<{ stdout: string, stderr: string }> {
  return await run('npx', ['cometd-bridge', ...args], { cwd: app, env: userEnv(NPX_ENV), timeout: 60_000 })
}

t.test('package - what the tarball holds', async (t) => {
  const root = join(app, 'node_modules', pkg.name)
  const top = readdirSync(root).sort()
  t.same(top, ['LICENSE', 'README.md', 'dist', 'docs', 'package.json'], 'LICENSE, README, docs, dist and package.json only')
  t.match(readFileSync(join(root, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/)
  t.same(readdirSync(join(root, 'dist')).sort(), ['client-core', 'config', 'server'], 'no tests, benchmarks or examples')
  t.ok(readdirSync(join(root, 'dist/server/http/console')).includes('app.js'), 'the console files')
})

t.test('package - npx cometd-bridge --version, --help, --print-config', async (t) => {
  t.equal((await npx(['--version'])).stdout, `${pkg.name} ${pkg.version}\n`)
  const help = (await npx(['--help'])).stdout
  t.match(help, /^Usage: cometd-bridge \[options\]/)
  t.match(help, /--version/)
  const printed = JSON.parse((await npx(['--print-config', '--port', '9123'])).stdout) as { listen: { host: string, port: number } }
  t.same(printed.listen, { host: '127.0.0.1', port: 9123 })
})

t.test('package - npx cometd-bridge runs the demo; the client library reaches its upstream; SIGTERM stops it all', async (t) => {
  const child = spawnProgram(t, 'npx', ['cometd-bridge'], { cwd: app, env: userEnv({ ...NPX_ENV, COMETD_BRIDGE_PORT: '0' }) })
  const port = await child.port(60_000)
  const base = `http://127.0.0.1:${port}`
  const sse = await openSse(t, `${base}/sessions/demo/events?channel=/demo/ticks`)
  await sse.waitEvent((e) => e.event === 'message', { timeoutMs: 15_000 })
  t.equal(sse.messages()[0]!.channel, '/demo/ticks', 'ticks over SSE from the installed daemon')
  t.match(child.stderr(), `Open the console in a browser: ${base}/\n`, 'the banner names the console')

  // the library from the package, as a user's ES module imports it, against the demo's Faye upstream
  const upstream = child.stdoutLines.find((l) => l.msg === 'embedded demo upstream started')?.url as string
  writeFileSync(join(app, 'tick.mjs'), [
    "import { Client } from 'cometd-bridge/client'",
    'const client = new Client(process.argv[2])',
    'await client.open()',
    "const tick = await new Promise((resolve) => { void client.subscribe('/demo/ticks', resolve) })",
    'console.log(JSON.stringify(tick.data))',
    'await client.close()',
    ''
  ].join('\n'))
  const tick = JSON.parse((await run(process.execPath, ['tick.mjs', upstream], { cwd: app, env: userEnv(), timeout: 30_000 })).stdout) as { text: string }
  t.match(tick.text, /^tick \d+$/, 'cometd-bridge/client received a tick')

  const tree = descendants(child.proc.pid!)
  t.ok(tree.length >= 1, `npx runs the daemon as a child (${tree.length} process(es) below it)`)
  t.teardown(() => { for (const pid of tree) if (isAlive(pid)) process.kill(pid, 'SIGKILL') })
  // npx passes SIGTERM to its `sh -c`, which leaves the daemon behind: the daemon sees its launcher gone and stops
  const stopped = Date.now()
  child.proc.kill('SIGTERM')
  await child.exited
  await waitFor(() => tree.every((pid) => !isAlive(pid)), { timeoutMs: 15_000, message: () => `processes left: ${tree.filter(isAlive).join(', ')}` })
  t.comment(`SIGTERM to npx → every process gone in ${Date.now() - stopped} ms`)
  t.pass('nothing left running')
  await sse.done
})

t.test('package - cometd-bridge/client has types', async (t) => {
  writeFileSync(join(app, 'check.ts'), [
    "import { Client, ServerError, type Message } from 'cometd-bridge/client'",
    "const client: Client = new Client('http://127.0.0.1:1/cometd', { connectionTypes: ['websocket'] })",
    "const state: string = client.state",
    "const onMessage = (m: Message): string => m.channel",
    "// @ts-expect-error the URL must be a string",
    'new Client(42)',
    'export { state, onMessage, ServerError }',
    ''
  ].join('\n'))
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc')
  const args = ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022',
    '--typeRoots', join(ROOT, 'node_modules/@types'), '--types', 'node', 'check.ts']
  const result = await run(process.execPath, [tsc, ...args], { cwd: app, env: userEnv(), timeout: 120_000 }).then(
    () => ({ code: 0, out: '' }), (err: { code?: number, stdout?: string }) => ({ code: err.code ?? 1, out: err.stdout ?? '' }))
  t.same(result, { code: 0, out: '' }, 'type-checks (and a wrong argument type is an error: the @ts-expect-error is used)')
})
