/** Names of V8 profile call frames, shared by the CPU and the allocation profile readers. */
import path from 'node:path'

export interface CallFrame { functionName: string, url: string, lineNumber: number, columnNumber: number }

export function shortUrl (url: string): string {
  if (url === '') return ''
  const clean = url.replace(/^file:\/\//, '')
  const nm = clean.lastIndexOf('/node_modules/')
  if (nm >= 0) return clean.slice(nm + '/node_modules/'.length)
  const dist = clean.indexOf('/dist/')
  if (dist >= 0) return clean.slice(dist + '/dist/'.length)
  return clean.startsWith('node:') ? clean : path.basename(clean)
}

/** The area of a frame with a script: a client-core file, a node_modules package, a node internal module. */
export function codeArea (frame: CallFrame): string {
  const u = shortUrl(frame.url)
  if (u.startsWith('node:')) return 'node:' + (u.split('/')[1] ?? u)
  if (u.startsWith('client-core/')) return u.replace(/\.js$/, '.ts')
  if (frame.url.includes('/node_modules/')) {
    const parts = u.split('/')
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!
  }
  return u
}

export function label (frame: CallFrame): string {
  const fn = frame.functionName === '' ? '(anonymous)' : frame.functionName
  const u = shortUrl(frame.url)
  return u === '' ? fn : `${u}:${frame.lineNumber + 1} ${fn}`
}
