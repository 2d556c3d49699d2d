// End-to-end test of resumable streams in the chat page against the real Go
// relay, in headless Chromium: a cut connection resumes, Stop cancels the
// upstream, and an EventSource resumes by itself. It builds the relay from
// the repo root (or uses RELAY_BIN), starts one on the built-in demo
// upstream and one before an upstream that hangs, and drives the page they
// serve. The chat page's other checks, in three engines, are chat.test.ts.
//
// Run with `npm run e2e` (builds dist first). CHROMIUM_PATH overrides
// /usr/bin/chromium.

import assert from 'node:assert/strict'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import fs from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { chromium } from 'playwright-core'
import { chromiumArgs, chromiumPath } from './engines/chromium.ts'
import { artifacts, buildRelay, distDir, startRelay, stopRelay } from './servers.ts'

const DEMO_DELAY = '40ms'

let tmpDir
let browser
const servers = []
let demo // the relay on its built-in demo upstream
let hanging // an upstream that answers a little and then nothing, and notes when it is cancelled
let held // the relay in front of it

before(async () => {
  assert.ok(existsSync(path.join(distDir, 'index.html')), 'frontend/dist is missing: run `npm run build` first')
  await fs.mkdir(artifacts, { recursive: true })
  tmpDir = await fs.mkdtemp(path.join(os.tmpdir(), 'relay-e2e-'))
  const bin = process.env.RELAY_BIN || (await buildRelay(path.join(tmpDir, 'relay')))

  // Each relay is stopped after the tests.
  const relay = async (name, env) => {
    const started = await startRelay(bin, name, env, tmpDir)
    servers.push(started)
    return started
  }
  demo = await relay('demo', { DEMO_DELAY })
  hanging = await startHangingUpstream()
  held = await relay('held', {
    OPENAI_API_KEY: 'test-key',
    OPENAI_BASE_URL: `${hanging.url}/v1`,
    UPSTREAM_RETRIES: '0',
  })

  browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs })
})

after(async () => {
  await browser?.close()
  await Promise.all(servers.map(stopRelay))
  hanging?.server.closeAllConnections()
  hanging?.server.close()
  if (tmpDir) {
    await fs.rm(tmpDir, { recursive: true, force: true })
  }
})

describe('resumable streams', { timeout: 120_000 }, () => {
  test('the page survives a dropped connection: reconnecting, then the whole answer', async () => {
    const proxy = await startCutProxy(demo.url)
    try {
      const prompt = 'Resume test'
      const body = await apiBody(demo.url, { messages: [{ role: 'user', content: prompt }], resumable: true })
      // The page renders Markdown: the same answer, uncut, is the reference.
      const reference = await newPage()
      await reference.goto(proxy.url)
      await send(reference, prompt)
      const want = await settled(reference)
      await reference.close()
      assert.equal(want.status, 'done')
      const page = await newPage()
      await page.addInitScript(() => {
        window.seen = []
        new MutationObserver(() => {
          const turns = document.querySelectorAll('[data-testid="assistant-turn"]')
          const status = turns[turns.length - 1]?.getAttribute('data-status')
          if (status && window.seen[window.seen.length - 1] !== status) window.seen.push(status)
        }).observe(document, { subtree: true, childList: true, attributes: true })
      })
      await page.goto(proxy.url)
      proxy.cutOnce(middleLine(body))
      await send(page, prompt)
      const end = await settled(page)
      assert.equal(proxy.cuts, 1, 'the proxy should have cut the answer')
      assert.equal(end.status, 'done')
      assert.equal(end.text, want.text)
      const seen = await page.evaluate(() => window.seen)
      assert.ok(seen.includes('reconnecting'), `the page should show reconnecting, saw ${seen}`)
      await page.close()
    } finally {
      proxy.close()
    }
  })

  test('Stop cancels the generation upstream', async () => {
    const page = await newPage()
    await page.goto(held.url)
    await send(page, 'Think for a long time')
    await streaming(page)
    const cancelled = hanging.cancelled()
    await page.getByTestId('stop').click()
    assert.equal((await settled(page)).status, 'stopped')
    await Promise.race([
      cancelled,
      delay(2_000).then(() => assert.fail('the upstream was not cancelled within 2 s of Stop')),
    ])
    await page.close()
  })

  test('EventSource resumes by itself after a cut, without duplicates, and stops after done', async () => {
    const proxy = await startCutProxy(demo.url)
    try {
      const prompt = 'EventSource test'
      const body = await apiBody(demo.url, { prompt })
      const want = decode(body)
      const page = await newPage()
      await page.goto(proxy.url)
      const line = body.split('\n').filter((l) => l !== '' && !l.includes('<br />'))
      proxy.cutOnce(`data: ${line[Math.floor(line.length / 2)]}\n`)
      const got = await page.evaluate(async (prompt) => {
        const res = await fetch('/message/stream', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Prefer: 'respond-async' },
          body: JSON.stringify({ prompt }),
        })
        const { url } = await res.json()
        const events = []
        let done = null
        let opens = 0
        const es = new EventSource(url)
        es.onopen = () => opens++
        es.onmessage = (e) => events.push({ id: e.lastEventId, data: e.data })
        es.addEventListener('done', (e) => {
          done = JSON.parse(e.data)
        })
        const deadline = Date.now() + 30_000
        while (es.readyState !== EventSource.CLOSED && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50))
        }
        return { status: res.status, events, done, opens, closed: es.readyState === EventSource.CLOSED }
      }, prompt)
      assert.equal(got.status, 202)
      assert.equal(proxy.cuts, 1, 'the proxy should have cut the events')
      assert.ok(got.opens >= 2, `EventSource should have reconnected, opened ${got.opens} times`)
      assert.deepEqual(
        got.events.map((e) => e.id),
        got.events.map((_, i) => String(i + 1)),
        'every event exactly once, in order',
      )
      assert.equal(got.events.map((e) => e.data).join(''), want)
      assert.equal(got.done?.finish_reason, 'stop')
      assert.ok(got.closed, 'EventSource should stop reconnecting after the end (204)')
      await page.close()
    } finally {
      proxy.close()
    }
  })
})

async function newPage(viewport = { width: 1280, height: 800 }) {
  const page = await browser.newPage({ viewport })
  page.on('dialog', (dialog) => dialog.dismiss())
  return page
}

async function send(page, prompt) {
  const box = page.getByLabel('Prompt')
  await box.fill(prompt)
  await box.press('Enter')
}

// streaming waits until the newest answer is still streaming and has more
// than `longerThan` characters; it returns its status and text.
function streaming(page, longerThan = 0) {
  return waitForAnswer(page, { longerThan })
}

// settled waits until the newest answer has ended, however it ended.
function settled(page) {
  return waitForAnswer(page, { settled: true })
}

async function waitForAnswer(page, want) {
  const handle = await page.waitForFunction(
    ({ settled, longerThan }) => {
      const turns = document.querySelectorAll('[data-testid="assistant-turn"]')
      const turn = turns[turns.length - 1]
      if (!turn) return false
      const status = turn.getAttribute('data-status')
      const text = turn.querySelector('[data-testid="answer"]').textContent
      const ok = settled
        ? status !== 'connecting' && status !== 'streaming' && status !== 'reconnecting'
        : status === 'streaming' && text.length > longerThan
      return ok && { status, text }
    },
    want,
    { timeout: 30_000 },
  )
  return handle.jsonValue()
}

// apiBody POSTs body to the relay from Node and returns the raw plain body.
async function apiBody(baseUrl, body) {
  const response = await fetch(`${baseUrl}/message/stream`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  })
  assert.equal(response.status, 200)
  return response.text()
}

function decode(body) {
  return body
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => line.replaceAll('<br />', '\n'))
    .join('')
}

// middleLine returns the middle line of a plain body, with its "\n".
function middleLine(body) {
  const lines = body.split('\n').filter((line) => line !== '')
  return `${lines[Math.floor(lines.length / 2)]}\n`
}

// startCutProxy starts a TCP proxy to target's port that, once armed with
// cutOnce(marker), closes the first connection whose bytes from the server
// carry marker right after them: a dropped connection mid-answer.
async function startCutProxy(target) {
  const port = Number(new URL(target).port)
  const sockets = new Set()
  const proxy = { cuts: 0, marker: null }
  proxy.cutOnce = (marker) => {
    proxy.marker = Buffer.from(marker)
  }
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1')
    sockets.add(client)
    sockets.add(upstream)
    let tail = Buffer.alloc(0)
    client.pipe(upstream)
    upstream.on('data', (chunk) => {
      if (proxy.marker) {
        const seen = Buffer.concat([tail, chunk])
        const at = seen.indexOf(proxy.marker)
        if (at >= 0) {
          const end = at + proxy.marker.length - tail.length
          proxy.marker = null
          proxy.cuts++
          client.end(chunk.subarray(0, end))
          upstream.destroy()
          return
        }
        tail = seen.subarray(Math.max(0, seen.length - proxy.marker.length))
      }
      client.write(chunk)
    })
    upstream.on('end', () => client.end())
    for (const s of [client, upstream]) {
      s.on('error', () => {
        client.destroy()
        upstream.destroy()
      })
      s.on('close', () => sockets.delete(s))
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  proxy.url = `http://127.0.0.1:${server.address().port}`
  proxy.close = () => {
    for (const s of sockets) s.destroy()
    server.close()
  }
  return proxy
}

// startHangingUpstream starts a chat-completions upstream that sends one
// delta and then nothing; cancelled() resolves when a request of it closes.
async function startHangingUpstream() {
  const upstream = { closed: [] }
  upstream.cancelled = () => new Promise((resolve) => upstream.closed.push(resolve))
  upstream.server = http.createServer(async (req, res) => {
    for await (const _ of req) {
      // read the request body
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream' })
    const chunk = {
      id: 'chatcmpl-held',
      object: 'chat.completion.chunk',
      created: 0,
      model: 'held',
      choices: [{ index: 0, delta: { content: 'Thinking…' }, finish_reason: null }],
    }
    res.write(`data: ${JSON.stringify(chunk)}\n\n`)
    res.on('close', () => upstream.closed.splice(0).forEach((resolve) => resolve()))
  })
  upstream.server.listen(0, '127.0.0.1')
  await once(upstream.server, 'listening')
  upstream.url = `http://127.0.0.1:${upstream.server.address().port}`
  return upstream
}
