/**
 * Every relative link in README.md and docs/*.md points at a file of the repository (not above it, not at
 * something only a build or a checkout elsewhere has), and every #anchor at a heading of its page (GitHub's
 * heading ids: lower case, punctuation dropped, spaces to hyphens, -1, -2 … for repeats).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import t from 'tap'
import { ROOT } from '../server/fixtures/spawn.js'

const PAGES = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]
/** Made by builds and tests, absent from a fresh clone. */
const GENERATED = ['node_modules', 'dist', '.tap', 'coverage', 'data']

/** The text outside fenced code blocks and inline code spans (a link there is an example, not a link). */
function prose (markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '``')
}

export function links (markdown: string): string[] {
  const text = prose(markdown)
  const out: string[] = []
  for (const m of text.matchAll(/\]\(\s*(?:<([^>]+)>|([^)\s]+))(?:\s+"[^"]*")?\s*\)/g)) out.push(m[1] ?? m[2]!)
  for (const m of text.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/gm)) out.push(m[1]!)
  for (const m of text.matchAll(/<(?:a|img)\s[^>]*?(?:href|src)="([^"]+)"/g)) out.push(m[1]!)
  return out
}

export function headingIds (markdown: string): Set<string> {
  const ids = new Set<string>()
  const seen = new Map<string, number>()
  for (const m of prose(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = m[1]!.replace(/<[^>]+>/g, '').replace(/\[([^\]]*)\]\([^)]*\)/g, '$1').toLowerCase().trim()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    ids.add(n === 0 ? base : `${base}-${n}`)
  }
  // the raw text of code spans in headings is kept by GitHub: recompute those from the unstripped heading
  for (const m of markdown.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    ids.add(m[1]!.toLowerCase().trim().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-'))
  }
  return ids
}

t.test('docs - the link and heading readers', async (t) => {
  t.same(links('[a](b.md) `[c](d.md)` [e](<f g.md>) [h](i.md "title")\n```\n[j](k.md)\n```\n[l]: m.md\n<img src="n.svg">'), ['b.md', 'f g.md', 'i.md', 'm.md', 'n.svg'])
  const ids = headingIds('# Title\n## `${VAR}` substitution\n## ack (`ack: true`)\n## Same\n## Same\n')
  for (const id of ['title', 'var-substitution', 'ack-ack-true', 'same', 'same-1']) t.ok(ids.has(id), id)
})

t.test('docs - every relative link in README.md and docs/*.md resolves inside the repository', async (t) => {
  let checked = 0
  for (const page of PAGES) {
    const markdown = readFileSync(join(ROOT, page), 'utf8')
    const problems: string[] = []
    for (const link of links(markdown)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue // http:, https:, mailto:
      checked++
      const [path = '', anchor] = link.split('#')
      const target = path === '' ? join(ROOT, page) : resolve(dirname(join(ROOT, page)), decodeURIComponent(path))
      const inside = relative(ROOT, target)
      if (inside.startsWith('..') || inside === '') { problems.push(`${link}: outside the repository`); continue }
      if (GENERATED.includes(inside.split('/')[0]!)) { problems.push(`${link}: only a build or a test run makes it`); continue }
      if (!existsSync(target)) { problems.push(`${link}: no such file`); continue }
      if (anchor !== undefined && anchor !== '' && target.endsWith('.md') && !headingIds(readFileSync(target, 'utf8')).has(anchor.toLowerCase())) {
        problems.push(`${link}: no heading #${anchor} in ${inside}`)
      }
    }
    t.same(problems, [], `${page}: every link resolves`)
  }
  t.ok(checked > 40, `${checked} relative links checked in ${PAGES.length} pages`)
})
