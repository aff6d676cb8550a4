/** Units of the session's request machinery: the deadline list (one timer for all) and the batching helpers. */
import t from 'tap'
import { DeadlineList } from '../../client-core/deadlines.js'
import type { DeadlineNode } from '../../client-core/deadlines.js'
import { byteCap, chunkEnd, joinedLength, loweredBodyCap, MIN_BODY_CAP, serializeEach } from '../../client-core/batch.js'
import { DEFAULTS } from '../../client-core/options.js'

interface Entry extends DeadlineNode<Entry> { name: string }
const entry = (name: string): Entry => ({ name, deadline: 0, timeoutMs: 0, prev: null, next: null })
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

t.test('DeadlineList - expires entries in deadline order, not arming order', async (t) => {
  const expired: string[] = []
  const list = new DeadlineList<Entry>((e) => { expired.push(e.name); list.disarm(e) })
  list.arm(entry('late'), 60)
  list.arm(entry('early'), 10)
  list.arm(entry('middle'), 30)
  t.notOk(list.empty)
  await sleep(120)
  t.same(expired, ['early', 'middle', 'late'])
  t.ok(list.empty)
})

t.test('DeadlineList - a disarmed entry never expires; re-arming moves the deadline', async (t) => {
  const expired: string[] = []
  const list = new DeadlineList<Entry>((e) => { expired.push(`${e.name}@${e.timeoutMs}`); list.disarm(e) })
  const a = entry('a')
  const b = entry('b')
  const c = entry('c')
  list.arm(a, 10)
  list.arm(b, 10)
  list.arm(c, 15)
  list.disarm(a)
  t.equal(a.deadline, 0)
  t.equal(a.prev, null)
  t.equal(a.next, null)
  list.disarm(a) // a no-op
  list.arm(b, 40) // later: the timer fires first for c
  await sleep(25)
  t.same(expired, ['c@15'])
  await sleep(50)
  t.same(expired, ['c@15', 'b@40'])
  t.ok(list.empty)
})

t.test('DeadlineList - an entry the callback leaves armed is unlinked anyway', async (t) => {
  let calls = 0
  const list = new DeadlineList<Entry>(() => { calls++ })
  const a = entry('a')
  list.arm(a, 5)
  await sleep(30)
  t.equal(calls, 1)
  t.ok(list.empty)
  t.equal(a.deadline, 0)
})

t.test('DeadlineList - stopIfEmpty clears the timer only when nothing is armed', async (t) => {
  const expired: string[] = []
  const list = new DeadlineList<Entry>((e) => { expired.push(e.name); list.disarm(e) })
  const a = entry('a')
  list.arm(a, 10)
  list.stopIfEmpty()
  await sleep(30)
  t.same(expired, ['a'], 'not stopped while armed')
  const b = entry('b')
  list.arm(b, 10)
  list.disarm(b)
  list.stopIfEmpty()
  await sleep(30)
  t.same(expired, ['a'])
})

t.test('serializeEach - an unserializable message fails alone', async (t) => {
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  const failed: Array<[string | null, string]> = []
  const out = serializeEach([{ channel: '/a', data: 1 }, { channel: '/b', data: cyclic }, { channel: '/c', data: 3 }],
    ['A', 'B', null], JSON.stringify, (owner, message) => { failed.push([owner, message.channel]) })
  t.same(failed, [['B', '/b']])
  t.same(out.sent, ['A', null])
  t.same(out.messages.map((m) => m.channel), ['/a', '/c'])
  t.same(out.parts, ['{"channel":"/a","data":1}', '{"channel":"/c","data":3}'])
})

t.test('chunkEnd, joinedLength - bodies under the cap, at least one part each', async (t) => {
  const parts = ['aaaa', 'bbbb', 'cccc', 'dddddddddddd']
  t.equal(joinedLength(parts), `[${parts.join(',')}]`.length)
  t.equal(chunkEnd(parts, 0, Infinity, 100), 4)
  t.equal(chunkEnd(parts, 0, Infinity, 11), 2, '[aaaa,bbbb] is 11 bytes')
  t.equal(chunkEnd(parts, 0, Infinity, 10), 1)
  t.equal(chunkEnd(parts, 3, Infinity, 1), 4, 'one part even over the cap')
  t.equal(chunkEnd(parts, 0, 2, 100), 2, 'at most maxCount')
})

t.test('byteCap, loweredBodyCap - per transport, within the learnt cap', async (t) => {
  t.equal(byteCap('websocket', null, null), DEFAULTS.maxFrameBytes)
  t.equal(byteCap('long-polling', null, null), DEFAULTS.maxBatchBytes)
  t.equal(byteCap('long-polling', 1000, 500), 500)
  t.equal(byteCap('websocket', 1000, 500), 1000, 'a learnt body cap is for long-polling only')
  t.equal(loweredBodyCap(null, 100_000), 50_000)
  t.equal(loweredBodyCap(20_000, 100_000), 20_000, 'never raised')
  t.equal(loweredBodyCap(null, 1000), MIN_BODY_CAP)
})
