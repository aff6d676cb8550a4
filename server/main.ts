#!/usr/bin/env node
/**
 * The daemon: load the config (exit 78 when invalid), start the embedded demo upstream when no session is
 * configured, build the app, listen, reload the configuration on SIGHUP, and shut down cleanly on SIGTERM/SIGINT
 * (or when the npm that started it is gone) within shutdownTimeoutMs.
 */
import { CONFIG_EXIT_CODE, loadConfig } from '../config/index.js'
import { buildApp } from './app.js'
import type { ConfigSource } from './reload.js'
import type { Config, LoadOptions } from '../config/index.js'
import { baseUrlOf, demoBanner, startDemoUpstream, wantsDemo, withDemoSession } from './demo/demo.js'
import type { DemoUpstream } from './demo/demo.js'
import type { FastifyInstance } from 'fastify'
import { watchLauncher } from './ops/launcher.js'
import { createLogger } from './ops/logger.js'
import type { AppLogger } from './ops/logger.js'
import { releaseStartupGarbage } from './session/startup.js'

async function main (): Promise<void> {
  const options = { argv: process.argv.slice(2), env: process.env, cwd: process.cwd() }
  const loaded = loadConfig(options)
  if (!loaded.ok) {
    process.stderr.write(ensureNewline(loaded.text))
    process.exitCode = CONFIG_EXIT_CODE
    return
  }
  if (loaded.action !== 'run') {
    process.stdout.write(ensureNewline(loaded.text ?? ''))
    process.exitCode = 0
    return
  }
  let config: Config = loaded.config
  const logger = createLogger(config.logLevel)
  process.on('unhandledRejection', (err) => { logger.error({ err }, 'unhandled rejection') })

  let demo: DemoUpstream | null = null
  if (wantsDemo(config)) {
    demo = await startDemoUpstream({ host: '127.0.0.1', port: 0 })
    config = withDemoSession(config, demo.url)
    logger.info({ url: demo.url }, 'embedded demo upstream started')
  }

  let app: Awaited<ReturnType<typeof buildApp>>
  try {
    app = await buildApp(config, { logger, reloadSource: reloadSource(options, demo) })
  } catch (err) {
    // a Redis the cluster cannot use (unreachable, may evict keys): refused with its reason, not a stack
    if (!(err instanceof Error) || err.name !== 'ClusterError') throw err
    logger.fatal({ code: (err as Error & { code?: string }).code }, err.message)
    process.stderr.write(`cometd-bridge: ${err.message}\n`)
    await demo?.close()
    process.exit(1)
  }
  try {
    await app.listen({ host: config.listen.host, port: config.listen.port })
  } catch (err) {
    logger.fatal({ err }, 'cannot listen')
    await app.close().catch(() => {})
    await demo?.close()
    process.exit(1)
  }
  const addr = app.server.address()
  const port = typeof addr === 'object' && addr !== null ? addr.port : config.listen.port
  logger.info({ host: config.listen.host, port, sessions: Object.keys(config.sessions), console: `${baseUrlOf(config.listen.host, port)}/` }, 'cometd-bridge listening')
  if (demo !== null) process.stderr.write(demoBanner(baseUrlOf(config.listen.host, port)))
  // the start-up burst's garbage would stay in the old space of an idle daemon: collect it once
  void app.bridge.started.then(async () => {
    const gc = await releaseStartupGarbage(1_000, () => app.bridge.draining)
    if (gc !== null) logger.debug(gc, 'start-up garbage collected')
  })

  stopOnSignals(app, demo, config.shutdownTimeoutMs, logger)
}

/** SIGTERM/SIGINT: a graceful stop within shutdownTimeoutMs (exit 0 either way); a second signal exits at once. */
function stopOnSignals (app: FastifyInstance, demo: DemoUpstream | null, shutdownTimeoutMs: number, logger: AppLogger): void {
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now')
      process.exit(0)
    }
    stopping = true
    const started = Date.now()
    logger.info({ signal, shutdownTimeoutMs }, 'shutting down')
    const deadline = setTimeout(() => {
      logger.error({ elapsedMs: Date.now() - started }, 'shutdown deadline reached: exiting anyway')
      process.exit(0)
    }, Math.max(100, shutdownTimeoutMs - 100))
    deadline.unref()
    app.bridge.beginShutdown()
    void (async () => {
      try {
        await app.close()
        await demo?.close()
      } catch (err) {
        logger.error({ err }, 'error during shutdown')
      }
      logger.info({ elapsedMs: Date.now() - started }, 'shutdown complete')
      process.exit(0)
    })()
  }
  process.on('SIGHUP', () => { if (!stopping) void app.bridge.reload('SIGHUP') })
  process.on('SIGTERM', () => { stop('SIGTERM') })
  process.on('SIGINT', () => { stop('SIGINT') })
  watchLauncher(process.env, () => { stop('launcher exited') })
}

/** A reload reads the configuration as start-up did (same flags, environment, directory); the demo stays in place. */
function reloadSource (options: LoadOptions, demo: DemoUpstream | null): ConfigSource {
  return () => {
    const loaded = loadConfig(options)
    if (!loaded.ok) return loaded
    return { ok: true, config: demo !== null && wantsDemo(loaded.config) ? withDemoSession(loaded.config, demo.url) : loaded.config }
  }
}

function ensureNewline (text: string): string {
  return text === '' || text.endsWith('\n') ? text : text + '\n'
}

main().catch((err: unknown) => {
  process.stderr.write(`cometd-bridge: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exit(1)
})
