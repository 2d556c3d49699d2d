// End-to-end test of the chat page in WebKitGTK (MiniBrowser, driven over
// WebDriver by WebKitWebDriver under xvfb-run). WebKitGTK's network stack
// reads a connection closed right after a whole chunk as a complete body, so
// there the page learns from the stream's /status that the server cut it.
//
// Skips when WebKitWebDriver or xvfb-run is missing, and fails then under
// CI=true. WEBKIT_MINIBROWSER overrides the MiniBrowser path.

import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import fs from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const frontendDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const repoRoot = path.resolve(frontendDir, '..')
const distDir = path.join(frontendDir, 'dist')
const miniBrowser =
  process.env.WEBKIT_MINIBROWSER || '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser'

const which = (cmd) => promisify(execFile)('sh', ['-c', `command -v ${cmd}`]).then(() => true, () => false)
const missing = !(await which('WebKitWebDriver')) || !(await which('xvfb-run')) || !existsSync(miniBrowser)
if (missing && process.env.CI === 'true') {
  throw new Error('WebKitGTK is needed under CI: apt-get install webkit2gtk-driver xvfb')
}

const procs = []
let tmpDir, relayURL, driverURL, session, upstream

before(async () => {
  if (missing) return
  tmpDir = await fs.mkdtemp(path.join(os.tmpdir(), 'relay-webkit-'))
  const bin = process.env.RELAY_BIN || path.join(tmpDir, 'relay')
  if (!process.env.RELAY_BIN) {
    await promisify(execFile)('go', ['build', '-o', bin, '.'], { cwd: repoRoot, timeout: 300_000 })
  }
  upstream = await cuttingUpstream()
  const addr = `127.0.0.1:${await freePort()}`
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OPENAI_')))
  procs.push(
    spawn(bin, [], {
      env: { ...base, ADDR: addr, FRONTEND_DIR: distDir, OPENAI_API_KEY: 'k', OPENAI_BASE_URL: `${upstream.url}/v1`, UPSTREAM_RETRIES: '0' },
      stdio: 'ignore',
    }),
  )
  relayURL = `http://${addr}`
  const port = await freePort()
  // In a process group of its own, so that Xvfb and the driver go with it.
  const driver = spawn('xvfb-run', ['-a', 'WebKitWebDriver', `--port=${port}`], { stdio: 'ignore', detached: true })
  driver.group = true
  procs.push(driver)
  driverURL = `http://127.0.0.1:${port}`
  await until(async () => (await fetch(`${relayURL}/healthz`)).ok && (await fetch(`${driverURL}/status`)).ok)
  const created = await wd('POST', '/session', {
    capabilities: { alwaysMatch: { 'webkitgtk:browserOptions': { binary: miniBrowser, args: ['--automation'] } } },
  })
  session = created.sessionId
})

after(async () => {
  if (session) await wd('DELETE', `/session/${session}`).catch(() => {})
  for (const p of procs) {
    try {
      process.kill(p.group ? -p.pid : p.pid, 'SIGTERM')
    } catch {
      // already gone
    }
  }
  upstream?.server.closeAllConnections()
  upstream?.server.close()
  if (tmpDir) await fs.rm(tmpDir, { recursive: true, force: true })
})

test('WebKitGTK shows a stream the server cut as interrupted', { skip: missing && 'WebKitGTK is not installed', timeout: 120_000 }, async () => {
  await wd('POST', `/session/${session}/url`, { url: relayURL })
  await until(() => script(`return !!document.querySelector('[data-testid="prompt"]')`))
  await script(`
    const box = document.querySelector('[data-testid="prompt"]')
    const set = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(box), 'value').set
    set.call(box, 'Will this finish?')
    box.dispatchEvent(new Event('input', { bubbles: true }))
    document.querySelector('[data-testid="send"]').click()`)
  const status = () =>
    script(`const t = [...document.querySelectorAll('[data-testid="assistant-turn"]')].pop(); return t && t.getAttribute('data-status')`)
  await until(async () => (await status()) === 'streaming')
  upstream.release()
  await until(async () => !['connecting', 'streaming', 'reconnecting'].includes(await status()))
  assert.equal(await status(), 'interrupted')
  const text = await script(`return [...document.querySelectorAll('[data-testid="answer"]')].pop().textContent`)
  assert.equal(text, 'Partial answer — and the rest')
})

// script runs JavaScript in the page and returns its value.
async function script(body) {
  return (await wd('POST', `/session/${session}/execute/sync`, { script: body, args: [] })).value
}

async function wd(method, route, body) {
  const res = await fetch(driverURL + route, {
    method,
    headers: { 'Content-Type': 'application/json' },
    body: body && JSON.stringify(body),
  })
  const json = await res.json()
  if (!res.ok) throw new Error(`WebDriver ${method} ${route}: ${JSON.stringify(json.value)}`)
  return json.value?.sessionId ? json.value : json
}

// until polls cond, an external process's state, until it holds.
async function until(cond, ms = 30_000) {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      if (await cond()) return
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await delay(100)
  }
}

async function freePort() {
  const s = net.createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const { port } = s.address()
  s.close()
  return port
}

// cuttingUpstream streams two deltas, waits for release(), sends one more
// and drops the connection: the relay then cuts its answer.
async function cuttingUpstream() {
  const up = { release: () => {} }
  const event = (content) =>
    `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`
  up.server = http.createServer(async (req, res) => {
    for await (const _ of req) {
      // read the body
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream' })
    res.write(event('Partial ') + event('answer'))
    await new Promise((resolve) => {
      up.release = resolve
    })
    await new Promise((resolve) => res.write(event(' — and the rest'), resolve))
    res.socket.destroy()
  })
  up.server.listen(0, '127.0.0.1')
  await once(up.server, 'listening')
  up.url = `http://127.0.0.1:${up.server.address().port}`
  return up
}
