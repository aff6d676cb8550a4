/**
 * Started through npm (`npm start`, `npx cometd-bridge`), the daemon lives as long as npm does. npm passes SIGTERM
 * on to the shell it runs the command in, and a shell that does not pass it further (`npx` runs `sh -c
 * cometd-bridge`) dies and leaves the daemon to init: an orphan nobody stops. npm marks what it starts with
 * npm_lifecycle_event; for those, a new parent pid means the launcher is gone, and the daemon stops as on SIGTERM.
 * Started any other way (systemd, a container, `nohup … &`), nothing is watched.
 */
export const LAUNCHER_POLL_MS = 500

/** Calls `onGone` once when the parent process changes; returns a function that stops watching. */
export function watchLauncher (env: NodeJS.ProcessEnv, onGone: () => void, pollMs = LAUNCHER_POLL_MS): () => void {
  if (env.npm_lifecycle_event === undefined) return () => {}
  const parent = process.ppid
  const timer = setInterval(() => {
    if (process.ppid === parent) return
    clearInterval(timer)
    onGone()
  }, pollMs)
  timer.unref()
  return () => { clearInterval(timer) }
}
