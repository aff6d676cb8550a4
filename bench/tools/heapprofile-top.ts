/**
 * Summarises a sampling heap profile (`.heapprofile`, from `npm run bench -- --profile sub --profile-kind heap` or
 * `node --heap-prof`): bytes allocated by function (self), by area (client-core file, node_modules package, node
 * internals), and inclusive bytes of client-core functions; with `--per N`, bytes per message of a phase of N.
 *
 *   node dist/bench/tools/heapprofile-top.js FILE.heapprofile [--per 200000] [--top 25]
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { codeArea, label, type CallFrame } from './profile-frames.js'

interface HeapNode { callFrame: CallFrame, selfSize: number, children: HeapNode[] }

/** A frame without a script is a V8 builtin (Map, Promise, …): its own area, by name. */
const area = (frame: CallFrame): string => frame.url === '' ? `(${frame.functionName === '' ? 'native' : frame.functionName})` : codeArea(frame)

const add = (map: Map<string, number>, key: string, bytes: number): void => { map.set(key, (map.get(key) ?? 0) + bytes) }

export function summarise (file: string, per: number, top = 25): string {
  const { head } = JSON.parse(readFileSync(file, 'utf8')) as { head: HeapNode }
  const self = new Map<string, number>()
  const areas = new Map<string, number>()
  const inclusive = new Map<string, number>()
  let total = 0
  // Returns the subtree's bytes; a function counts once per path even when it recurses.
  const walk = (node: HeapNode, onPath: Set<string>): number => {
    const key = label(node.callFrame)
    let bytes = node.selfSize
    total += node.selfSize
    add(self, key, node.selfSize)
    add(areas, area(node.callFrame), node.selfSize)
    const fresh = !onPath.has(key)
    if (fresh) onPath.add(key)
    for (const child of node.children) bytes += walk(child, onPath)
    if (fresh) {
      onPath.delete(key)
      if (node.callFrame.url.includes('/client-core/')) add(inclusive, key, bytes)
    }
    return bytes
  }
  walk(head, new Set())
  const unit = per > 0 ? 'B/msg' : 'KB'
  const show = (bytes: number): string => per > 0 ? (bytes / per).toFixed(1) : (bytes / 1024).toFixed(0)
  const table = (title: string, map: Map<string, number>): string[] => [title, ...[...map.entries()]
    .sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([k, v]) => `  ${show(v).padStart(9)} ${unit}  ${((v / total) * 100).toFixed(1).padStart(5)} %  ${k}`)]
  return [
    `${file}: ${(total / 1048576).toFixed(1)} MB sampled${per > 0 ? `, ${show(total)} B/msg over ${per} messages` : ''}`,
    ...table('self, by function:', self),
    ...table('self, by area:', areas),
    ...table('inclusive, client-core functions:', inclusive)
  ].join('\n')
}

const isMain = process.argv[1] !== undefined && import.meta.url.endsWith(path.basename(process.argv[1]))
if (isMain) {
  const args = process.argv.slice(2)
  const flag = (name: string): number => {
    const i = args.indexOf(`--${name}`)
    return i >= 0 ? Number(args.splice(i, 2)[1]) : 0
  }
  const per = flag('per')
  const top = flag('top') || 25
  for (const file of args) console.log(summarise(file, per, top))
}
