/**
 * Micro-benchmark of client-core's per-message receive helpers, this build against another compiled client-core
 * (e.g. the baseline): event routing (matchingPatterns + Map lookups vs ChannelRouter.match), channel-name
 * validation (channelProblem) and payload parsing + checking (parsePayload). Bounded: a fixed count per case.
 *
 *   flock /tmp/cometd-bench.lock node dist/bench/tools/recv-micro.js [--alt DIR/of/client-core] [--n 200000]
 */
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { performance } from 'node:perf_hooks'
import { ChannelRouter, channelProblem, matchingPatterns } from '../../client-core/protocol/channel.js'
import { parsePayload } from '../../client-core/protocol/codec.js'

type Problem = (channel: unknown, allowWildcard: boolean) => string | null
type Parse = (text: string, parse: (text: string) => unknown) => unknown[]

const args = process.argv.slice(2)
const flag = (name: string): string | undefined => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined }
const N = Number(flag('--n') ?? 200_000)
const alt = flag('--alt')

function time (label: string, n: number, body: (i: number) => unknown): number {
  let sink = 0
  for (let i = 0; i < Math.min(n, 20_000); i++) if (body(i) !== undefined) sink++ // warm-up
  const start = performance.now()
  for (let i = 0; i < n; i++) if (body(i) !== undefined) sink++
  const ns = (performance.now() - start) * 1e6 / n
  console.log(`${label.padEnd(58)} ${ns.toFixed(1).padStart(8)} ns/op${sink < 0 ? ' ' : ''}`)
  return ns
}

/** Client.onEvent's lookup before ChannelRouter. */
function routeByPatterns (subs: Map<string, number>, channel: string): number {
  let hits = 0
  for (const pattern of matchingPatterns(channel)) if (subs.get(pattern) !== undefined) hits++
  return hits
}

async function main (): Promise<void> {
  const channels = Array.from({ length: 16 }, (_, i) => `/bench/room${i % 4}/topic${i}`)
  const frame = JSON.stringify(Array.from({ length: 8 }, (_, i) => ({
    channel: '/bench/client', id: String(i), data: { p: 'x'.repeat(150), s: i, t: 1234567890123, x: 'abc' }
  })))
  const results: Array<[string, number, number | null]> = []
  const cases: Array<{ name: string, mine: () => number, theirs: (() => number) | null }> = []

  let other: { problem: Problem, parse: Parse } | null = null
  if (alt !== undefined) {
    const base = pathToFileURL(path.resolve(alt) + '/').href
    const ch = await import(new URL('protocol/channel.js', base).href) as { channelProblem: Problem }
    const codec = await import(new URL('protocol/codec.js', base).href) as { parsePayload: Parse }
    other = { problem: ch.channelProblem, parse: codec.parsePayload }
  }

  for (const wildcards of [false, true]) {
    const exact = new Map<string, number>(channels.map((c, i) => [c, i]))
    const router = new ChannelRouter<number>()
    for (const [c, i] of exact) router.set(c, i)
    if (wildcards) {
      for (const p of ['/bench/room1/*', '/bench/**', '/other/**']) { exact.set(p, 99); router.set(p, 99) }
    }
    const label = wildcards ? 'exact + 3 wildcard subscriptions' : 'exact subscriptions only'
    cases.push({
      name: `route an event (${label})`,
      mine: () => time(`  ChannelRouter.match, ${label}`, N, (i) => router.match(channels[i & 15]!).length),
      theirs: () => time(`  matchingPatterns + Map.get, ${label}`, N, (i) => routeByPatterns(exact, channels[i & 15]!))
    })
  }
  cases.push({
    name: 'validate a channel name',
    mine: () => time('  channelProblem (this build)', N, (i) => channelProblem(channels[i & 15], false)),
    theirs: other === null ? null : () => time('  channelProblem (alt)', N, (i) => other.problem(channels[i & 15], false))
  })
  const parseN = Math.max(1, Math.floor(N / 10))
  cases.push({
    name: 'parse + check an 8-message frame',
    mine: () => time('  parsePayload (this build)', parseN, () => parsePayload(frame, JSON.parse).length),
    theirs: other === null ? null : () => time('  parsePayload (alt)', parseN, () => other.parse(frame, JSON.parse).length)
  })
  cases.push({
    name: 'JSON.parse alone (the floor)',
    mine: () => time('  JSON.parse', parseN, () => (JSON.parse(frame) as unknown[]).length),
    theirs: null
  })

  for (const c of cases) {
    console.log(c.name)
    // interleaved, 3 rounds, medians
    const a: number[] = []
    const b: number[] = []
    for (let round = 0; round < 3; round++) {
      a.push(c.mine())
      if (c.theirs !== null) b.push(c.theirs())
    }
    const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!
    results.push([c.name, median(a), b.length > 0 ? median(b) : null])
  }
  console.log('\nmedians (ns/op): this build vs the other')
  for (const [name, mine, theirs] of results) {
    console.log(`  ${name.padEnd(50)} ${mine.toFixed(1).padStart(8)}  ${theirs === null ? '' : `${theirs.toFixed(1).padStart(8)}  (${(mine / theirs).toFixed(2)}×)`}`)
  }
}

await main()
