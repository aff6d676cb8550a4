/*
 * cometd-bridge console: sessions and their live state, a subscription watched through the browser's own
 * EventSource (which resumes with Last-Event-ID by itself), a publish form and the last errors.
 *
 * The token (when the bridge needs one) is passed to start() by the login page and kept in this closure only.
 * EventSource cannot send headers: with a token it uses ?access_token= when the bridge allows it
 * (auth.allowQueryToken), otherwise it reads the stream with fetch() and sends Last-Event-ID itself.
 * Everything that comes from the bridge is shown with textContent, never as HTML.
 */
(function () {
  'use strict'

  const MAX_EVENTS = 300
  const MAX_ERRORS = 20

  function el (tag, attrs, text) {
    const node = document.createElement(tag)
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v)
    if (text !== undefined) node.textContent = text
    return node
  }

  const SKELETON = `
<header><h1>cometd-bridge</h1><span class="who" id="who"></span></header>
<main>
  <section class="wide">
    <h2>Sessions</h2>
    <table id="sessions"><thead><tr><th>Name</th><th>State</th><th>Ready</th><th>Type</th><th>Callers</th><th>Last event id</th><th>Last error</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Subscribe</h2>
    <form id="sub-form">
      <select id="sub-session" aria-label="session"></select>
      <input id="sub-channel" type="text" value="/demo/ticks" aria-label="channel" spellcheck="false">
      <button id="sub-start" type="submit">Subscribe</button>
      <button id="sub-stop" type="button">Stop</button>
    </form>
    <div class="status">stream: <span id="stream-status">idle</span> · mode: <span id="stream-mode">-</span> ·
      opened <span id="stream-opens">0</span>× · last id <span id="stream-last-id" class="mono">-</span></div>
    <ol class="events" id="events"></ol>
  </section>
  <section>
    <h2>Publish</h2>
    <form id="pub-form">
      <select id="pub-session" aria-label="session"></select>
      <input id="pub-channel" type="text" value="/demo/chat" aria-label="channel" spellcheck="false">
      <textarea id="pub-data" aria-label="data" spellcheck="false">{"text":"hello from the console"}</textarea>
      <button id="pub-send" type="submit">Publish</button>
    </form>
    <div class="status">result: <span id="pub-result" class="mono">-</span></div>
    <h2 class="spaced">Last errors</h2>
    <ol class="errors" id="errors"></ol>
  </section>
</main>`

  function start (options) {
    const token = options && options.token ? String(options.token) : null
    document.body.innerHTML = SKELETON
    const $ = (id) => document.getElementById(id)
    let settings = { authRequired: false, allowQueryToken: false }
    let stream = null

    function headers (extra) {
      const h = Object.assign({}, extra || {})
      if (token !== null) h.Authorization = 'Bearer ' + token
      return h
    }

    function reportError (text) {
      const list = $('errors')
      const item = el('li', {}, new Date().toLocaleTimeString() + ' ' + text)
      list.insertBefore(item, list.firstChild)
      while (list.children.length > MAX_ERRORS) list.removeChild(list.lastChild)
    }

    async function api (path, init) {
      const res = await fetch(path, Object.assign({ cache: 'no-store' }, init || {}, { headers: headers((init || {}).headers) }))
      const text = await res.text()
      let body = null
      try { body = JSON.parse(text) } catch (e) { body = text }
      if (!res.ok) {
        const message = body && body.error ? body.error + ': ' + body.message : 'HTTP ' + res.status
        throw Object.assign(new Error(message), { status: res.status, body: body })
      }
      return body
    }

    // ---- sessions
    const seenSessionErrors = new Map()
    async function refreshSessions () {
      let list
      try {
        list = (await api('/sessions')).sessions
      } catch (err) {
        reportError('GET /sessions: ' + err.message)
        return
      }
      const tbody = $('sessions').querySelector('tbody')
      tbody.textContent = ''
      for (const s of list) {
        const row = el('tr', { 'data-session': s.name })
        row.appendChild(el('td', { class: 'name' }, s.name))
        row.appendChild(el('td', { class: 'state ' + (s.state === 'connected' ? 'state-connected' : 'state-other') }, s.state))
        row.appendChild(el('td', { class: 'ready' }, s.ready ? 'yes' : 'no' + (s.notReadyReason ? ' (' + s.notReadyReason + ')' : '')))
        row.appendChild(el('td', {}, s.connectionType || '-'))
        row.appendChild(el('td', { class: 'callers' }, String(s.callers)))
        row.appendChild(el('td', { class: 'mono' }, s.lastEventId || '-'))
        const lastError = s.lastError ? s.lastError.message : ''
        row.appendChild(el('td', {}, lastError))
        tbody.appendChild(row)
        if (lastError !== '' && seenSessionErrors.get(s.name) !== s.lastError.at) {
          seenSessionErrors.set(s.name, s.lastError.at)
          reportError(s.name + ': ' + lastError)
        }
      }
      for (const id of ['sub-session', 'pub-session']) {
        const select = $(id)
        const current = select.value
        const names = list.map((s) => s.name)
        if (names.join('\n') !== Array.from(select.options).map((o) => o.value).join('\n')) {
          select.textContent = ''
          for (const name of names) select.appendChild(el('option', { value: name }, name))
          if (names.includes(current)) select.value = current
        }
      }
    }

    // ---- the stream
    function showEvent (kind, id, text) {
      const list = $('events')
      const item = el('li', { class: kind }, (id ? id + ' ' : '') + (kind === 'message' ? '' : kind + ' ') + text)
      if (id) item.setAttribute('data-id', id)
      list.insertBefore(item, list.firstChild)
      while (list.children.length > MAX_EVENTS) list.removeChild(list.lastChild)
      if (id) $('stream-last-id').textContent = id
    }

    function onFrame (event, id, data) {
      if (event === 'message') {
        let text = data
        try {
          const m = JSON.parse(data)
          text = m.channel + ' ' + JSON.stringify(m.data)
        } catch (e) {}
        showEvent('message', id, text)
      } else {
        showEvent(event, null, data)
        if (event === 'gap' || event === 'slow') reportError('stream ' + event + ': ' + data)
      }
    }

    function stopStream () {
      if (stream !== null) stream.close()
      stream = null
      $('stream-status').textContent = 'idle'
    }

    function streamUrl (session, channel, withToken) {
      let url = '/sessions/' + encodeURIComponent(session) + '/events?channel=' + encodeURIComponent(channel)
      if (withToken) url += '&access_token=' + encodeURIComponent(token)
      return url
    }

    function openEventSource (session, channel) {
      const source = new EventSource(streamUrl(session, channel, token !== null))
      let opens = 0
      source.onopen = () => { opens++; $('stream-opens').textContent = String(opens); $('stream-status').textContent = 'open' }
      source.onerror = () => {
        $('stream-status').textContent = source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting'
        if (source.readyState === EventSource.CLOSED) reportError('stream closed by the bridge (see GET /sessions for the reason)')
      }
      source.addEventListener('message', (e) => { onFrame('message', e.lastEventId, e.data) })
      for (const name of ['gap', 'upstream', 'slow', 'shutdown']) source.addEventListener(name, (e) => { onFrame(name, null, e.data) })
      $('stream-mode').textContent = 'EventSource'
      return { close: () => { source.close() } }
    }

    /** EventSource cannot send Authorization: the same protocol over fetch(), resuming with Last-Event-ID. */
    function openFetchStream (session, channel) {
      let closed = false
      let lastId = null
      let retryMs = 2000
      let opens = 0
      let controller = null
      $('stream-mode').textContent = 'fetch (EventSource cannot send Authorization; auth.allowQueryToken is off)'
      async function once () {
        controller = new AbortController()
        const h = { Accept: 'text/event-stream' }
        if (lastId !== null) h['Last-Event-ID'] = lastId
        const res = await fetch(streamUrl(session, channel, false), { headers: headers(h), signal: controller.signal, cache: 'no-store' })
        if (!res.ok) {
          let text = ''
          try { text = await res.text() } catch (e) {}
          throw Object.assign(new Error('HTTP ' + res.status + ' ' + text), { final: res.status < 500 })
        }
        opens++
        $('stream-opens').textContent = String(opens)
        $('stream-status').textContent = 'open'
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
        let buffer = ''
        let event = 'message'
        let data = []
        let id = null
        for (;;) {
          const { value, done } = await reader.read()
          if (done) return
          buffer += value
          let nl
          while ((nl = buffer.search(/\r\n|\n|\r/)) >= 0) {
            const line = buffer.slice(0, nl)
            buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1))
            if (line === '') {
              if (data.length > 0) {
                if (id !== null) lastId = id
                onFrame(event, id, data.join('\n'))
              }
              event = 'message'; data = []; id = null
            } else if (!line.startsWith(':')) {
              const colon = line.indexOf(':')
              const field = colon < 0 ? line : line.slice(0, colon)
              let v = colon < 0 ? '' : line.slice(colon + 1)
              if (v.startsWith(' ')) v = v.slice(1)
              if (field === 'event') event = v
              else if (field === 'data') data.push(v)
              else if (field === 'id') id = v
              else if (field === 'retry' && /^\d+$/.test(v)) retryMs = Number(v)
            }
          }
        }
      }
      (async () => {
        while (!closed) {
          try {
            $('stream-status').textContent = 'connecting'
            await once()
          } catch (err) {
            if (closed) return
            reportError('stream: ' + err.message)
            if (err.final) { $('stream-status').textContent = 'closed'; return }
          }
          if (closed) return
          $('stream-status').textContent = 'reconnecting'
          await new Promise((resolve) => setTimeout(resolve, retryMs))
        }
      })()
      return { close: () => { closed = true; if (controller !== null) controller.abort() } }
    }

    $('sub-form').addEventListener('submit', (e) => {
      e.preventDefault()
      stopStream()
      $('events').textContent = ''
      $('stream-opens').textContent = '0'
      const session = $('sub-session').value
      const channel = $('sub-channel').value.trim()
      if (session === '' || channel === '') return
      $('stream-status').textContent = 'connecting'
      stream = token === null || settings.allowQueryToken ? openEventSource(session, channel) : openFetchStream(session, channel)
    })
    $('sub-stop').addEventListener('click', stopStream)

    // ---- publish
    $('pub-form').addEventListener('submit', async (e) => {
      e.preventDefault()
      const session = $('pub-session').value
      const channel = $('pub-channel').value.trim()
      const data = $('pub-data').value
      try {
        JSON.parse(data)
      } catch (err) {
        $('pub-result').textContent = 'not JSON: ' + err.message
        return
      }
      const path = '/sessions/' + encodeURIComponent(session) + '/publish' + channel.split('/').map(encodeURIComponent).join('/')
      try {
        const reply = await api(path, { method: 'POST', body: data, headers: { 'Content-Type': 'application/json' } })
        $('pub-result').textContent = JSON.stringify(reply)
      } catch (err) {
        $('pub-result').textContent = err.message
        reportError('publish ' + channel + ': ' + err.message)
      }
    })

    // ---- go
    ;(async () => {
      try {
        settings = await api('/console/config.json')
        $('who').textContent = settings.authRequired ? 'token: ' + settings.principal : 'no token needed (' + settings.principal + ')'
      } catch (err) {
        reportError('console settings: ' + err.message)
      }
      await refreshSessions()
      setInterval(refreshSessions, 2000)
    })()
  }

  window.CometdBridgeConsole = { start }
  const me = document.currentScript
  if (me && me.hasAttribute('data-autostart')) {
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', () => start({ token: null }))
    else start({ token: null })
  }
})()
