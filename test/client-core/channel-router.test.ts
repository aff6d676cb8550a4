/**
 * The allocation-free channel helpers against straightforward reference implementations (the code they replaced):
 * name validation, pattern matching, ChannelRouter (which subscriptions an event reaches, with its bounded cache)
 * and the payload check of the codec.
 */
import t from 'tap'
import fc from 'fast-check'
import { ChannelRouter, channelMatches, channelProblem, matchingPatterns } from '../../client-core/protocol/channel.js'
import { parsePayload } from '../../client-core/protocol/codec.js'
import { TransportError } from '../../client-core/errors.js'
import type { Message } from '../../client-core/protocol/message.js'

const SEED = 20_261_127
const RUNS = 2000

// ---------------------------------------------------------------- reference implementations (the previous code)

const SEGMENT = /^[A-Za-z0-9!#$()+\-.@_{}~ ]+$/

function referenceProblem (channel: unknown, allowWildcard: boolean): string | null {
  if (typeof channel !== 'string') return 'a channel name must be a string'
  if (channel.length < 2 || channel[0] !== '/') return 'a channel name starts with "/" and has at least one segment'
  if (channel.length > 1024) return 'a channel name is at most 1024 characters'
  const segments = channel.slice(1).split('/')
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!
    const last = i === segments.length - 1
    if (segment === '*' || segment === '**') {
      if (!allowWildcard) return 'wildcards are allowed only in subscriptions'
      if (!last) return 'a wildcard must be the last segment'
      continue
    }
    if (segment === '') return 'a channel name has no empty segment'
    if (!SEGMENT.test(segment)) return `invalid characters in segment "${segment}"`
  }
  return null
}

function referenceMatches (pattern: string, channel: string): boolean {
  if (pattern === channel) return true
  if (pattern.endsWith('/**')) {
    const prefix = pattern.slice(0, -2)
    return channel.startsWith(prefix) && channel.length > prefix.length
  }
  if (pattern.endsWith('/*')) {
    const prefix = pattern.slice(0, -1)
    return channel.startsWith(prefix) && channel.length > prefix.length && !channel.includes('/', prefix.length)
  }
  return false
}

/** What Client.onEvent did: look up every pattern of matchingPatterns(channel), each pattern once. */
function referenceRoute<T> (routes: Map<string, T>, channel: string): T[] {
  const out: T[] = []
  for (const pattern of new Set(matchingPatterns(channel))) {
    const value = routes.get(pattern)
    if (value !== undefined) out.push(value)
  }
  return out
}

// ---------------------------------------------------------------- generators

const piece = fc.constantFrom('a', 'b', 'bc', '*', '**', '', 'Z9', 'a b', '%', 'é', '.~', '***', 'a*')
const pathLike = fc.array(piece, { minLength: 0, maxLength: 5 }).map((segments) => '/' + segments.join('/'))
const anyName = fc.oneof(
  pathLike,
  pathLike.map((p) => p.slice(1)), // no leading "/"
  fc.string({ maxLength: 12 }),
  fc.constantFrom('/', '//', '/*', '/**', '/' + 'x'.repeat(1100), '/a/' + 'y'.repeat(1030))
)
const validSegment = fc.constantFrom('a', 'b', 'c', 'd1')
const concreteChannel = fc.oneof(
  { weight: 4, arbitrary: fc.array(validSegment, { minLength: 1, maxLength: 4 }).map((s) => '/' + s.join('/')) },
  { weight: 1, arbitrary: fc.array(validSegment, { maxLength: 3 }).map((s) => '/' + [...s, ''].join('/')) }, // trailing "/"
  { weight: 1, arbitrary: pathLike } // odd ones: empty segments, channels spelled like wildcards, ...
)
const pattern = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(fc.array(validSegment, { maxLength: 3 }), fc.constantFrom('', '*', '**')).map(([s, w]) => '/' + [...s, ...(w === '' ? [] : [w])].join('/')).filter((p) => p !== '/') },
  { weight: 1, arbitrary: pathLike }
)

// ---------------------------------------------------------------- properties

t.test('channelProblem agrees with the reference (split + regex) on every input', async (t) => {
  fc.assert(fc.property(fc.oneof(anyName, fc.anything()), fc.boolean(), (name, allowWildcard) => {
    return channelProblem(name, allowWildcard) === referenceProblem(name, allowWildcard)
  }), { seed: SEED, numRuns: RUNS })
  t.pass('agrees')
})

t.test('channelMatches agrees with the reference', async (t) => {
  fc.assert(fc.property(fc.oneof(pattern, anyName), fc.oneof(concreteChannel, anyName), (p, c) => {
    return channelMatches(p, c) === referenceMatches(p, c)
  }), { seed: SEED, numRuns: RUNS })
  t.pass('agrees')
})

type Op = { kind: 'set', pattern: string, value: number } | { kind: 'delete', pattern: string } | { kind: 'clear' } | { kind: 'match', channel: string }
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('set' as const), pattern, value: fc.integer({ min: 0, max: 5 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), pattern }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'clear' as const }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('match' as const), channel: concreteChannel }) }
)

t.test('ChannelRouter.match equals looking up every pattern of matchingPatterns (with changes between lookups)', async (t) => {
  fc.assert(fc.property(fc.array(op, { maxLength: 60 }), fc.integer({ min: 1, max: 6 }), (ops, maxCached) => {
    const router = new ChannelRouter<{ id: number }>(maxCached)
    const reference = new Map<string, { id: number }>()
    for (const o of ops) {
      if (o.kind === 'set') {
        const value = { id: o.value }
        router.set(o.pattern, value)
        reference.set(o.pattern, value)
      } else if (o.kind === 'delete') {
        if (router.delete(o.pattern) !== reference.delete(o.pattern)) return false
      } else if (o.kind === 'clear') {
        router.clear()
        reference.clear()
      } else {
        const got = router.match(o.channel)
        const want = referenceRoute(reference, o.channel)
        if (got.length !== want.length || got.some((v, i) => v !== want[i])) return false
        if (router.cachedChannels > maxCached) return false
      }
      if (router.size !== reference.size) return false
    }
    return true
  }), { seed: SEED, numRuns: RUNS })
  t.pass('agrees')
})

t.test('ChannelRouter: order, wildcard semantics, shared answers', async (t) => {
  const router = new ChannelRouter<string>()
  for (const p of ['/**', '/a/**', '/a/b/*', '/a/b/**', '/a/b/c', '/a/*', '/*']) router.set(p, p)
  t.same(router.match('/a/b/c'), ['/a/b/c', '/a/b/*', '/a/b/**', '/a/**', '/**'])
  t.same(router.match('/a/b'), ['/a/*', '/a/**', '/**'])
  t.same(router.match('/a'), ['/*', '/**'])
  t.same(router.match('/x/y/z'), ['/**'])
  t.same(router.match('/a/b/*'), ['/a/b/*', '/a/b/**', '/a/**', '/**'], 'a channel spelled like a wildcard is matched once')
  t.equal(router.match('/a/b/c'), router.match('/a/b/c'), 'the cached answer is the same array')
  t.same(router.match('/a/b/c/d'), ['/a/b/**', '/a/**', '/**'])
  t.same(router.match('/a/'), ['/a/*', '/a/**', '/**'], 'an empty last segment matches as matchingPatterns says (not channelMatches)')
  t.same(router.match('/'), ['/*', '/**'])
  t.same(router.match('a/b'), [], 'no leading "/"')
  t.same([...router.keys()].sort(), ['/*', '/**', '/a/*', '/a/**', '/a/b/*', '/a/b/**', '/a/b/c'])
  t.same([...router.values()].length, 7)
  t.equal(router.get('/a/*'), '/a/*')
  t.ok(router.has('/a/**'))
  t.notOk(router.has('/a/x'))
})

t.test('ChannelRouter cache: bounded, dropped on every change, unused without wildcards', async (t) => {
  const exactOnly = new ChannelRouter<number>(4)
  exactOnly.set('/a', 1)
  for (let i = 0; i < 50; i++) exactOnly.match(`/a/${i}`)
  t.same(exactOnly.match('/a'), [1])
  t.same(exactOnly.match('/b'), [])
  t.equal(exactOnly.cachedChannels, 0, 'exact patterns only: nothing cached')

  const router = new ChannelRouter<number>(4)
  router.set('/a/**', 1)
  for (let i = 0; i < 100; i++) {
    t.same(router.match(`/a/${i}`), [1])
    if (router.cachedChannels > 4) t.fail(`cache grew to ${router.cachedChannels}`)
  }
  t.equal(router.cachedChannels, 4, 'holds at most maxCached channels')
  t.same(router.match('/a/99'), [1], 'the newest are kept')
  router.set('/a/*', 2)
  t.equal(router.cachedChannels, 0, 'adding a pattern drops the cache')
  t.same(router.match('/a/1'), [2, 1])
  t.same(router.match('/a/1/2'), [1])
  router.set('/a/*', 2)
  t.equal(router.cachedChannels, 2, 'setting the same value again keeps the cache')
  router.set('/a/*', 3)
  t.equal(router.cachedChannels, 0, 'replacing a value drops it')
  t.same(router.match('/a/1'), [3, 1])
  t.notOk(router.delete('/nope'))
  t.equal(router.cachedChannels, 1, 'deleting nothing keeps it')
  t.ok(router.delete('/a/*'))
  t.equal(router.cachedChannels, 0, 'deleting drops it')
  t.same(router.match('/a/1'), [1])
  router.clear()
  t.equal(router.size, 0)
  t.same(router.match('/a/1'), [])
  t.throws(() => new ChannelRouter(0), RangeError)
})

// ---------------------------------------------------------------- codec

function referenceParse (text: string): Message[] {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new TransportError(`The server sent invalid JSON: ${JSON.stringify(text.slice(0, 80))}`, { cause: error })
  }
  const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
  const list = Array.isArray(value) ? value : isRecord(value) ? [value] : null
  if (list === null) throw new TransportError(`The server sent a ${value === null ? 'null' : typeof value} where a message array was expected`)
  return list.map((v: unknown, index: number) => {
    if (!isRecord(v)) throw new TransportError(`Message ${index} of the reply is not an object`)
    if (typeof v.channel !== 'string' || v.channel === '') throw new TransportError(`Message ${index} of the reply has no channel`)
    if ('successful' in v && typeof v.successful !== 'boolean') throw new TransportError(`Message ${index} of the reply has a non-boolean "successful"`)
    const m = v as Message
    if (m.id !== undefined) {
      if (typeof m.id === 'number') m.id = String(m.id)
      else if (typeof m.id !== 'string') delete m.id
    }
    if (m.clientId !== undefined && typeof m.clientId !== 'string') delete m.clientId
    if (m.advice !== undefined && !isRecord(m.advice)) delete m.advice
    if (m.ext !== undefined && !isRecord(m.ext)) delete m.ext
    if (m.error !== undefined && typeof m.error !== 'string') m.error = String(m.error as unknown)
    if (m.supportedConnectionTypes !== undefined &&
        !(Array.isArray(m.supportedConnectionTypes) && m.supportedConnectionTypes.every((x) => typeof x === 'string'))) {
      delete m.supportedConnectionTypes
    }
    return m
  })
}

function outcome (f: () => unknown): unknown {
  try {
    return { ok: f() }
  } catch (error) {
    return { error: (error as Error).constructor.name, message: (error as Error).message }
  }
}

const jsonScalar = fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.string({ maxLength: 4 }), fc.constantFrom('/meta/connect', '/a', ''))
const fieldValue = fc.oneof(jsonScalar, fc.array(jsonScalar, { maxLength: 2 }), fc.dictionary(fc.constantFrom('x', 'reconnect'), jsonScalar, { maxKeys: 2 }))
const messageLike = fc.record({
  channel: fc.oneof({ weight: 4, arbitrary: fc.constantFrom('/meta/connect', '/a/b') }, { weight: 1, arbitrary: fieldValue }),
  id: fieldValue,
  clientId: fieldValue,
  successful: fc.oneof(fc.boolean(), fieldValue),
  advice: fieldValue,
  ext: fieldValue,
  error: fieldValue,
  supportedConnectionTypes: fc.oneof(fc.constant(['websocket', 'long-polling']), fieldValue),
  data: fieldValue
}, { requiredKeys: [] })

t.test('parsePayload agrees with the reference on well-formed and malformed payloads', async (t) => {
  const payload = fc.oneof(
    { weight: 5, arbitrary: fc.array(fc.oneof({ weight: 8, arbitrary: messageLike }, { weight: 1, arbitrary: fieldValue }), { maxLength: 4 }).map((v) => JSON.stringify(v)) },
    { weight: 2, arbitrary: messageLike.map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fieldValue.map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 10 }) }
  )
  fc.assert(fc.property(payload, (text) => {
    const got = outcome(() => parsePayload(text, JSON.parse))
    const want = outcome(() => referenceParse(text))
    t.same(got, want, text)
    return true
  }), { seed: SEED, numRuns: RUNS })
})
