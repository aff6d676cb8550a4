/**
 * A dependency-free SVG line chart for the bench results (e.g. fan-out deliveries/s against N for the bridge and
 * bare Node). Log-scale x for sizes like 100 / 1,000 / 10,000.
 *
 *   writeFileSync(file, lineChart({ title, xLabel: 'callers', yLabel: 'deliveries/s', logX: true,
 *     series: [{ name: 'bridge', points: [[100, 9e4], [1000, 8e4]] }, { name: 'bare node', points: [...] }] }))
 */
export interface Series { name: string, points: Array<[number, number]> }
export interface ChartOptions {
  title: string
  xLabel: string
  yLabel: string
  series: Series[]
  logX?: boolean
  width?: number
  height?: number
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b']

function esc (s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

function niceTicks (max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1]
  const raw = max / count
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw
  const ticks: number[] = []
  for (let v = 0; v <= max * 1.0001 + step; v += step) {
    ticks.push(v)
    if (v >= max) break
  }
  return ticks
}

function label (v: number): string {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(2)}M`
  if (v >= 1e3) return `${+(v / 1e3).toFixed(2)}k`
  return `${+v.toFixed(2)}`
}

export function lineChart (o: ChartOptions): string {
  const W = o.width ?? 720
  const H = o.height ?? 420
  const m = { l: 80, r: 170, t: 40, b: 60 }
  const pw = W - m.l - m.r
  const ph = H - m.t - m.b
  const all = o.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
  const xs = all.map(([x]) => x)
  const xMin = Math.min(...xs)
  const xMax = Math.max(...xs)
  const yTicks = niceTicks(Math.max(...all.map(([, y]) => y), 0))
  const yMax = yTicks[yTicks.length - 1]!
  const fx = (x: number): number => {
    if (xMax === xMin) return m.l + pw / 2
    if (o.logX === true) return m.l + ((Math.log10(x) - Math.log10(xMin)) / (Math.log10(xMax) - Math.log10(xMin))) * pw
    return m.l + ((x - xMin) / (xMax - xMin)) * pw
  }
  const fy = (y: number): number => m.t + ph - (y / yMax) * ph
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l + pw / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`
  ]
  for (const t of yTicks) {
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${fy(t)}" y2="${fy(t)}" stroke="#ddd"/>`,
      `<text x="${m.l - 6}" y="${fy(t) + 4}" text-anchor="end">${label(t)}</text>`)
  }
  for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
    out.push(`<line x1="${fx(x)}" x2="${fx(x)}" y1="${m.t}" y2="${m.t + ph}" stroke="#eee"/>`,
      `<text x="${fx(x)}" y="${m.t + ph + 18}" text-anchor="middle">${label(x)}</text>`)
  }
  out.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + ph}" stroke="#333"/>`,
    `<line x1="${m.l}" x2="${m.l + pw}" y1="${m.t + ph}" y2="${m.t + ph}" stroke="#333"/>`,
    `<text x="${m.l + pw / 2}" y="${H - 18}" text-anchor="middle">${esc(o.xLabel)}${o.logX === true ? ' (log scale)' : ''}</text>`,
    `<text transform="translate(18 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`)
  o.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).sort((a, b) => a[0] - b[0])
    if (pts.length > 1) out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map(([x, y]) => `${fx(x).toFixed(1)},${fy(y).toFixed(1)}`).join(' ')}"/>`)
    for (const [x, y] of pts) out.push(`<circle cx="${fx(x).toFixed(1)}" cy="${fy(y).toFixed(1)}" r="3.5" fill="${color}"><title>${esc(s.name)}: ${label(x)} → ${label(y)}</title></circle>`)
    const ly = m.t + 10 + i * 20
    out.push(`<line x1="${m.l + pw + 15}" x2="${m.l + pw + 35}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${m.l + pw + 40}" y="${ly + 4}">${esc(s.name)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
