/**
 * The browser console: `GET /` and `GET /console/:file` serve the small static page in server/http/console/ (copied
 * to dist/server/http/console/ by `npm run build`), behind the same auth as everything else (`console: true`).
 *
 * A browser navigation carries no Authorization header: the 401 answer to one (Accept: text/html) is the login
 * page, whose script fetches the console's files with the token typed into it and keeps the token in memory.
 * A strict Content-Security-Policy allows only the page's own files, blob: URLs of them, and the login page's
 * inline script and style by their hashes.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { ErrorCode, HttpError } from '../../errors.js'
import type { AuthHooks } from '../auth.js'

export const CONSOLE_DIR = fileURLToPath(new URL('../console/', import.meta.url))

interface Asset { type: string, body: Buffer }

const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'login.html': 'text/html; charset=utf-8'
}

export interface ConsoleAssets {
  assets: Map<string, Asset>
  csp: string
  /** why the console is unavailable (files missing), or null */
  problem: string | null
}

function hashesOf (html: string, tag: 'script' | 'style'): string[] {
  const out: string[] = []
  const re = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g')
  for (const m of html.matchAll(re)) out.push(`'sha256-${createHash('sha256').update(m[1]!, 'utf8').digest('base64')}'`)
  return out
}

export function loadConsoleAssets (dir: string = CONSOLE_DIR): ConsoleAssets {
  const assets = new Map<string, Asset>()
  let problem: string | null = null
  for (const [name, type] of Object.entries(FILES)) {
    try {
      assets.set(name, { type, body: readFileSync(`${dir}${name}`) })
    } catch (err) {
      problem = `console files missing in ${dir} (${(err as Error).message}); run npm run build`
    }
  }
  const login = assets.get('login.html')?.body.toString('utf8') ?? ''
  const csp = [
    "default-src 'none'",
    `script-src 'self' blob: ${hashesOf(login, 'script').join(' ')}`.trim(),
    `style-src 'self' blob: ${hashesOf(login, 'style').join(' ')}`.trim(),
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'"
  ].join('; ')
  return { assets, csp, problem }
}

function securityHeaders (reply: FastifyReply, csp: string): FastifyReply {
  return reply
    .header('Content-Security-Policy', csp)
    .header('X-Content-Type-Options', 'nosniff')
    .header('X-Frame-Options', 'DENY')
    .header('Referrer-Policy', 'no-referrer')
    .header('Cache-Control', 'no-store')
}

function wantsHtml (req: FastifyRequest): boolean {
  const accept = req.headers.accept
  return req.method === 'GET' && typeof accept === 'string' && accept.includes('text/html')
}

/** For auth.ts: a browser navigation refused with 401 gets the login page, a 403 a short HTML page. */
export function consoleAuthHooks (console: ConsoleAssets): AuthHooks {
  return {
    htmlRefusal: (req, reply, err) => {
      if (!wantsHtml(req) || (err.statusCode !== 401 && err.statusCode !== 403)) return false
      const login = console.assets.get('login.html')
      for (const [name, value] of Object.entries(err.headers)) reply.header(name, value)
      securityHeaders(reply, console.csp).code(err.statusCode).type('text/html; charset=utf-8')
      if (err.statusCode === 401 && login !== undefined) {
        void reply.send(login.body)
      } else {
        const text = err.message.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`)
        void reply.send(`<!doctype html><meta charset="utf-8"><title>${err.statusCode}</title><h1>${err.statusCode}</h1><p>${text}</p>`)
      }
      return true
    }
  }
}

export const consoleRoutes: FastifyPluginAsync<{ assets: ConsoleAssets }> = async (app, { assets: console }) => {
  if (console.problem !== null) app.log.warn(console.problem)
  const serve = (reply: FastifyReply, name: string): FastifyReply => {
    const asset = console.assets.get(name)
    if (asset === undefined) throw new HttpError(404, ErrorCode.NOT_FOUND, `The console file ${name} is missing (run npm run build)`)
    return securityHeaders(reply, console.csp).type(asset.type).send(asset.body)
  }

  const config = { access: 'console' } as const
  app.get('/', { config, schema: { summary: 'The browser console', tags: ['console'] } }, async (_req, reply) => serve(reply, 'index.html'))

  app.get<{ Params: { file: string } }>('/console/:file', { config, schema: { summary: 'The console\'s files and its config.json', tags: ['console'] } }, async (req, reply) => {
    const file = req.params.file
    if (file === 'config.json') {
      const p = req.principal
      const access = app.access
      return securityHeaders(reply, console.csp).send({
        authRequired: access.required,
        allowQueryToken: access.config.allowQueryToken,
        dynamicSessions: app.bridge.config.dynamicSessions?.enabled ?? false,
        principal: p?.name ?? 'anonymous',
        subscribe: p?.subscribe ?? [],
        publish: p?.publish ?? []
      })
    }
    if (file !== 'app.js' && file !== 'app.css') throw new HttpError(404, ErrorCode.NOT_FOUND, `No console file ${JSON.stringify(file.slice(0, 100))}`)
    return serve(reply, file)
  })
}
