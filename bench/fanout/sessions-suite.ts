/**
 * Part 5 of the fan-out harness ('sessions' suite): many upstream sessions, held by client-core alone in one process
 * (fanout/sessions.ts) and by the bridge daemon. RSS per session and idle CPU.
 *
 * Flags: --sessions-n 1000 --sessions-idle-s S --sessions-runs R; the daemon with n configured sessions runs in
 *        --full (or with --sessions-bridge), --sessions-no-bridge skips it, --sessions-no-core skips client-core alone.
 */
import { Child } from '../lib/proc.js'
import { sleep } from '../lib/clock.js'
import { median } from '../lib/stats.js'
import { fmt, fmtInt } from '../lib/table.js'
import { intFlag, type Suite, type SuiteContext, type SuiteResult, type Table } from '../lib/suite.js'
import { Bridge, procUsage } from './procs.js'

export const sessionsSuite: Suite = {
  name: 'sessions',
  title: 'many upstream sessions: client-core Clients (long-polling) against faye, RSS per session and idle CPU (part 5)',
  async run (ctx: SuiteContext): Promise<SuiteResult> {
    const full = ctx.mode === 'full'
    const n = intFlag(ctx.flags, 'sessions-n', 1_000)
    // ≥ 10 s: the daemon's last start-up GC (the one that shrinks the young generation) runs 8 s after its sessions opened
    const idleS = intFlag(ctx.flags, 'sessions-idle-s', full ? 20 : 10)
    const runs = intFlag(ctx.flags, 'sessions-runs', full ? 2 : 1)
    const rows: Array<Record<string, number>> = []
    for (let run = 0; run < runs; run++) {
      const server = await Child.fork('client/server.js', ['--server', 'faye'], { name: 'faye' })
      let holder: Child | null = null
      try {
        const url = (server.readyInfo as { url: string }).url
        // --sessions-no-core: the daemon rows only
        const nan = { cpuMs: Number.NaN, rssMB: Number.NaN }
        let opened: Record<string, number> = { open: Number.NaN, ms: Number.NaN, rssBeforeMB: Number.NaN, heapMB: Number.NaN }
        let a = nan
        let b = nan
        let sa = { cpuMs: Number.NaN, rssMB: Number.NaN }
        let sb = sa
        if (ctx.flags['sessions-no-core'] !== true) {
          holder = await Child.fork('fanout/sessions.js', [], { name: 'sessions', execArgv: ['--expose-gc'] })
          opened = await holder.call<Record<string, number>>('open', { url, n }, 130_000)
          a = await holder.call<{ cpuMs: number, rssMB: number }>('usage', {}, 5_000)
          sa = procUsage(server.pid!)
          await sleep(idleS * 1000)
          b = await holder.call<{ cpuMs: number, rssMB: number }>('usage', {}, 5_000)
          sb = procUsage(server.pid!)
        }
        // the daemon: a bridge with 1 session, then one with n sessions (long-polling, one held subscription each)
        const sessionsOf = (k: number): Record<string, unknown> => Object.fromEntries(Array.from({ length: k }, (_v, i) =>
          [`s${i}`, { url, connectionTypes: ['long-polling'], subscribe: [`/bench/bridge-session/${i}`] }]))
        const bridgeRss: number[] = []
        let bridgeIdleCpu = Number.NaN
        let bridgeStartMs = Number.NaN
        if (ctx.flags['sessions-no-bridge'] !== true && (full || ctx.flags['sessions-bridge'] === true)) {
          for (const k of [1, n]) {
            const t0 = Date.now()
            const b = await Bridge.start(url, 100, [], sessionsOf(k), 120_000)
            try {
              if (k === n) bridgeStartMs = Date.now() - t0
              // both rows after the same wait: the daemon collects its start-up garbage 1-8 s after the sessions opened
              await sleep(3_000)
              const u0 = procUsage(b.pid)
              await sleep(idleS * 1000)
              const u1 = procUsage(b.pid)
              if (k === n) bridgeIdleCpu = (u1.cpuMs - u0.cpuMs) / (idleS * 1000)
              bridgeRss.push(u1.rssMB)
            } finally {
              await b.stop()
            }
          }
          ctx.log(`  run ${run + 1} bridge: 1 session ${fmt(bridgeRss[0]!, 1)} MB, ${n} sessions ${fmt(bridgeRss[1]!, 1)} MB (ready in ${bridgeStartMs} ms), idle CPU ${fmt(bridgeIdleCpu * 100, 2)} %`)
        }
        const row = {
          bridge1RssMB: bridgeRss[0] ?? Number.NaN, bridgeNRssMB: bridgeRss[1] ?? Number.NaN, bridgeIdleCpuShare: bridgeIdleCpu, bridgeStartMs,
          bridgePerSessionKB: (((bridgeRss[1] ?? Number.NaN) - (bridgeRss[0] ?? Number.NaN)) * 1024) / Math.max(1, n - 1),
          run, ...opened, rssIdleMB: b.rssMB, perSessionKB: ((b.rssMB - opened.rssBeforeMB!) * 1024) / Math.max(1, opened.open!),
          idleCpuShare: (b.cpuMs - a.cpuMs) / (idleS * 1000), serverIdleCpuShare: (sb.cpuMs - sa.cpuMs) / (idleS * 1000), serverRssMB: sb.rssMB
        }
        rows.push(row)
        if (holder !== null) ctx.log(`  run ${run + 1}: ${opened.open} sessions in ${opened.ms} ms, RSS ${fmt(opened.rssBeforeMB!, 1)} → ${fmt(b.rssMB, 1)} MB (${fmt(row.perSessionKB, 1)} KB/session), idle CPU ${fmt(row.idleCpuShare * 100, 2)} %`)
      } finally {
        await holder?.stop().catch(() => holder?.kill())
        await server.stop().catch(() => server.kill())
      }
    }
    const m = (k: string): number => median(rows.map((r) => r[k]!))
    const table: Table = {
      title: `${fmtInt(n)} upstream sessions held by client-core in one process (faye, long-polling, one subscription each; idle ${idleS} s; median of ${runs} run(s))`,
      columns: ['sessions', 'open ms', 'RSS before MB', 'RSS idle MB', 'KB/session', 'heap MB', 'idle CPU %', 'faye CPU %', 'target'],
      rows: [[fmtInt(m('open')), fmtInt(m('ms')), fmt(m('rssBeforeMB'), 1), fmt(m('rssIdleMB'), 1), fmt(m('perSessionKB'), 1), fmt(m('heapMB'), 1),
        fmt(m('idleCpuShare') * 100, 2), fmt(m('serverIdleCpuShare') * 100, 2), '≤ 150 MB']],
      notes: ['RSS after a forced GC (--expose-gc); the faye long-poll is held 30 s, so idle CPU includes the reconnects']
    }
    const bridgeTable: Table = {
      title: `The bridge daemon holding ${fmtInt(n)} configured sessions (faye, long-polling, one held subscription each; idle ${idleS} s; median of ${runs} run(s))`,
      columns: ['sessions', 'ready ms', 'RSS with 1 session MB', `RSS with ${fmtInt(n)} MB`, 'KB/session', 'idle CPU %', 'target'],
      rows: [[fmtInt(n), fmtInt(m('bridgeStartMs')), fmt(m('bridge1RssMB'), 1), fmt(m('bridgeNRssMB'), 1), fmt(m('bridgePerSessionKB'), 1), fmt(m('bridgeIdleCpuShare') * 100, 2), '≤ 150 MB']],
      notes: ['RSS of the daemon (/proc VmRSS, no forced GC from outside) 3 s + the idle period after every session was connected and subscribed (1 session and n alike); the daemon runs its own start-up GCs 1–8 s after its sessions opened (server/session/startup.ts): the last one 8 s after, so use an idle period ≥ 10 s; idle CPU includes them']
    }
    const tables = [...(rows.some((r) => Number.isFinite(r.rssIdleMB)) ? [table] : []), ...(rows.some((r) => Number.isFinite(r.bridgeNRssMB)) ? [bridgeTable] : [])]
    return { tables, data: { n, idleS, runs, rows } }
  }
}
