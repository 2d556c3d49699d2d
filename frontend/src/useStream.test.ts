// @vitest-environment happy-dom
import { act, renderHook, waitFor } from '@testing-library/react'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { StreamHttpError, StreamInterruptedError } from './streamPost.ts'
import { withToken } from './token.ts'
import { type StreamResult, useStream } from './useStream.ts'

const encoder = new TextEncoder()

// controlledBody is a response body the test writes to line by line.
function controlledBody() {
  let controller!: ReadableStreamDefaultController<Uint8Array>
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c
    },
  })
  return {
    stream,
    write: (text: string) => controller.enqueue(encoder.encode(text)),
    close: () => controller.close(),
    fail: () => controller.error(new TypeError('network error')),
  }
}

function setup(response: Response) {
  const fetch = vi.fn<typeof globalThis.fetch>(async () => response)
  const finished: StreamResult[] = []
  const hook = renderHook(() => useStream('/message/stream', { fetch, onFinish: (r) => finished.push(r) }))
  return { fetch, finished, hook }
}

const ok = (stream: ReadableStream<Uint8Array>) =>
  new Response(stream, { status: 200, headers: { 'Content-Type': 'text/plain; charset=utf-8' } })

describe('useStream', () => {
  it('shows the text as it arrives and ends done, calling onFinish once', async () => {
    const body = controlledBody()
    const { fetch, finished, hook } = setup(ok(body.stream))
    let done!: Promise<StreamResult>
    act(() => {
      done = hook.result.current.start({ prompt: 'hi' })
    })
    expect(hook.result.current.status).toBe('connecting')
    body.write('Hello\n, <br />world\n')
    await waitFor(() => expect(hook.result.current.text).toBe('Hello, \nworld'))
    expect(hook.result.current.status).toBe('streaming')
    body.write('!\n')
    body.close()
    const result = await act(() => done)

    expect(result.status).toBe('done')
    expect(hook.result.current).toMatchObject({ text: 'Hello, \nworld!', status: 'done', error: null })
    expect(hook.result.current.stats?.lines).toBe(3)
    expect(finished).toHaveLength(1)
    expect(finished[0]?.text).toBe('Hello, \nworld!')
    const init = fetch.mock.calls[0]?.[1]
    expect(init?.body).toBe('{"prompt":"hi"}')
  })

  it('stop keeps the text so far and ends stopped, without an error', async () => {
    const body = controlledBody()
    const { finished, hook } = setup(ok(body.stream))
    let done!: Promise<StreamResult>
    act(() => {
      done = hook.result.current.start({ prompt: 'hi' })
    })
    body.write('partial\n')
    await waitFor(() => expect(hook.result.current.text).toBe('partial'))
    act(() => hook.result.current.stop())
    const result = await act(() => done)

    expect(result).toMatchObject({ text: 'partial', status: 'stopped', error: null })
    expect(hook.result.current.status).toBe('stopped')
    expect(finished.map((r) => r.status)).toEqual(['stopped'])
  })

  it('a cut connection ends interrupted with the text that arrived', async () => {
    const body = controlledBody()
    const { hook } = setup(ok(body.stream))
    let done!: Promise<StreamResult>
    act(() => {
      done = hook.result.current.start({ prompt: 'hi' })
    })
    body.write('one\ntw')
    await waitFor(() => expect(hook.result.current.text).toBe('one'))
    body.fail()
    const result = await act(() => done)

    expect(result.status).toBe('interrupted')
    expect(result.text).toBe('onetw')
    expect(result.error).toBeInstanceOf(StreamInterruptedError)
  })

  it('an HTTP error ends as error with the server’s message', async () => {
    const response = new Response('{"error":{"code":"invalid_token","message":"The bearer token is not valid."}}', {
      status: 401,
      headers: { 'Content-Type': 'application/json' },
    })
    const { finished, hook } = setup(response)
    const result = await act(() => hook.result.current.start({ prompt: 'hi' }))

    expect(result.status).toBe('error')
    expect(result.error).toBeInstanceOf(StreamHttpError)
    expect((result.error as StreamHttpError).status).toBe(401)
    expect(result.error?.message).toBe('The bearer token is not valid.')
    expect(hook.result.current.status).toBe('error')
    expect(finished).toHaveLength(1)
  })

  it('a new start replaces a running answer, which does not finish', async () => {
    const first = controlledBody()
    const second = controlledBody()
    const fetch = vi
      .fn<typeof globalThis.fetch>()
      .mockResolvedValueOnce(ok(first.stream))
      .mockResolvedValueOnce(ok(second.stream))
    const finished: StreamResult[] = []
    const hook = renderHook(() => useStream('/x', { fetch, onFinish: (r) => finished.push(r) }))
    act(() => void hook.result.current.start({ prompt: 'one' }))
    first.write('old\n')
    await waitFor(() => expect(hook.result.current.text).toBe('old'))
    let done!: Promise<StreamResult>
    act(() => {
      done = hook.result.current.start({ prompt: 'two' })
    })
    second.write('new\n')
    second.close()
    await act(() => done)

    expect(hook.result.current.text).toBe('new')
    expect(finished.map((r) => r.text)).toEqual(['new'])
  })
})

describe('withToken', () => {
  afterEach(() => {
    vi.unstubAllGlobals()
  })

  it('sends the token as a bearer token and keeps other headers', async () => {
    const fetch = vi.fn<typeof globalThis.fetch>(async () => new Response('ok'))
    vi.stubGlobal('fetch', fetch)
    await withToken('t0k3n')('/x', { headers: { 'Content-Type': 'application/json' } })
    const headers = new Headers(fetch.mock.calls[0]?.[1]?.headers)
    expect(headers.get('Authorization')).toBe('Bearer t0k3n')
    expect(headers.get('Content-Type')).toBe('application/json')
  })

  it('sends no Authorization header without a token', async () => {
    const fetch = vi.fn<typeof globalThis.fetch>(async () => new Response('ok'))
    vi.stubGlobal('fetch', fetch)
    await withToken('')('/x', {})
    expect(new Headers(fetch.mock.calls[0]?.[1]?.headers).has('Authorization')).toBe(false)
  })
})
