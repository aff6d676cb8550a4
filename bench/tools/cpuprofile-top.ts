/**
 * Summarises V8 .cpuprofile files (from `node --cpu-prof`, or `npm run bench -- --profile sub`):
 * self time by function (file:line function) and by area (client-core file, node_modules package, node internals,
 * GC, idle), and inclusive time of client-core functions.
 *
 *   node dist/bench/tools/cpuprofile-top.js FILE.cpuprofile [--top 25] [--focus client-core]
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { codeArea, label, shortUrl, type CallFrame } from './profile-frames.js'

interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

function area (frame: CallFrame): string {
  if (frame.url !== '') return codeArea(frame)
  const { functionName } = frame
  if (functionName === '(garbage collector)') return '(gc)'
  if (functionName === '(idle)') return '(idle)'
  if (functionName === '(program)') return '(program)'
  return '(native)'
}

export function summarise (file: string, top = 25, focus = 'client-core/'): string {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const selfUs = new Map<number, number>()
  // The first sample's delta runs from the profile's start (e.g. the time to enable the profiler): skip it.
  for (let i = 1; i < profile.samples.length; i++) {
    const id = profile.samples[i]!
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
  }
  let total = 0
  let idle = 0
  const selfByLabel = new Map<string, number>()
  const selfByArea = new Map<string, number>()
  const inclusiveByLabel = new Map<string, number>()
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!
    total += us
    if (node.callFrame.functionName === '(idle)') idle += us
    const l = label(node.callFrame)
    selfByLabel.set(l, (selfByLabel.get(l) ?? 0) + us)
    const a = area(node.callFrame)
    selfByArea.set(a, (selfByArea.get(a) ?? 0) + us)
    // inclusive: every distinct focus frame on the stack gets the sample once
    const seen = new Set<string>()
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)!.callFrame
      if (!shortUrl(frame.url).startsWith(focus)) continue
      const fl = label(frame)
      if (seen.has(fl)) continue
      seen.add(fl)
      inclusiveByLabel.set(fl, (inclusiveByLabel.get(fl) ?? 0) + us)
    }
  }
  const busy = total - idle
  const pct = (us: number): string => `${((us / busy) * 100).toFixed(1).padStart(5)} %`
  const ms = (us: number): string => `${(us / 1000).toFixed(0).padStart(6)} ms`
  const lines: string[] = [`${path.basename(file)}: ${(total / 1000).toFixed(0)} ms sampled, ${(busy / 1000).toFixed(0)} ms busy (percentages of busy time)`]
  lines.push('', 'self time by area:')
  for (const [a, us] of [...selfByArea].filter(([a]) => a !== '(idle)').sort((x, y) => y[1] - x[1]).slice(0, top)) lines.push(`  ${ms(us)} ${pct(us)}  ${a}`)
  lines.push('', 'self time by function:')
  for (const [l, us] of [...selfByLabel].filter(([l]) => l !== '(idle)').sort((x, y) => y[1] - x[1]).slice(0, top)) lines.push(`  ${ms(us)} ${pct(us)}  ${l}`)
  lines.push('', `inclusive time of ${focus}* functions:`)
  for (const [l, us] of [...inclusiveByLabel].sort((x, y) => y[1] - x[1]).slice(0, top)) lines.push(`  ${ms(us)} ${pct(us)}  ${l}`)
  return lines.join('\n')
}

const args = process.argv.slice(2)
const files = args.filter((a, i) => !a.startsWith('--') && !(args[i - 1]?.startsWith('--') ?? false))
const topIdx = args.indexOf('--top')
const focusIdx = args.indexOf('--focus')
const top = topIdx >= 0 ? Number(args[topIdx + 1]) : 25
const focus = focusIdx >= 0 ? (args[focusIdx + 1] ?? 'client-core/') : 'client-core/'
if (files.length === 0) {
  console.error('usage: node dist/bench/tools/cpuprofile-top.js FILE.cpuprofile [--top 25] [--focus client-core/]')
  process.exit(2)
}
for (const file of files) console.log(summarise(file, top, focus) + '\n')
