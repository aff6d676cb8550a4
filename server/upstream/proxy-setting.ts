/**
 * A session's `proxy` setting (config `sessions.*.proxy`, docs/configuration.md) as client-core's `proxy` option:
 * absent or `env` follows HTTPS_PROXY / HTTP_PROXY / NO_PROXY, `none` connects directly, anything else is the
 * proxy's URL. Dynamic sessions have no setting: they follow the environment.
 */
export function clientProxy (setting: string | undefined): string | false {
  if (setting === undefined || setting === 'env') return 'env'
  if (setting === 'none') return false
  return setting
}
