/**
 * The aiocometd chat example, ported: join a room, print what others say, send what you type.
 *
 *   node dist/examples/chat.js [URL] [NICKNAME]
 *
 * Without a URL it starts a Faye server in this process (127.0.0.1, ephemeral port) so that it runs anywhere;
 * open a second terminal with the printed URL to chat with yourself. End input (Ctrl-D) to leave.
 */
import http from 'node:http'
import { createRequire } from 'node:module'
import { createInterface } from 'node:readline'
import { Client } from '../client-core/index.js'

async function localFaye (): Promise<{ url: string, close: () => void }> {
  const require = createRequire(import.meta.url)
  const faye = require('faye') as { NodeAdapter: new (o: object) => { attach: (s: http.Server) => void } }
  const server = http.createServer()
  new faye.NodeAdapter({ mount: '/cometd', timeout: 30 }).attach(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return { url: `http://127.0.0.1:${port}/cometd`, close: () => { server.closeAllConnections(); server.close() } }
}

async function chat (url: string, nickname: string): Promise<void> {
  const client = new Client(url)
  await client.open()
  try {
    // subscribe to channels to receive chat messages and notifications about new members
    await client.subscribe('/chat/demo')
    await client.subscribe('/members/demo')
    // send initial message
    await client.publish('/chat/demo', { user: nickname, membership: 'join', chat: `${nickname} has joined` })
    // add the user to the chat room's members (a CometD server answers on /members/demo; Faye just accepts it)
    await client.publish('/service/members', { user: nickname, room: '/chat/demo' })

    const input = createInterface({ input: process.stdin })
    const sending = new Set<Promise<unknown>>()
    input.on('line', (line) => {
      if (line.trim() === '') return
      const sent = client.publish('/chat/demo', { user: nickname, chat: line }).catch((error: unknown) => {
        console.error(`could not send: ${(error as Error).message}`)
      }).finally(() => sending.delete(sent))
      sending.add(sent)
    })
    // leave once what was typed has been sent
    input.on('close', () => { void Promise.all(sending).then(async () => await client.close()) })

    // listen for incoming messages until the client is closed
    for await (const message of client) {
      if (message.channel === '/chat/demo') {
        const data = message.data as { user?: string, chat?: string }
        console.log(`${data.user ?? '?'}: ${data.chat ?? ''}`)
      } else if (message.channel === '/members/demo') {
        console.log(`members: ${JSON.stringify(message.data)}`)
      }
    }
  } finally {
    await client.close()
  }
}

const [urlArg, nickArg] = process.argv.slice(2)
const local = urlArg === undefined ? await localFaye() : null
const url = urlArg ?? local!.url
if (local !== null) console.log(`started a local Faye server: ${url}`)
console.log(`connecting to ${url} — type a line to chat, Ctrl-D to leave`)
try {
  await chat(url, nickArg ?? 'John')
} finally {
  local?.close()
}
