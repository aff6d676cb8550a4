/**
 * Units of issue 6: the checkpoint store (coalesced atomic writes, corrupt and foreign files, stale temporary
 * files), replay ids, and the configuration keys (validation, environment variables, redaction).
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig, parseConfigObject, redactConfig } from '../../../config/index.js'
import { CheckpointStore, checkDataDir, checkpointPath } from '../../../server/event-log/checkpoint.js'
import { channelHash, parseReplayId, replaySuffix } from '../../../server/event-log/replay.js'
import { parseId } from '../../../server/event-log/resume.js'
import { delay, waitFor } from '../../helpers/wait.js'
import { tempDir } from './fixtures.js'

const quiet = { trace () {}, debug () {}, info () {}, warn () {}, error () {} }

function store (dir: string, intervalMs = 200, url = 'https://x/cometd/59.0'): CheckpointStore {
  return new CheckpointStore({ dataDir: dir, session: 'sf', url, intervalMs, log: quiet })
}

t.test('checkpoint: writes are coalesced (at most one per interval) and the last position always lands', async (t) => {
  const dir = tempDir(t)
  const s = store(dir, 200)
  t.equal(s.load().status, 'missing')
  const started = Date.now()
  let n = 0
  while (Date.now() - started < 1_000) {
    s.set('/event/A', ++n)
    await delay(1)
  }
  await waitFor(() => !s.view().pending && JSON.parse(readFileSync(s.file, 'utf8')).positions['/event/A'] === n, { timeoutMs: 5_000 })
  const writes = s.view().writes
  t.comment(`${n} positions in 1 s → ${writes} file writes (interval 200 ms)`)
  t.ok(writes >= 2 && writes <= 8, 'coalesced')
  s.set('/event/B', 'opaque-1')
  await s.close()
  const file = JSON.parse(readFileSync(s.file, 'utf8'))
  t.match(file, { version: 1, session: 'sf', url: 'https://x/cometd/59.0', positions: { '/event/A': n, '/event/B': 'opaque-1' } })
  t.same(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left')
  s.set('/event/A', 0)
  t.equal(JSON.parse(readFileSync(s.file, 'utf8')).positions['/event/A'], n, 'nothing after close')

  const again = store(dir)
  t.match(again.load(), { status: 'loaded', positions: { '/event/A': n, '/event/B': 'opaque-1' } })
})

t.test('checkpoint: a corrupt file, a foreign URL and an interrupted write', async (t) => {
  const dir = tempDir(t)
  const file = checkpointPath(dir, 'sf')
  writeFileSync(file, '{"version":1,"positions":{"/a":')
  t.match(store(dir).load(), { status: 'corrupt', positions: {}, reason: /invalid JSON/ })
  writeFileSync(file, JSON.stringify({ version: 1, session: 'sf', url: 'https://other/cometd/59.0', positions: { '/a': 1 } }))
  t.match(store(dir).load(), { status: 'ignored', positions: {}, reason: /another upstream/ })
  writeFileSync(file, JSON.stringify({ version: 1, session: 'sf', url: 'https://x/cometd/59.0', positions: { '/a': 7, 'bad': 1, '/b': { x: 1 } } }))
  // a crash between write and rename leaves a temporary file: ignored and removed, the old file wins
  writeFileSync(`${file}.4242.abc.tmp`, '{"version":1,"positions":{"/a":999')
  t.match(store(dir).load(), { status: 'loaded', positions: { '/a': 7 } })
  t.notOk(existsSync(`${file}.4242.abc.tmp`), 'stale temporary file removed')
  t.throws(() => { checkDataDir(join(file, 'sub')) }, /ENOTDIR|EEXIST/, 'an unusable data directory fails at start-up')
})

t.test('replay ids: the position and a channel check ride along; the ring position parses as before', async (t) => {
  const id = `mwyo4f0746f353-62${replaySuffix(1056, '/event/Order__e')}`
  t.match(id, /^mwyo4f0746f353-62\.1056\.[a-z0-9]+$/)
  t.same(parseReplayId(id), { epoch: 'mwyo4f0746f353', seq: 62, position: 1056, hash: channelHash('/event/Order__e') })
  t.same(parseId(id), { epoch: 'mwyo4f0746f353', seq: 62 })
  t.same(parseId('mwyo4f0746f353-62'), { epoch: 'mwyo4f0746f353', seq: 62 })
  t.equal(replaySuffix(-1, '/a'), '', 'policies are not positions')
  t.equal(replaySuffix('a b', '/a'), '', 'strings that do not fit an id are left out')
  const s = `e1-3${replaySuffix('AbC_12-x', '/a')}`
  t.same(parseReplayId(s), { epoch: 'e1', seq: 3, position: 'AbC_12-x', hash: channelHash('/a') })
  t.not(channelHash('/event/A'), channelHash('/event/B'))
  t.equal(parseReplayId('e1-3.12'), null)
})

t.test('config: replay, ack, auth, dataDir — defaults, validation, env, redaction', async (t) => {
  const ok = parseConfigObject({
    dataDir: '/var/lib/cometd-bridge',
    sessions: {
      sf: {
        url: 'https://acme.my.salesforce.com/cometd/59.0',
        connectionTypes: ['long-polling'],
        ack: false,
        replay: { enabled: true, start: -2, fallback: '-1' },
        auth: { tokenFile: '/var/run/secrets/sf/token' }
      },
      oauth: {
        url: 'https://acme.my.salesforce.com/cometd/59.0',
        auth: { tokenUrl: 'https://login.salesforce.com/services/oauth2/token', clientId: 'cid', clientSecret: 'cs', refreshToken: 'rt' }
      }
    }
  }, {})
  t.ok(ok.ok, 'valid')
  if (!ok.ok) return
  t.match(ok.config.sessions.sf, { replay: { enabled: true, start: -2, fallback: -1, deepResume: true, deepResumeMaxClients: 1 }, auth: { tokenFile: '/var/run/secrets/sf/token', timeoutMs: 10000, scheme: 'Bearer' } })
  t.equal(ok.config.sessions.oauth!.replay.enabled, false)
  const printed = JSON.stringify(redactConfig(ok.config))
  t.match(printed, /"tokenFile":"\/var\/run\/secrets\/sf\/token"/, 'where the token comes from is shown')
  t.match(printed, /"tokenUrl":"https:\/\/login\.salesforce\.com/)
  t.notMatch(printed, /"cs"|"rt"/, 'client secret and refresh token are redacted')

  const bad = parseConfigObject({
    checkpointIntervalMs: 70000,
    sessions: {
      a: { url: 'http://h/cometd', replay: { enabled: 'yes', start: 0 }, auth: { tokenFile: '/f', tokenCommand: 'x' } },
      b: { url: 'http://h/cometd', headers: { Authorization: 'Bearer x' }, auth: { tokenCommand: 'sf org display' } },
      c: { url: 'http://h/cometd', auth: { tokenUrl: 'https://login/token' } },
      d: { url: 'http://h/cometd', auth: { tokenFile: '/f', refreshToken: 'x' } }
    }
  }, {})
  t.notOk(bad.ok)
  if (bad.ok) return
  const text = bad.errors.map((e) => `${e.path}: ${e.message}`).join('\n')
  t.match(text, /checkpointIntervalMs: must be an integer between 0 and 60000/)
  t.match(text, /sessions\.a\.replay\.enabled: must be true or false/)
  t.match(text, /sessions\.a\.replay\.start: must be -1 \(new events only\) or -2/)
  t.match(text, /sessions\.a\.auth: give exactly one of tokenFile, tokenCommand or tokenUrl/)
  t.match(text, /sessions\.b\.headers: remove headers\.Authorization: auth sets the Authorization header/)
  t.match(text, /sessions\.c\.auth\.clientId: required with tokenUrl/)
  t.match(text, /sessions\.c\.auth\.refreshToken: required with tokenUrl/)
  t.match(text, /sessions\.d\.auth\.refreshToken: only used with tokenUrl/)
  t.notMatch(text, /sf org display|Bearer x/, 'values are never echoed')

  const env = loadConfig({
    argv: ['--check-config'],
    env: {
      COMETD_BRIDGE_URL: 'https://acme.my.salesforce.com/cometd/59.0',
      COMETD_BRIDGE_REPLAY: 'true',
      COMETD_BRIDGE_REPLAY_START: '-2',
      COMETD_BRIDGE_ACK: 'false',
      COMETD_BRIDGE_UPSTREAM_TOKEN_FILE: '/run/secrets/sf',
      COMETD_BRIDGE_DATA_DIR: '/data',
      COMETD_BRIDGE_CHECKPOINT_INTERVAL_MS: '500'
    }
  })
  t.ok(env.ok)
  if (!env.ok) return
  t.match(env.config, { dataDir: '/data', checkpointIntervalMs: 500, sessions: { default: { replay: { enabled: true, start: -2 }, ack: false, auth: { tokenFile: '/run/secrets/sf' } } } })
})
