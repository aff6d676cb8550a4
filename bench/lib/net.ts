/** Loopback helpers shared by suites that start servers as spawned processes (they need the port up front). */
import net from 'node:net'

export const HOST = '127.0.0.1'

/** A port free on 127.0.0.1 right now (the caller binds it soon after; a race is possible but rare). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen({ port: 0, host: HOST, exclusive: true }, () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => { resolve(port) })
    })
  })
}
