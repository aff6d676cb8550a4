/** What the numbers were measured on: CPU, cores, Node, library versions, load. */
import os from 'node:os'
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'

const require = createRequire(import.meta.url)

export interface MachineInfo {
  cpuModel: string
  nproc: number
  node: string
  platform: string
  totalMemMB: number
  loadAvg: number[]
  versions: Record<string, string>
}

function cpuModel (): string {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8')
    const line = text.split('\n').find((l) => l.startsWith('model name'))
    if (line !== undefined) return line.split(':').slice(1).join(':').trim()
  } catch { /* not Linux */ }
  return os.cpus()[0]?.model ?? 'unknown'
}

function version (pkg: string): string {
  try {
    return (require(`${pkg}/package.json`) as { version: string }).version
  } catch {
    return 'absent'
  }
}

export function machineInfo (): MachineInfo {
  return {
    cpuModel: cpuModel(),
    nproc: os.availableParallelism(),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    totalMemMB: Math.round(os.totalmem() / (1024 * 1024)),
    loadAvg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    versions: Object.fromEntries(['faye', 'cometd', 'cometd-nodejs-client', 'cometd-nodejs-server', 'undici', 'ws']
      .map((p) => [p, version(p)]))
  }
}

/** Short SHA-256 over the .js files under `dir` (a compiled build), to tie results to the code measured. */
export function buildHash (dir: string): string {
  const hash = createHash('sha256')
  const walk = (d: string): void => {
    let entries
    try {
      entries = readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))
    } catch {
      return
    }
    for (const e of entries) {
      const full = path.join(d, e.name)
      if (e.isDirectory()) walk(full)
      else if (e.name.endsWith('.js')) hash.update(e.name).update(readFileSync(full))
    }
  }
  walk(dir)
  return hash.digest('hex').slice(0, 12)
}

export interface SourceInfo { commit: string, dirty: string[] }

/** The git commit of the repository and the paths with uncommitted changes (of those given). */
export function sourceInfo (root: string, paths: string[]): SourceInfo {
  const git = (...args: string[]): string => {
    try {
      return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5_000 }).trimEnd()
    } catch {
      return ''
    }
  }
  const commit = git('rev-parse', '--short', 'HEAD').trim() || 'unknown'
  const dirty = git('status', '--porcelain', '--', ...paths).split('\n').filter((l) => l.trim() !== '').map((l) => l.slice(3))
  return { commit, dirty }
}

/** CPU time of the whole machine so far (all cores, ms), from os.cpus(). */
export function machineCpu (): { busyMs: number, totalMs: number } {
  let busy = 0
  let total = 0
  for (const cpu of os.cpus()) {
    const t = cpu.times
    busy += t.user + t.nice + t.sys + t.irq
    total += t.user + t.nice + t.sys + t.irq + t.idle
  }
  return { busyMs: busy, totalMs: total }
}

/** Share of all cores busy (0..1) over the next `ms`. */
export async function machineBusy (ms: number): Promise<number> {
  const a = machineCpu()
  await new Promise((resolve) => setTimeout(resolve, ms))
  const b = machineCpu()
  const total = b.totalMs - a.totalMs
  return total > 0 ? (b.busyMs - a.busyMs) / total : 0
}

/**
 * Waits (bounded) until the machine is quiet: at most `maxBusy` of all cores busy over a 1 s sample, or `maxWaitMs`
 * passed. Returns the last busy share measured. Other work on a shared machine is the largest source of noise.
 */
export async function waitQuiet (maxBusy: number, maxWaitMs: number): Promise<{ busy: number, waitedMs: number }> {
  const start = Date.now()
  let busy = await machineBusy(1_000)
  while (busy > maxBusy && Date.now() - start + 1_000 <= maxWaitMs) busy = await machineBusy(1_000)
  return { busy, waitedMs: Date.now() - start }
}
