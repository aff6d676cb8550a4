/**
 * POST /sessions/:name/publish/<channel path> — body = the JSON data; answers the server's reply.
 * POST /sessions/:name/call/service/<path> — request/reply over a /service channel (client-core remoteCall).
 */
import type { FastifyPluginAsync } from 'fastify'
import { requestChannels } from '../channel-rules.js'
import { channelPathParams, getSession, requireBody } from './common.js'

interface ChannelRoute { Params: { name: string, '*': string } }

export const publishRoutes: FastifyPluginAsync = async (app) => {
  app.post<ChannelRoute>('/sessions/:name/publish/*', {
    config: { access: 'session', channels: 'publish' },
    schema: { params: channelPathParams, summary: 'Publish the JSON body on a channel upstream', tags: ['publish'] }
  }, async (req) => {
    const session = getSession(app, req.params.name)
    const [channel] = requestChannels(req)
    const reply = await session.publish(channel!, requireBody(req.body), app.bridge.config.http.publishTimeoutMs)
    return { successful: reply.successful ?? true, channel: reply.channel, id: reply.id ?? null }
  })

  app.post<ChannelRoute>('/sessions/:name/call/*', {
    config: { access: 'session', channels: 'call' },
    schema: { params: channelPathParams, summary: 'Call a /service channel upstream and answer its reply', tags: ['publish'] }
  }, async (req, reply) => {
    const session = getSession(app, req.params.name)
    const [channel] = requestChannels(req)
    const result = await session.call(channel!, requireBody(req.body), app.bridge.config.http.callTimeoutMs)
    // the reply's data as the body, whatever JSON it is (null when the reply had none)
    return reply.type('application/json; charset=utf-8').send(JSON.stringify(result === undefined ? null : result))
  })
}
