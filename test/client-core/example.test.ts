/** examples/chat.ts (the aiocometd chat example, ported) against a local faye server. */
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startFaye } from '../helpers/faye.js'
import { Client } from '../../client-core/index.js'
import { collector } from '../helpers/wait.js'
import type { Message } from '../../client-core/index.js'

t.test('the chat example joins, shows what others say, sends what is typed, and exits', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const other = new Client(faye.url)
  t.teardown(async () => await other.close())
  await other.open()
  const heard = collector<Message>()
  await other.subscribe('/chat/demo', heard.push)

  const script = fileURLToPath(new URL('../../examples/chat.ts', import.meta.url))
  const loader = fileURLToPath(new URL('../../node_modules/@tapjs/typescript/dist/esm/import.mjs', import.meta.url))
  const child = spawn(process.execPath, ['--import', loader, script, faye.url, 'Ada'], { stdio: ['pipe', 'pipe', 'pipe'] })
  const kill = setTimeout(() => child.kill('SIGKILL'), 60_000)
  t.teardown(() => { clearTimeout(kill); child.kill('SIGKILL') })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })

  const join = await heard.waitForMatch((m) => (m.data as { membership?: string }).membership === 'join', { timeoutMs: 30_000 })
  t.same(join.data, { user: 'Ada', membership: 'join', chat: 'Ada has joined' })
  await other.publish('/chat/demo', { user: 'Bob', chat: 'hi Ada' })
  child.stdin.write('hello Bob\n')
  await heard.waitForMatch((m) => (m.data as { chat?: string }).chat === 'hello Bob', { timeoutMs: 10_000 })
  child.stdin.end()
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  t.equal(code, 0, 'exits by itself once input ends')
  t.match(out, /Bob: hi Ada/, 'prints what others say')
})
