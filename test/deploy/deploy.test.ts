/**
 * The deployment examples: the Grafana dashboard (deploy/grafana/cometd-bridge.json) names only metrics and labels
 * a real bridge (server/main.ts, a child process in front of a real faye, with a caller, a publish and a call)
 * exposes at /metrics; the Kubernetes example (deploy/kubernetes/) parses, runs the bridge as a sidecar next to
 * an app container with probes on /healthz and /readyz, its config from a ConfigMap (valid for the bridge's own
 * loader) and its tokens from a Secret.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parseAllDocuments, parse as parseYaml } from 'yaml'
import { parseConfigObject } from '../../config/index.js'
import { startFaye } from '../helpers/faye.js'
import { waitFor } from '../helpers/wait.js'
import { openSse, request } from '../server/fixtures/bridge.js'
import { ROOT, spawnNode } from '../server/fixtures/spawn.js'

const TOKEN = 'deploy-test-token-0123456789abcdef'
/** labels Prometheus adds to every scraped series, and the histogram bucket label */
const SCRAPE_LABELS = new Set(['job', 'instance', 'le'])

interface Exposition { names: Set<string>, labels: Map<string, Set<string>> }

/** Metric names a /metrics text declares (`# TYPE`, histograms with their series) and the labels their samples carry. */
function parseExposition (text: string): Exposition {
  const names = new Set<string>()
  const labels = new Map<string, Set<string>>()
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (type !== null) {
      const [, name, kind] = type as unknown as [string, string, string]
      names.add(name)
      if (kind === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix)
      if (kind === 'summary') for (const suffix of ['_sum', '_count']) names.add(name + suffix)
      continue
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? /.exec(line)
    if (sample === null) continue
    const set = labels.get(sample[1]!) ?? new Set<string>()
    for (const m of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) set.add(m[1]!)
    labels.set(sample[1]!, set)
  }
  return { names, labels }
}

interface Dashboard { uid: string, title: string, panels: Array<Record<string, any>>, templating: { list: Array<Record<string, any>> } }

function dashboardExprs (dashboard: Dashboard): string[] {
  const exprs: string[] = []
  for (const panel of dashboard.panels) for (const target of panel.targets ?? []) exprs.push(String(target.expr))
  for (const variable of dashboard.templating.list) if (typeof variable.query?.query === 'string') exprs.push(variable.query.query)
  return exprs
}

/** Label names an expression uses: `by (…)`, selectors `{l=…}`, `label_values(…, l)`. */
function exprLabels (expr: string): string[] {
  const out: string[] = []
  for (const m of expr.matchAll(/\bby \(([^)]*)\)/g)) out.push(...m[1]!.split(',').map((s) => s.trim()).filter((s) => s !== ''))
  for (const m of expr.matchAll(/\{([^}]*)\}/g)) for (const l of m[1]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*=~?/g)) out.push(l[1]!)
  for (const m of expr.matchAll(/label_values\([^,]*,\s*([a-zA-Z_]+)\)/g)) out.push(m[1]!)
  return out
}

t.test('deploy - the Grafana dashboard names only metrics and labels a real bridge exposes', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const dir = mkdtempSync(join(tmpdir(), 'deploy-test-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const configFile = join(dir, 'bridge.json')
  writeFileSync(configFile, JSON.stringify({
    listen: { host: '127.0.0.1', port: 0 },
    sessions: { orders: { url: faye.url, subscribe: ['/orders/**'] } },
    http: { callTimeoutMs: 300 },
    auth: { tokens: [{ name: 'all', token: TOKEN, sessions: ['*'], subscribe: ['/**'], publish: ['/**'], metrics: true }] }
  }))
  const child = spawnNode(t, 'server/main.ts', ['--config', configFile], { COMETD_BRIDGE_DEMO: 'false' })
  const base = `http://127.0.0.1:${await child.port()}`
  const auth = { Authorization: `Bearer ${TOKEN}` }
  await waitFor(async () => (await request(`${base}/readyz`)).status === 200, { timeoutMs: 15_000, message: () => 'bridge ready' })
  const sse = await openSse(t, `${base}/sessions/orders/events?channel=/orders/x`, auth)
  t.equal(sse.status, 200)
  t.equal((await request(`${base}/sessions/orders/publish/orders/x`, { method: 'POST', headers: auth, body: '{"n":1}' })).status, 200)
  await sse.waitEvent((e) => e.event === 'message')
  // faye has no /service request-response: the call times out, which is an observation of the call histogram too
  await request(`${base}/sessions/orders/call/service/echo`, { method: 'POST', headers: auth, body: '1' })
  const metrics = await request(`${base}/metrics`, { headers: auth })
  t.equal(metrics.status, 200)
  const exposed = parseExposition(metrics.text)

  const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/cometd-bridge.json'), 'utf8')) as Dashboard
  const exprs = dashboardExprs(dashboard)
  const named = new Set(exprs.flatMap((e) => [...e.matchAll(/\bcometd_bridge_[a-z0-9_]+/g)].map((m) => m[0])))
  t.ok(named.size >= 15, `the dashboard names ${named.size} metrics`)
  const missing = [...named].filter((n) => !exposed.names.has(n))
  t.same(missing, [], 'every metric the dashboard names is in /metrics')

  for (const expr of exprs) {
    const metricsOf = [...expr.matchAll(/\bcometd_bridge_[a-z0-9_]+/g)].map((m) => m[0])
    const known = metricsOf.map((m) => exposed.labels.get(m)).filter((s): s is Set<string> => s !== undefined)
    if (known.length === 0) continue // no samples yet (e.g. no slow caller was dropped): the name check above covers it
    const available = new Set(known.flatMap((s) => [...s]))
    const unknown = exprLabels(expr).filter((l) => !SCRAPE_LABELS.has(l) && !available.has(l))
    t.same(unknown, [], `labels of ${expr.slice(0, 90)}`)
  }
  for (const wanted of ['cometd_bridge_upstream_state', 'cometd_bridge_callers', 'cometd_bridge_events_out_total', 'cometd_bridge_caller_queue_bytes',
    'cometd_bridge_slow_caller_drops_total', 'cometd_bridge_upstream_reconnects_total', 'cometd_bridge_publish_duration_seconds_bucket']) {
    t.ok(named.has(wanted), `a panel over ${wanted}`)
  }
})

t.test('deploy - the dashboard JSON is importable: unique ids, a 24-column grid, the datasource variable everywhere', async (t) => {
  const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/cometd-bridge.json'), 'utf8')) as Dashboard
  t.equal(dashboard.uid, 'cometd-bridge')
  const ids = dashboard.panels.map((p) => p.id as number)
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  for (const p of dashboard.panels) {
    t.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `${String(p.title)}: within the grid`)
    if (p.type === 'row') continue
    t.ok((p.targets ?? []).length > 0, `${String(p.title)}: has queries`)
    t.equal(p.datasource?.uid, '${datasource}', `${String(p.title)}: uses the datasource variable`)
  }
  t.same(dashboard.templating.list.map((v) => v.name), ['datasource', 'job', 'session'])
})

type K8s = Record<string, any>

function manifests (): K8s[] {
  const dir = join(ROOT, 'deploy/kubernetes')
  const docs: K8s[] = []
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`)
      docs.push({ ...(doc.toJS() as K8s), __file: file })
    }
  }
  return docs
}

t.test('deploy - the Kubernetes example: a sidecar with probes, config from a ConfigMap, tokens from a Secret', async (t) => {
  const docs = manifests()
  const kinds = (kind: string): K8s[] => docs.filter((d) => d.kind === kind)
  const kustomization = kinds('Kustomization')[0]!
  t.same([...kustomization.resources].sort(), docs.filter((d) => d.kind !== 'Kustomization').map((d) => d.__file).sort(), 'kustomization lists every manifest')

  const deployment = kinds('Deployment')[0]!
  const pod = deployment.spec.template.spec
  t.same(deployment.spec.selector.matchLabels, Object.fromEntries(Object.entries(deployment.spec.template.metadata.labels).filter(([k]) => k in deployment.spec.selector.matchLabels)), 'the selector matches the pod labels')
  const bridge = pod.containers.find((c: K8s) => c.name === 'cometd-bridge')
  const apps = pod.containers.filter((c: K8s) => c.name !== 'cometd-bridge')
  t.ok(bridge !== undefined, 'a cometd-bridge container')
  t.equal(apps.length, 1, 'next to one app container (a sidecar)')
  t.match(apps[0].env.find((e: K8s) => e.name === 'BRIDGE_URL')?.value, /^http:\/\/127\.0\.0\.1:8080$/, 'the app reaches the bridge on localhost')

  const port = bridge.ports.find((p: K8s) => p.name === bridge.readinessProbe.httpGet.port)
  t.equal(bridge.readinessProbe.httpGet.path, '/readyz', 'readiness: /readyz')
  t.equal(bridge.livenessProbe.httpGet.path, '/healthz', 'liveness: /healthz')
  t.equal(bridge.livenessProbe.httpGet.port, port.name)
  t.equal(port.containerPort, 8080)

  const configMap = kinds('ConfigMap')[0]!
  const volume = pod.volumes.find((v: K8s) => v.configMap?.name === configMap.metadata.name)
  t.ok(volume !== undefined, 'a volume from the ConfigMap')
  const mount = bridge.volumeMounts.find((m: K8s) => m.name === volume.name)
  const configArg = bridge.args[bridge.args.indexOf('--config') + 1] as string
  t.equal(configArg, `${mount.mountPath as string}/config.yaml`, '--config points into the mounted ConfigMap')
  t.ok('config.yaml' in configMap.data)

  const secret = kinds('Secret')[0]!
  const fromSecret = new Map<string, string>()
  for (const c of pod.containers) {
    for (const e of c.env ?? []) {
      const ref = e.valueFrom?.secretKeyRef
      if (ref === undefined) continue
      t.equal(ref.name, secret.metadata.name, `${c.name as string} ${e.name as string}: from the Secret`)
      t.ok(ref.key in secret.stringData, `${ref.key as string} is a key of the Secret`)
      if (c.name === 'cometd-bridge') fromSecret.set(e.name, secret.stringData[ref.key])
    }
  }
  const configText = configMap.data['config.yaml'] as string
  const used = [...configText.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]!)
  t.ok(used.length >= 2, `the config takes ${used.join(', ')} from the environment`)
  t.same(used.filter((v) => !fromSecret.has(v)), [], 'every ${VAR} of the config comes from the Secret')
  t.notOk(Object.values(secret.stringData).some((v) => configText.includes(v as string)), 'no secret value in the ConfigMap')

  const parsed = parseConfigObject(parseYaml(configText), Object.fromEntries(fromSecret))
  t.ok(parsed.ok, `the bridge's loader accepts the ConfigMap's config${parsed.ok ? '' : `: ${JSON.stringify(parsed.errors)}`}`)
  if (parsed.ok) {
    t.equal(parsed.config.listen.port, port.containerPort, 'it listens on the container port')
    t.ok(parsed.config.shutdownTimeoutMs < pod.terminationGracePeriodSeconds * 1000, 'its shutdown fits the grace period')
    t.ok(parsed.config.auth.tokens.length > 0, 'non-loopback listener with tokens')
  }
  t.equal(bridge.securityContext.runAsUser, 1000, 'the image\'s numeric user (runAsNonRoot can check it)')
  t.equal(bridge.securityContext.readOnlyRootFilesystem, true)
})
