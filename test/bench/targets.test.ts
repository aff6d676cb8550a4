/**
 * bench/lib/targets.ts: how a measured figure is judged against its goal and shown in the closing table of
 * `npm run bench`. Pure functions; the only test of the harness's own logic in CI (the benchmarks do not run there).
 */
import t from 'tap'
import { judge, targetRows, type TargetSpec } from '../../bench/lib/targets.js'

const atLeast: TargetSpec = { id: 'fanout-1000', what: 'fan-out ÷ bare', unit: 'x', goal: { atLeast: 0.8 } }
const atMost: TargetSpec = { id: 'added-p99', what: 'added p99', unit: 'ms', goal: { atMost: 2 } }

t.test('an "at least" goal passes on or above it, misses below', async (t) => {
  t.equal(judge(atLeast, 0.95).pass, true)
  t.equal(judge(atLeast, 0.8).pass, true, 'the goal itself passes')
  t.equal(judge(atLeast, 0.79).pass, false)
  t.equal(judge(atLeast, Number.POSITIVE_INFINITY).pass, false, 'an infinite ratio (a zero reference) is not a figure')
})

t.test('an "at most" goal passes on or below it, misses above', async (t) => {
  t.equal(judge(atMost, 1.5).pass, true)
  t.equal(judge(atMost, 2).pass, true, 'the goal itself passes')
  t.equal(judge(atMost, -0.4).pass, true, 'a negative added latency is below the goal')
  t.equal(judge(atMost, 2.01).pass, false)
})

t.test('a figure that could not be measured is a MISS with a note, never a PASS', async (t) => {
  for (const spec of [atLeast, atMost]) {
    const r = judge(spec, Number.NaN)
    t.equal(r.pass, false, `${spec.id}: NaN is a MISS`)
    t.equal(r.note, 'not measured', `${spec.id}: the default note`)
  }
  t.equal(judge({ ...atMost, note: '12 lost deliveries' }, Number.NaN).note, '12 lost deliveries', 'the spec says why')
})

t.test('judge keeps the spec and the figure', async (t) => {
  t.same(judge(atLeast, 0.9), { ...atLeast, measured: 0.9, pass: true })
  t.same(judge({ ...atMost, note: '3 runs, 1.2–1.9' }, 1.5), { ...atMost, note: '3 runs, 1.2–1.9', measured: 1.5, pass: true })
})

t.test('targetRows: what, measured, goal with its direction, PASS/MISS, note', async (t) => {
  const rows = targetRows([
    judge(atLeast, 1.014),
    judge(atMost, 3.2),
    judge({ ...atMost, id: 'big', unit: 'MB', goal: { atMost: 150 } }, 129.74),
    judge(atLeast, Number.NaN)
  ])
  t.same(rows, [
    ['fan-out ÷ bare', '1.01×', '≥ 0.80×', 'PASS', ''],
    ['added p99', '3.20 ms', '≤ 2.00 ms', 'MISS', ''],
    ['added p99', '130 MB', '≤ 150 MB', 'PASS', ''],
    ['fan-out ÷ bare', '–', '≥ 0.80×', 'MISS', 'not measured']
  ])
  t.same(targetRows([]), [], 'no targets, no rows')
})
