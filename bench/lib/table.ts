/** Tables as aligned text (terminal) and as Markdown (docs). */
import type { Table } from './suite.js'

export function textTable (table: Table): string {
  const widths = table.columns.map((c, i) => Math.max(c.length, ...table.rows.map((r) => (r[i] ?? '').length)))
  const numeric = table.columns.map((_c, i) => table.rows.every((r) => /^[-+]?[\d.,]+(\s?[%×x]|\s?ms|\s?MB)?$|^[–-]$|^n\/a$/.test(r[i] ?? '')))
  const cell = (s: string, i: number): string => numeric[i] === true ? s.padStart(widths[i]!) : s.padEnd(widths[i]!)
  const lines = [
    table.title,
    table.columns.map(cell).join('  '),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...table.rows.map((r) => r.map(cell).join('  '))
  ]
  for (const note of table.notes ?? []) lines.push(`  ${note}`)
  return lines.join('\n')
}

export function markdownTable (table: Table): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|')
  const numeric = table.columns.map((_c, i) => table.rows.every((r) => /^[-+]?[\d.,]+/.test(r[i] ?? '') || r[i] === '–'))
  const lines = [
    `| ${table.columns.map(esc).join(' | ')} |`,
    `|${table.columns.map((_c, i) => numeric[i] === true ? '---:' : '---').join('|')}|`,
    ...table.rows.map((r) => `| ${r.map(esc).join(' | ')} |`)
  ]
  return lines.join('\n')
}

/** 12345.6 → "12,346"; NaN → "–". */
export function fmtInt (x: number): string {
  return Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–'
}

export function fmt (x: number, digits = 2): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '–'
}

/** 1.234 → "1.23×" */
export function fmtRatio (x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}×` : '–'
}
