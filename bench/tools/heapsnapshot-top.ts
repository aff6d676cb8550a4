/**
 * Summarises a V8 .heapsnapshot (from `--heapsnapshot-signal`, or `npm run bench -- --only stream --stream-snapshots`):
 * self size and count by node type and constructor name, largest first, and the strings and ArrayBuffer backing
 * stores (the bytes of Buffers, outside the JS heap) by size class. A snapshot is taken after a full GC: it shows
 * what is live, not the garbage that was waiting for one.
 *
 *   node dist/bench/tools/heapsnapshot-top.js FILE.heapsnapshot [--top 20]
 */
import { readFileSync } from 'node:fs'
import { argValue } from '../lib/proc.js'

interface Snapshot {
  snapshot: { meta: { node_fields: string[], node_types: [string[], ...unknown[]] } }
  nodes: number[]
  strings: string[]
}

const file = process.argv[2]
if (file === undefined || file.startsWith('--')) throw new Error('usage: heapsnapshot-top FILE.heapsnapshot [--top N]')
const top = Number(argValue('top') ?? 20)
const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot
const fields = snap.snapshot.meta.node_fields
const types = snap.snapshot.meta.node_types[0]
const width = fields.length
const TYPE = fields.indexOf('type')
const NAME = fields.indexOf('name')
const SIZE = fields.indexOf('self_size')

const groups = new Map<string, { count: number, bytes: number }>()
const classes = new Map<string, { count: number, bytes: number }>()
const sizeClass = (n: number): string => n >= 1 << 20 ? '≥ 1 MB' : n >= 64 << 10 ? '64 KB–1 MB' : n >= 8 << 10 ? '8–64 KB' : n >= 1 << 10 ? '1–8 KB' : '< 1 KB'
let total = 0
for (let i = 0; i < snap.nodes.length; i += width) {
  const type = types[snap.nodes[i + TYPE]!]!
  const name = snap.strings[snap.nodes[i + NAME]!]!
  const size = snap.nodes[i + SIZE]!
  total += size
  const label = type === 'string' || type === 'concatenated string' || type === 'sliced string' ? `(${type})`
    : type === 'native' && name.startsWith('system / JSArrayBufferData') ? '(ArrayBuffer backing store)'
      : `${type}: ${name.length > 60 ? name.slice(0, 57) + '…' : name}`
  const g = groups.get(label) ?? { count: 0, bytes: 0 }
  g.count++
  g.bytes += size
  groups.set(label, g)
  if (label === '(string)' || label === '(ArrayBuffer backing store)') {
    const key = `${label} ${sizeClass(size)}`
    const c = classes.get(key) ?? { count: 0, bytes: 0 }
    c.count++
    c.bytes += size
    classes.set(key, c)
  }
}
const mb = (n: number): string => (n / (1024 * 1024)).toFixed(2).padStart(8)
console.log(`${file}: ${snap.nodes.length / width} nodes, ${mb(total)} MB self size in all`)
console.log('\n     MB     count  node')
for (const [label, g] of [...groups].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top)) console.log(`${mb(g.bytes)} ${String(g.count).padStart(9)}  ${label}`)
console.log('\n     MB     count  strings and backing stores by size')
for (const [label, g] of [...classes].sort((a, b) => b[1].bytes - a[1].bytes)) console.log(`${mb(g.bytes)} ${String(g.count).padStart(9)}  ${label}`)
