/**
 * The forwarding half of the recording/fault fronts of the client-core tests: a request whose body was already read
 * goes on to the real server, and its answer is piped back (`onAnswer` runs when the status line arrived).
 */
import http from 'node:http'

export function forwardRequest (upstream: URL, req: http.IncomingMessage, body: Buffer, res: http.ServerResponse, onAnswer?: () => void): void {
  const headers = { ...req.headers, host: upstream.host, 'content-length': String(body.length) }
  const out = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (answer) => {
    onAnswer?.()
    res.writeHead(answer.statusCode ?? 502, answer.headers)
    answer.pipe(res)
  })
  out.on('error', () => res.destroy())
  out.end(body)
}
