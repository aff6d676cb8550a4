/**
 * The processes below a pid, read from /proc (Linux): `npm start` and `npx` run the daemon as a child, and a test
 * that stops them checks that no child is left behind (and kills what is, in its teardown).
 */
import { readdirSync, readFileSync } from 'node:fs'

/** pid → parent pid of every process now; the command name in /proc/PID/stat may hold spaces and parentheses. */
function parents (): Map<number, number> {
  const out = new Map<number, number>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out.set(Number(name), Number(fields[1]))
    } catch {
      // the process ended while we read
    }
  }
  return out
}

/** Every live descendant of `pid` (children first), not `pid` itself. */
export function descendants (pid: number): number[] {
  const all = parents()
  const found: number[] = []
  const queue = [pid]
  for (let i = 0; i < queue.length && i < 10_000; i++) {
    for (const [child, parent] of all) {
      if (parent === queue[i] && !found.includes(child)) { found.push(child); queue.push(child) }
    }
  }
  return found
}

export function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** SIGKILL to `pid`'s descendants (those found now); used by teardowns. */
export function killDescendants (pid: number): void {
  for (const child of descendants(pid).reverse()) {
    try { process.kill(child, 'SIGKILL') } catch {}
  }
}
