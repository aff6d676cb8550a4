/**
 * Durable replay checkpoints: the last replay position per channel of one session, in one small JSON file under
 * the data directory (`<dataDir>/<session>.checkpoint.json`).
 *
 * - A position is recorded only after its message reached the session's ring buffer (the session calls `set()`
 *   from its fan-out), so a restarted bridge never skips a message it had not taken in.
 * - Writes are coalesced: at most one every `intervalMs` (default 200 ms), plus a final one on shutdown. A crash
 *   (`kill -9`) loses at most the last interval of positions: those messages are replayed again by the upstream.
 * - Every write is atomic: a temporary file in the same directory, fsync, rename over the old file, fsync of the
 *   directory. A reader sees the old file or the new one, never a torn one; a stale temporary file is ignored.
 * - The file records the upstream URL (without credentials or query): positions of another upstream (another
 *   org) are meaningless, so a file written for a different URL is ignored with a warning, never sent upstream.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, unlinkSync, writeSync } from 'node:fs'
import { open, rename, unlink, mkdir } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import type { Logger, ReplayPosition } from '../../client-core/index.js'

export const CHECKPOINT_VERSION = 1

export interface CheckpointFile {
  version: number
  session: string
  url: string
  updatedAt: string
  positions: Record<string, ReplayPosition>
}

export type LoadStatus = 'loaded' | 'missing' | 'ignored' | 'corrupt'

export interface LoadResult {
  status: LoadStatus
  positions: Record<string, ReplayPosition>
  /** why the file was not used (ignored / corrupt) */
  reason?: string
}

export interface CheckpointOptions {
  dataDir: string
  session: string
  /** the upstream URL, already without credentials and query values */
  url: string
  intervalMs: number
  log: Logger
}

export interface CheckpointView {
  file: string
  loaded: LoadStatus
  loadReason: string | null
  writes: number
  lastWriteAt: string | null
  /** how long the last write took (fsync included): on a busy disk, how far the checkpoint can lag */
  lastWriteMs: number | null
  pending: boolean
  error: string | null
}

/** `<dataDir>/<session>.checkpoint.json`, absolute. Session names are `[A-Za-z0-9_-]{1,64}`, safe as file names. */
export function checkpointPath (dataDir: string, session: string): string {
  return join(resolve(dataDir), `${session}.checkpoint.json`)
}

function isPosition (v: unknown): v is ReplayPosition {
  return (typeof v === 'number' && Number.isSafeInteger(v)) || (typeof v === 'string' && v.length > 0 && v.length <= 256)
}

export class CheckpointStore {
  readonly file: string
  readonly #o: CheckpointOptions
  readonly #positions = new Map<string, ReplayPosition>()
  #dirty = false
  #timer: NodeJS.Timeout | null = null
  #writing: Promise<void> | null = null
  #lastWriteAt = 0
  #lastWriteMs: number | null = null
  #writingSince = 0
  #writes = 0
  #error: string | null = null
  #errorLoggedAt = 0
  #closed = false
  #loaded: LoadStatus = 'missing'
  #loadReason: string | null = null

  constructor (options: CheckpointOptions) {
    this.#o = options
    this.file = checkpointPath(options.dataDir, options.session)
  }

  /** Reads the file (synchronously: once, at start-up). Never throws. */
  load (): LoadResult {
    const result = this.#read()
    this.#loaded = result.status
    this.#loadReason = result.reason ?? null
    for (const [channel, position] of Object.entries(result.positions)) this.#positions.set(channel, position)
    this.#removeStaleTemps()
    return result
  }

  #read (): LoadResult {
    let text: string
    try {
      text = readFileSync(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { status: 'missing', positions: {} }
      const reason = `cannot read ${this.file}: ${(err as Error).message}`
      this.#o.log.error({ file: this.file, err }, 'replay checkpoint unreadable: starting from the start policy')
      return { status: 'corrupt', positions: {}, reason }
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (err) {
      const reason = `invalid JSON: ${(err as Error).message}`
      this.#o.log.error({ file: this.file, reason }, 'replay checkpoint corrupt: starting from the start policy')
      return { status: 'corrupt', positions: {}, reason }
    }
    const f = parsed as Partial<CheckpointFile>
    if (typeof f !== 'object' || f === null || f.version !== CHECKPOINT_VERSION || typeof f.positions !== 'object' || f.positions === null) {
      const reason = `not a version ${CHECKPOINT_VERSION} checkpoint`
      this.#o.log.error({ file: this.file, reason }, 'replay checkpoint corrupt: starting from the start policy')
      return { status: 'corrupt', positions: {}, reason }
    }
    if (f.url !== this.#o.url) {
      const reason = `written for another upstream (${String(f.url)}); positions of another server are meaningless`
      this.#o.log.warn({ file: this.file, url: f.url, configured: this.#o.url }, 'replay checkpoint ignored: the session URL changed')
      return { status: 'ignored', positions: {}, reason }
    }
    const positions: Record<string, ReplayPosition> = {}
    for (const [channel, position] of Object.entries(f.positions)) {
      if (typeof channel === 'string' && channel.startsWith('/') && isPosition(position)) positions[channel] = position
    }
    this.#o.log.info({ file: this.file, channels: Object.keys(positions).length, updatedAt: f.updatedAt }, 'replay checkpoint loaded')
    return { status: 'loaded', positions }
  }

  /** Temporary files of an interrupted write (a crash between write and rename) are garbage. */
  #removeStaleTemps (): void {
    const dir = dirname(this.file)
    const prefix = `${basename(this.file)}.`
    let names: string[]
    try {
      names = readdirSync(dir)
    } catch {
      return
    }
    for (const name of names) {
      if (name.startsWith(prefix) && name.endsWith('.tmp')) {
        try { unlinkSync(join(dir, name)) } catch {}
      }
    }
  }

  /** Every position known (loaded, then updated). */
  get positions (): ReadonlyMap<string, ReplayPosition> { return this.#positions }

  /** Records a position (its message is in the ring) and schedules a coalesced write. */
  set (channel: string, position: ReplayPosition): void {
    if (this.#closed) return
    if (this.#positions.get(channel) === position) return
    this.#positions.set(channel, position)
    this.#dirty = true
    this.#schedule(this.#o.intervalMs)
  }

  #schedule (minGapMs: number): void {
    if (this.#timer !== null || this.#writing !== null || this.#closed) return
    const wait = Math.max(0, this.#lastWriteAt + minGapMs - Date.now())
    this.#timer = setTimeout(() => {
      this.#timer = null
      void this.flush()
    }, wait)
    this.#timer.unref()
  }

  /** Writes now if anything changed since the last write (one write at a time). */
  async flush (): Promise<void> {
    if (this.#writing !== null) {
      await this.#writing
      if (!this.#dirty) return
    }
    if (!this.#dirty) return
    if (this.#timer !== null) { clearTimeout(this.#timer); this.#timer = null }
    this.#dirty = false
    const snapshot: CheckpointFile = {
      version: CHECKPOINT_VERSION,
      session: this.#o.session,
      url: this.#o.url,
      updatedAt: new Date().toISOString(),
      positions: Object.fromEntries(this.#positions)
    }
    this.#writingSince = Date.now()
    this.#writing = this.#write(snapshot).then(() => {
      this.#writes++
      this.#lastWriteAt = Date.now()
      this.#lastWriteMs = this.#lastWriteAt - this.#writingSince
      if (this.#error !== null) this.#o.log.info({ file: this.file }, 'replay checkpoint writable again')
      this.#error = null
    }, (err: unknown) => {
      this.#dirty = true // retried at the next interval
      this.#lastWriteAt = Date.now()
      this.#error = (err as Error).message
      if (Date.now() - this.#errorLoggedAt > 60_000) {
        this.#errorLoggedAt = Date.now()
        this.#o.log.error({ file: this.file, err }, 'replay checkpoint write failed (retrying; a restart would replay from the last written positions)')
      }
    }).finally(() => {
      this.#writing = null
      if (this.#dirty && !this.#closed) this.#schedule(this.#error !== null ? Math.max(this.#o.intervalMs, 1_000) : this.#o.intervalMs)
    })
    await this.#writing
  }

  async #write (snapshot: CheckpointFile): Promise<void> {
    const dir = dirname(this.file)
    await mkdir(dir, { recursive: true })
    const tmp = `${this.file}.${process.pid}.${Date.now().toString(36)}.tmp`
    const handle = await open(tmp, 'w', 0o600)
    try {
      await handle.writeFile(JSON.stringify(snapshot, null, 2) + '\n', 'utf8')
      await handle.sync()
    } finally {
      await handle.close()
    }
    try {
      await rename(tmp, this.file)
    } catch (err) {
      await unlink(tmp).catch(() => {})
      throw err
    }
    // the rename itself is durable only once the directory entry is on disk
    try {
      const d = await open(dir, 'r')
      try { await d.sync() } finally { await d.close() }
    } catch {}
  }

  /** Final write (shutdown); later `set()` calls are ignored. */
  async close (): Promise<void> {
    if (this.#timer !== null) { clearTimeout(this.#timer); this.#timer = null }
    await this.flush()
    this.#closed = true
  }

  view (): CheckpointView {
    return {
      file: this.file,
      loaded: this.#loaded,
      loadReason: this.#loadReason,
      writes: this.#writes,
      lastWriteAt: this.#lastWriteAt === 0 ? null : new Date(this.#lastWriteAt).toISOString(),
      lastWriteMs: this.#lastWriteMs,
      pending: this.#dirty || this.#writing !== null,
      error: this.#error
    }
  }
}

/**
 * Fails fast at start-up when the data directory cannot hold checkpoints (created if missing; a probe file is
 * written, synced and removed). Synchronous: called while the app is built.
 */
export function checkDataDir (dataDir: string): void {
  const dir = resolve(dataDir)
  try {
    mkdirSync(dir, { recursive: true })
    const probe = join(dir, `.probe-${process.pid}.tmp`)
    const fd = openSync(probe, 'w', 0o600)
    try {
      writeSync(fd, 'ok')
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    unlinkSync(probe)
  } catch (err) {
    throw new Error(`dataDir ${dir} cannot hold replay checkpoints (sessions with replay.enabled): ${(err as Error).message}`, { cause: err })
  }
}
