/**
 * Where a JSON text is wrong, without quoting it: V8's JSON.parse messages quote the text around the error
 * (`Unexpected token 'S', ..."{"token": SECRETSECR"... is not valid JSON`), which would print the start of a
 * mistyped secret into CI logs. A small RFC 8259 scanner finds the offset instead.
 */

const WS = new Set([' ', '\t', '\n', '\r'])
const NUMBER_RE = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y
// eslint-disable-next-line no-control-regex
const STRING_RE = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y
/** Deeper nesting is reported as an error there (a config never nests this deep). */
const MAX_DEPTH = 512

/** The offset of the first syntax error of `text`, or -1 when it is one valid JSON value. */
export function jsonErrorOffset (text: string): number {
  let i = 0
  const skip = (): void => { while (i < text.length && WS.has(text[i]!)) i++ }
  const sticky = (re: RegExp): boolean => {
    re.lastIndex = i
    if (!re.test(text)) return false
    i = re.lastIndex
    return true
  }
  /** One value at i; false (i at the error) when there is none. Containers are followed with an explicit stack. */
  const scan = (): boolean => {
    const stack: string[] = []
    for (;;) {
      skip()
      const c = text[i]
      if (c === '{' || c === '[') {
        if (stack.length >= MAX_DEPTH) return false
        stack.push(c === '{' ? '}' : ']')
        i++
        skip()
        if (text[i] !== stack[stack.length - 1]) {
          if (!member(stack)) return false
          continue // the first value of the container
        }
        i++ // an empty container is a value
        stack.pop()
      } else if (!(sticky(STRING_RE) || sticky(NUMBER_RE) || literal())) {
        return false
      }
      // after a value: `,` and the next member, or the end of containers
      for (;;) {
        if (stack.length === 0) return true
        skip()
        if (text[i] === ',') { i++; if (!member(stack)) return false; break }
        if (text[i] !== stack[stack.length - 1]) return false
        i++
        stack.pop()
      }
    }
  }
  /** In an object, a member starts with `"key" :`; in an array, nothing to read before the value. */
  const member = (stack: string[]): boolean => {
    if (stack[stack.length - 1] !== '}') return true
    skip()
    if (!sticky(STRING_RE)) return false
    skip()
    if (text[i] !== ':') return false
    i++
    return true
  }
  const literal = (): boolean => {
    for (const word of ['true', 'false', 'null']) {
      if (text.startsWith(word, i)) { i += word.length; return true }
    }
    return false
  }
  if (!scan()) return i
  skip()
  return i < text.length ? i : -1
}

/** `at line 3, column 12` of the first syntax error (1-based), or `at the end` when the text stops short. */
export function jsonErrorPlace (text: string): string {
  const offset = Math.max(0, jsonErrorOffset(text))
  if (offset >= text.length) return 'at the end (the text stops short)'
  const before = text.slice(0, offset)
  const line = before.split('\n').length
  const column = offset - before.lastIndexOf('\n')
  return `at line ${line}, column ${column}`
}
