/*
 * cometd-bridge console: sessions and their live state, a subscription watched through the browser's own
 * EventSource (which resumes with Last-Event-ID by itself) with its in-band status events, a publish form and the
 * errors that still matter: an error is removed once what it was about works again (the session is connected and
 * ready, the stream is open, a publish succeeds).
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
    <table id="sessions"><thead><tr><th>Name</th><th>State</th><th>Ready</th><th>Type</th><th>Callers</th><th>Subscriptions</th><th>Last event id</th><th>Last error</th></tr></thead><tbody></tbody></table>
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
    <div class="status">last status event: <span id="stream-last-status" class="mono">-</span></div>
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
    <h2 class="spaced">Errors <button id="errors-clear" type="button" class="small">Clear</button></h2>
    <ol class="errors" id="errors"></ol>
  </section>
</main>`

  function start (options) {
    const token = options && options.token ? String(options.token) : null
    // the login page's own style (a narrow centred column) must not shape the console
    for (const style of document.querySelectorAll('head style')) style.remove()
    document.title = 'cometd-bridge console'
    document.body.innerHTML = SKELETON
    const $ = (id) => document.getElementById(id)
    let settings = { authRequired: false, allowQueryToken: false }
    let stream = null

    function headers (extra) {
      const h = Object.assign({}, extra || {})
      if (token !== null) h.Authorization = 'Bearer ' + token
      return h
    }

    /** `source` names what the error is about: clearErrors(source) removes it once that works again. */
    function reportError (text, source) {
      const list = $('errors')
      const item = el('li', source ? { 'data-source': source } : {}, new Date().toLocaleTimeString() + ' ' + text)
      list.insertBefore(item, list.firstChild)
      while (list.children.length > MAX_ERRORS) list.removeChild(list.lastChild)
    }

    function clearErrors (source) {
      for (const item of Array.from($('errors').children)) {
        if (item.getAttribute('data-source') === source) item.remove()
      }
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

    function subscriptionsText (subs) {
      if (!subs || subs.length === 0) return '-'
      return subs.map((v) => v.channel + ' (' + v.state + (v.permanent ? ', held' : '') + ', ' + v.callers + ' caller' + (v.callers === 1 ? '' : 's') + ')').join('\n')
    }

    function sessionRow (s, healthy) {
      const row = el('tr', { 'data-session': s.name })
      const cell = (label, cls, text) => row.appendChild(el('td', Object.assign({ 'data-label': label }, cls ? { class: cls } : {}), text))
      cell('Name', 'name', s.name)
      cell('State', 'state ' + (s.state === 'connected' ? 'state-connected' : 'state-other'), s.state)
      cell('Ready', 'ready', s.ready ? 'yes' : 'no' + (s.notReadyReason ? ' (' + s.notReadyReason + ')' : ''))
      cell('Type', 'type', s.connectionType || '-')
      cell('Callers', 'callers', String(s.callers))
      cell('Subscriptions', 'subscriptions mono', subscriptionsText(s.subscriptions))
      cell('Last event id', 'last-id mono', s.lastEventId || '-')
      // an error the session has recovered from is history: shown only while the session is not healthy
      cell('Last error', 'last-error', !healthy && s.lastError ? s.lastError.message : '')
      return row
    }

    async function refreshSessions () {
      let list
      try {
        list = (await api('/sessions')).sessions
      } catch (err) {
        clearErrors('sessions')
        reportError('GET /sessions: ' + err.message, 'sessions')
        return
      }
      clearErrors('sessions')
      const tbody = $('sessions').querySelector('tbody')
      tbody.textContent = ''
      for (const s of list) {
        const healthy = s.state === 'connected' && s.ready
        tbody.appendChild(sessionRow(s, healthy))
        if (healthy) {
          clearErrors('session:' + s.name)
        } else if (s.lastError && seenSessionErrors.get(s.name) !== s.lastError.at) {
          seenSessionErrors.set(s.name, s.lastError.at)
          reportError(s.name + ': ' + s.lastError.message, 'session:' + s.name)
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
        // in-band status: upstream down/up/rehandshake, gap, slow, shutdown
        showEvent(event, null, data)
        $('stream-last-status').textContent = event + ' ' + data
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
      source.onopen = () => { opens++; $('stream-opens').textContent = String(opens); $('stream-status').textContent = 'open'; clearErrors('stream'); void refreshSessions() }
      source.onerror = () => {
        $('stream-status').textContent = source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting'
        if (source.readyState === EventSource.CLOSED) reportError('stream closed by the bridge (see GET /sessions for the reason)', 'stream')
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
        clearErrors('stream')
        void refreshSessions()
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
            reportError('stream: ' + err.message, 'stream')
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
    $('sub-stop').addEventListener('click', () => { stopStream(); clearErrors('stream') })
    $('errors-clear').addEventListener('click', () => { $('errors').textContent = '' })

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
        clearErrors('publish:' + channel)
      } catch (err) {
        $('pub-result').textContent = err.message
        reportError('publish ' + channel + ': ' + err.message, 'publish:' + channel)
      }
    })

    // ---- go
    ;(async () => {
      try {
        settings = await api('/console/config.json')
        $('who').textContent = settings.authRequired ? 'token: ' + settings.principal : 'no token needed (' + settings.principal + ')'
      } catch (err) {
        reportError('console settings: ' + err.message, 'settings')
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
