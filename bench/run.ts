/**
 * `npm run bench` — the benchmark harness of issue 5.
 *
 *   node dist/bench/run.js [--quick | --full] [--only client,...] [suite flags]
 *
 *   --quick        (default) one run of smaller sizes, the whole harness in under 2 minutes
 *   --full         3 runs of the documented sizes (docs/BENCHMARKS.md)
 *   --only a,b     suites to run (default: all)
 *   --out DIR      where results go (default bench/results/)
 *   --no-save      print only
 *   --client-core-alt DIR   also measure another compiled client-core (a directory with index.js and its
 *                  package.json "type": "module" above it, e.g. a branch's dist/client-core) as 'client-core-alt'
 *   client suite:  --targets faye-ws,faye-lp,cometd-lp  --libs client-core,cometd,cometd-autobatch,faye
 *                  --runs R --n N --warmup W --window 1000 --rate 500 --latency-s S
 *                  --profile sub,pub,server [--profile-libs client-core]  (.cpuprofile files under the results dir)
 *                  --quiet-wait-s S --quiet-busy-pct P --max-other-pct P --retries K  (noise control, on in --full)
 *   cluster suite: --cluster-runs R --cluster-seconds S --cluster-n N --cluster-rate M --cluster-latency-n N
 *                  --cluster-latency-rate M --cluster-profile  (bench/cluster/suite.ts; needs redis-server)
 *
 * Prints the tables and writes bench/results/<timestamp>.json (machine, parameters, every run, medians, ratios)
 * and the same tables as Markdown in bench/results/<timestamp>.md.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { BENCH_DIR } from './lib/proc.js'
import { buildHash, machineInfo, sourceInfo } from './lib/machine.js'
import { markdownTable, textTable } from './lib/table.js'
import type { Mode, Suite, SuiteResult } from './lib/suite.js'
import { targetRows, type TargetResult } from './lib/targets.js'
import { clientSuite } from './client/suite.js'
import { fanoutSuite, sessionsSuite } from './fanout/suite.js'
import { clusterSuite } from './cluster/suite.js'
import { streamSuite } from './stream/suite.js'

/** Every suite, in run order. */
const SUITES: Suite[] = [clientSuite, fanoutSuite, sessionsSuite, streamSuite, clusterSuite]

/** The repository root: dist/bench → ../.. */
const ROOT = path.resolve(BENCH_DIR, '..', '..')

function parseFlags (argv: string[]): Record<string, string | true> {
  const flags: Record<string, string | true> = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${JSON.stringify(arg)}`)
    const eq = arg.indexOf('=')
    if (eq > 0) {
      flags[arg.slice(2, eq)] = arg.slice(eq + 1)
      continue
    }
    const next = argv[i + 1]
    if (next !== undefined && !next.startsWith('--')) {
      flags[arg.slice(2)] = next
      i++
    } else {
      flags[arg.slice(2)] = true
    }
  }
  return flags
}

function stamp (date: Date): string {
  return date.toISOString().replace(/[:]/g, '-').replace(/\..*$/, 'Z')
}

async function main (): Promise<void> {
  const flags = parseFlags(process.argv.slice(2))
  if (flags['help'] === true) {
    console.log('usage: node dist/bench/run.js [--quick|--full] [--only ' + SUITES.map((s) => s.name).join(',') + '] [--out DIR] [--no-save] [suite flags]')
    return
  }
  const mode: Mode = flags['full'] === true ? 'full' : 'quick'
  if (typeof flags['client-core-alt'] === 'string') process.env.BENCH_CLIENT_CORE_ALT = path.resolve(flags['client-core-alt'])
  const only = typeof flags['only'] === 'string' ? flags['only'].split(',').map((s) => s.trim()) : null
  for (const name of only ?? []) {
    if (!SUITES.some((s) => s.name === name)) throw new Error(`unknown suite ${name} (${SUITES.map((s) => s.name).join(', ')})`)
  }
  const suites = SUITES.filter((s) => only === null || only.includes(s.name))
  const started = new Date()
  const outRoot = typeof flags['out'] === 'string' ? path.resolve(flags['out']) : path.join(ROOT, 'bench', 'results')
  // two runs started in the same second (two engineers, one machine) must not overwrite each other's results
  let runId = stamp(started)
  for (let n = 2; n < 100 && existsSync(path.join(outRoot, `${runId}.json`)); n++) runId = `${stamp(started)}-${n}`
  const outDir = path.join(outRoot, runId)
  const save = flags['no-save'] !== true
  const log = (line: string): void => { process.stderr.write(line + '\n') }
  const machine = machineInfo()
  const source = { ...sourceInfo(ROOT, ['client-core', 'server', 'bench']), clientCoreBuild: buildHash(path.join(BENCH_DIR, '..', 'client-core')) }
  log(`bench ${mode}: ${suites.map((s) => s.name).join(', ')} on ${machine.cpuModel} × ${machine.nproc}, Node ${machine.node}, load ${machine.loadAvg.join(' ')}`)

  const results: Record<string, SuiteResult | { error: string }> = {}
  const budgetMs = mode === 'quick' ? 110_000 / suites.length : 30 * 60_000
  let failed = false
  const seconds: Record<string, number> = {}
  for (const suite of suites) {
    log(`— ${suite.name}: ${suite.title}`)
    const t0 = Date.now()
    try {
      results[suite.name] = await suite.run({ mode, flags, log, outDir, budgetMs })
    } catch (error) {
      failed = true
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error)
      log(`suite ${suite.name} failed: ${message}`)
      results[suite.name] = { error: message }
    }
    seconds[suite.name] = Math.round((Date.now() - t0) / 1000)
    log(`— ${suite.name}: ${seconds[suite.name]} s`)
  }
  const finished = new Date()

  const md: string[] = [`# bench ${mode} ${runId}`, '',
    `${machine.cpuModel} × ${machine.nproc} (nproc), Node ${machine.node}, ${machine.platform}; ` +
    `load at start ${machine.loadAvg.join(' ')}; ${((finished.getTime() - started.getTime()) / 1000).toFixed(0)} s (${Object.entries(seconds).map(([k, v]) => `${k} ${v} s`).join(', ')}); ` +
    `commit ${source.commit}${source.dirty.length > 0 ? ` + uncommitted changes in ${source.dirty.length} file(s)` : ''}, client-core build ${source.clientCoreBuild}`, '']
  for (const [name, result] of Object.entries(results)) {
    if ('error' in result) continue
    for (const table of result.tables) {
      console.log('\n' + textTable(table))
      md.push(`### ${table.title}`, '', markdownTable(table), '', ...(table.notes ?? []).map((n) => `- ${n}`), '')
    }
    if (result.files !== undefined) for (const f of result.files) log(`${name}: wrote ${f}`)
  }
  const targets: TargetResult[] = Object.values(results).flatMap((r) => 'error' in r ? [] : (r.targets ?? []))
  if (targets.length > 0) {
    const table = {
      title: `Targets: ${targets.filter((t) => t.pass).length} PASS, ${targets.filter((t) => !t.pass).length} MISS`,
      columns: ['target', 'measured', 'goal', '', 'note'],
      rows: targetRows(targets)
    }
    console.log('\n' + textTable(table))
    md.push(`### ${table.title}`, '', markdownTable(table), '')
  }
  if (save) {
    mkdirSync(outRoot, { recursive: true })
    const json = path.join(outRoot, `${runId}.json`)
    writeFileSync(json, JSON.stringify({
      id: runId, mode, argv: process.argv.slice(2), started: started.toISOString(), finished: finished.toISOString(), seconds, machine, source, targets, suites: results
    }, null, 2) + '\n')
    writeFileSync(path.join(outRoot, `${runId}.md`), md.join('\n'))
    log(`\nresults: ${path.relative(process.cwd(), json)} (+ .md)`)
  }
  if (failed) process.exitCode = 1
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error)
  process.exit(1)
})
