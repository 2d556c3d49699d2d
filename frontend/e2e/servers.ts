// The processes and servers the e2e runs against: the Go relay (built from
// the repo root, with the page embedded), and fake OpenAI-compatible
// upstreams that stream chat-completion chunks as server-sent events.

import assert from 'node:assert/strict'
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

export const frontendDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const repoRoot = path.resolve(frontendDir, '..')
export const distDir = path.join(frontendDir, 'dist')
export const artifacts = path.join(frontendDir, 'e2e', 'artifacts')

export interface Relay {
  name: string
  url: string
  proc: ChildProcess
}

/** buildRelay builds the relay binary to out; the page in dist/ is embedded. */
export async function buildRelay(out: string): Promise<string> {
  await promisify(execFile)('go', ['build', '-o', out, '.'], { cwd: repoRoot, timeout: 600_000 })
  return out
}

export async function freePort(): Promise<number> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

/**
 * startRelay starts the relay binary on a free port with env, none of the
 * caller's OPENAI_ settings and no FRONTEND_DIR (so it serves the embedded
 * page), in cwd; it waits for /healthz. Its log goes to artifacts.
 */
export async function startRelay(bin: string, name: string, env: Record<string, string>, cwd: string): Promise<Relay> {
  const addr = `127.0.0.1:${await freePort()}`
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('OPENAI_') && key !== 'FRONTEND_DIR'),
  )
  const proc = spawn(bin, [], { cwd, env: { ...base, ADDR: addr, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const log = createWriteStream(path.join(artifacts, `server-${name}.log`))
  proc.stdout?.pipe(log)
  proc.stderr?.pipe(log)
  const relay = { name, proc, url: `http://${addr}` }

  for (let tries = 0; tries < 100; tries++) {
    if (proc.exitCode !== null) {
      throw new Error(`relay ${name} exited with ${proc.exitCode}; see e2e/artifacts/server-${name}.log`)
    }
    try {
      const response = await fetch(`${relay.url}/healthz`)
      if (response.status === 200) {
        return relay
      }
    } catch {
      // not listening yet
    }
    await delay(100)
  }
  await stopRelay(relay)
  throw new Error(`relay ${name} did not answer /healthz at ${relay.url}`)
}

export async function stopRelay({ proc }: Relay): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    return
  }
  const exited = once(proc, 'exit')
  proc.kill('SIGTERM')
  const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000)
  await exited
  clearTimeout(timer)
}

/**
 * apiAnswer POSTs body to the relay from Node and decodes the answer the way
 * the wire contract says: non-empty lines joined, "<br />" back to "\n".
 */
export async function apiAnswer(baseUrl: string, body: unknown, headers: Record<string, string> = {}): Promise<string> {
  const response = await fetch(`${baseUrl}/message/stream`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
  assert.equal(response.status, 200)
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; charset=utf-8$/i)
  const text = await response.text()
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => line.replaceAll('<br />', '\n'))
    .join('')
}

/** sseChunk encodes one chat-completion delta as a server-sent event. */
export function sseChunk(content: string, model = 'fake'): string {
  const chunk = {
    id: 'chatcmpl-e2e',
    object: 'chat.completion.chunk',
    created: 0,
    model,
    choices: [{ index: 0, delta: { content }, finish_reason: null }],
  }
  return `data: ${JSON.stringify(chunk)}\n\n`
}

/** sseEnd is the last chunk and the terminator of a chat-completion stream. */
export function sseEnd(model = 'fake'): string {
  const chunk = {
    id: 'chatcmpl-e2e',
    object: 'chat.completion.chunk',
    created: 0,
    model,
    choices: [{ index: 0, delta: {}, finish_reason: 'stop' }],
  }
  return `data: ${JSON.stringify(chunk)}\n\ndata: [DONE]\n\n`
}

export interface Upstream {
  url: string
  close(): Promise<void>
}

/**
 * startUpstream serves respond for every chat-completions request, after
 * reading the request body. respond writes the events and ends (or destroys)
 * the response.
 */
export async function startUpstream(respond: (res: http.ServerResponse) => Promise<void>): Promise<Upstream> {
  const server = http.createServer(async (req, res) => {
    for await (const _ of req) {
      // read the request body
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream' })
    await respond(res)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections()
      server.close()
      await once(server, 'close')
    },
  }
}

/** write writes text to res and resolves once it is handed to the socket. */
export function write(res: http.ServerResponse, text: string): Promise<void> {
  return new Promise((resolve, reject) => res.write(text, (err) => (err ? reject(err) : resolve())))
}
