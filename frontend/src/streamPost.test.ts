import { describe, expect, it, vi } from 'vitest'
import { StreamHttpError, StreamInterruptedError, streamPost } from './streamPost.ts'

const encoder = new TextEncoder()

type End = 'close' | 'error' | 'hang'

// body is a hand-made response body: it hands out one chunk per read, then
// closes, errors (the connection dropped) or hangs (the answer is still
// coming). It counts cancel() calls.
function body(chunks: (string | Uint8Array)[], end: End = 'close') {
  const bytes = chunks.map((c) => (typeof c === 'string' ? encoder.encode(c) : c))
  let next = 0
  const source = { cancelled: 0, reads: 0 }
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        source.reads++
        if (next < bytes.length) {
          controller.enqueue(bytes[next++]!)
        } else if (end === 'close') {
          controller.close()
        } else if (end === 'error') {
          controller.error(new TypeError('network error'))
        }
      },
      cancel() {
        source.cancelled++
      },
    },
    { highWaterMark: 0 },
  )
  return { stream, source }
}

function fakeFetch(response: Response) {
  return vi.fn<typeof fetch>(async () => response)
}

function ok(stream: ReadableStream<Uint8Array>) {
  return new Response(stream, {
    status: 200,
    headers: { 'Content-Type': 'text/plain; charset=utf-8' },
  })
}

// collect runs streamPost over the given chunks and returns the deltas.
async function collect(chunks: (string | Uint8Array)[]): Promise<string[]> {
  const deltas: string[] = []
  const { stream } = body(chunks)
  await streamPost('/message/stream', { prompt: 'hi' }, (d) => deltas.push(d), {
    fetch: fakeFetch(ok(stream)),
  })
  return deltas
}

// splitBytes cuts text's UTF-8 bytes at the given offsets.
function splitBytes(text: string, offsets: number[]): Uint8Array[] {
  const bytes = encoder.encode(text)
  const cuts = [0, ...offsets, bytes.length]
  return cuts.slice(1).map((end, i) => bytes.slice(cuts[i], end))
}

describe('streamPost', () => {
  it('POSTs the body as JSON', async () => {
    const { stream } = body(['a\n'])
    const fetch = fakeFetch(ok(stream))
    await streamPost('/message/stream', { prompt: 'hello' }, () => {}, { fetch })

    expect(fetch).toHaveBeenCalledTimes(1)
    const [url, init] = fetch.mock.calls[0]!
    expect(url).toBe('/message/stream')
    expect(init?.method).toBe('POST')
    expect(new Headers(init?.headers).get('Content-Type')).toBe('application/json')
    expect(init?.body).toBe('{"prompt":"hello"}')
  })

  it.each([
    { name: 'one chunk', chunks: ['Hello\nworld\n'], want: ['Hello', 'world'] },
    { name: 'boundary inside a line', chunks: ['Hel', 'lo\nwo', 'rld\n'], want: ['Hello', 'world'] },
    { name: 'boundary right before the newline', chunks: ['Hello', '\nworld', '\n'], want: ['Hello', 'world'] },
    { name: 'boundary inside <br />', chunks: ['one<b', 'r />two\n'], want: ['one\ntwo'] },
    { name: '<br /> cut in three', chunks: ['a<', 'br ', '/>b\n'], want: ['a\nb'] },
    { name: 'a line that is only <br />', chunks: ['<br />\n'], want: ['\n'] },
    { name: 'several <br /> in a line', chunks: ['a<br /><br />b<br />\n'], want: ['a\n\nb\n'] },
    { name: 'last line without newline', chunks: ['first\nlast'], want: ['first', 'last'] },
    { name: 'empty lines are keep-alives', chunks: ['\n\nA\n\n', '\n', 'B\n\n'], want: ['A', 'B'] },
    { name: 'empty chunks', chunks: ['', 'A', '', '\n', ''], want: ['A'] },
    { name: 'spaces are text', chunks: [' \n  x \n'], want: [' ', '  x '] },
    { name: 'no body text', chunks: [], want: [] },
  ])('splits lines: $name', async ({ chunks, want }) => {
    expect(await collect(chunks)).toEqual(want)
  })

  it('joins a 4-byte emoji cut at each of its inner bytes', async () => {
    const text = 'a😀b\n' // the emoji is bytes 1..4
    for (const cut of [2, 3, 4]) {
      expect(await collect(splitBytes(text, [cut]))).toEqual(['a😀b'])
    }
  })

  it('joins a 3-byte CJK character cut at each of its inner bytes', async () => {
    const text = '中文\n' // 中 is bytes 0..2, 文 is bytes 3..5
    for (const cut of [1, 2, 4, 5]) {
      expect(await collect(splitBytes(text, [cut]))).toEqual(['中文'])
    }
    expect(await collect(splitBytes(text, [1, 2, 4, 5]))).toEqual(['中文'])
  })

  it('joins a long line cut into many reads', async () => {
    const line = 'x'.repeat(10_000)
    const chunks = Array.from({ length: 1000 }, (_, i) => line.slice(i * 10, i * 10 + 10))
    expect(await collect([...chunks, '\n'])).toEqual([line])
  })

  // answer is what the relay would send for a realistic reply: markdown with
  // paragraphs, accents, CJK, an emoji and keep-alive lines.
  const answer =
    '# Réponse\n\nYou asked: "café ☕?"\n\n' +
    '- 中文 item\n- emoji 🚀 item\n\nDone — merci.'
  const deltas = ['# ', 'Réponse\n\n', 'You asked: "', 'café ☕?"\n', '\n- 中文', ' item\n- emoji 🚀', ' item\n\nDone', ' — merci.']
  // The same deltas on the wire, with keep-alive lines in between and at the end.
  const wire =
    '# \n\nRéponse<br /><br />\nYou asked: "\ncafé ☕?"<br />\n<br />- 中文\n' +
    ' item<br />- emoji 🚀\n\n item<br /><br />Done\n — merci.\n\n'

  it('reads a realistic body split at every byte offset', async () => {
    const size = encoder.encode(wire).length
    for (let cut = 0; cut <= size; cut++) {
      const got = await collect(splitBytes(wire, [cut]))
      expect(got, `cut at byte ${cut}`).toEqual(deltas)
      expect(got.join('')).toBe(answer)
    }
  })

  it('reads a realistic body cut at every pair of byte offsets', async () => {
    const size = encoder.encode(wire).length
    for (let a = 1; a < size; a++) {
      for (let b = a + 1; b < size; b += 7) {
        expect((await collect(splitBytes(wire, [a, b]))).join(''), `cuts at ${a}, ${b}`).toBe(answer)
      }
    }
  })

  it('reads a realistic body one byte at a time', async () => {
    const size = encoder.encode(wire).length
    const offsets = Array.from({ length: size - 1 }, (_, i) => i + 1)
    expect(await collect(splitBytes(wire, offsets))).toEqual(deltas)
  })

  it('throws the server JSON error on a non-2xx answer', async () => {
    const response = new Response(
      JSON.stringify({ error: { code: 'upstream_unreachable', message: 'The model service could not be reached.' } }),
      { status: 502, headers: { 'Content-Type': 'application/json' } },
    )
    const onDelta = vi.fn()
    const err = await streamPost('/x', {}, onDelta, { fetch: fakeFetch(response) }).catch((e: unknown) => e)

    expect(err).toBeInstanceOf(StreamHttpError)
    expect(err).toMatchObject({
      status: 502,
      code: 'upstream_unreachable',
      message: 'The model service could not be reached.',
    })
    expect(onDelta).not.toHaveBeenCalled()
  })

  it.each([
    { name: 'HTML', text: '<html><body>Bad Gateway</body></html>' },
    { name: 'empty', text: '' },
    { name: 'JSON of another shape', text: '{"message":"nope"}' },
    { name: 'JSON null', text: 'null' },
  ])('throws a status error on a non-JSON error body: $name', async ({ text }) => {
    const response = new Response(text, { status: 503, statusText: 'Service Unavailable' })
    const err = await streamPost('/x', {}, () => {}, { fetch: fakeFetch(response) }).catch((e: unknown) => e)

    expect(err).toBeInstanceOf(StreamHttpError)
    expect(err).toMatchObject({ status: 503, code: 'http_error' })
    expect((err as Error).message).toBe('The server answered with HTTP 503 Service Unavailable.')
  })

  it('delivers what arrived, then throws StreamInterruptedError on an abrupt end', async () => {
    const events: string[] = []
    const { stream } = body(['one\ntw', 'o\nthr'], 'error')
    const err = await streamPost('/x', {}, (d) => events.push(d), { fetch: fakeFetch(ok(stream)) }).catch(
      (e: unknown) => {
        events.push('rejected')
        return e
      },
    )

    expect(err).toBeInstanceOf(StreamInterruptedError)
    expect((err as Error).cause).toBeInstanceOf(TypeError)
    expect(events).toEqual(['one', 'two', 'thr', 'rejected'])
  })

  it('drops half a character when the body ends abruptly inside it', async () => {
    const deltas: string[] = []
    const { stream } = body([splitBytes('ok\n中', [4])[0]!], 'error') // 'ok\n' + first byte of 中
    const err = await streamPost('/x', {}, (d) => deltas.push(d), { fetch: fakeFetch(ok(stream)) }).catch(
      (e: unknown) => e,
    )

    expect(err).toBeInstanceOf(StreamInterruptedError)
    expect(deltas).toEqual(['ok'])
  })

  it('stops on abort: cancels the body, releases it and rejects with AbortError', async () => {
    const controller = new AbortController()
    const { stream, source } = body(['first\n'], 'hang')
    const deltas: string[] = []
    const done = streamPost(
      '/x',
      {},
      (d) => {
        deltas.push(d)
        controller.abort()
      },
      { fetch: fakeFetch(ok(stream)), signal: controller.signal },
    )

    await expect(done).rejects.toMatchObject({ name: 'AbortError' })
    expect(deltas).toEqual(['first'])
    expect(source.cancelled).toBe(1)
    expect(stream.locked).toBe(false)
  })

  it('stops a read that is waiting for data when aborted', async () => {
    const controller = new AbortController()
    const { stream, source } = body([], 'hang')
    const done = streamPost('/x', {}, () => {}, { fetch: fakeFetch(ok(stream)), signal: controller.signal })
    await vi.waitUntil(() => source.reads > 0)
    controller.abort()

    await expect(done).rejects.toMatchObject({ name: 'AbortError' })
    expect(source.cancelled).toBe(1)
    expect(stream.locked).toBe(false)
  })

  it('does not read a body when aborted before the answer arrived', async () => {
    const controller = new AbortController()
    controller.abort()
    const { stream, source } = body(['never\n'], 'hang')
    const onDelta = vi.fn()
    const done = streamPost('/x', {}, onDelta, { fetch: fakeFetch(ok(stream)), signal: controller.signal })

    await expect(done).rejects.toMatchObject({ name: 'AbortError' })
    expect(onDelta).not.toHaveBeenCalled()
    expect(source.reads).toBe(0)
  })

  it('passes the signal to fetch', async () => {
    const controller = new AbortController()
    const { stream } = body([])
    const fetch = fakeFetch(ok(stream))
    await streamPost('/x', {}, () => {}, { fetch, signal: controller.signal })
    expect(fetch.mock.calls[0]![1]?.signal).toBe(controller.signal)
  })
})

describe('streamPost resume', () => {
  // server fakes the relay for one stream with the given lines: the POST is
  // cut after cutAfter lines (mid-way through the next), and each GET
  // ?from=N answers the lines after N, whole.
  function server(lines: string[], cutAfter: number, state: 'completed' | 'failed' = 'completed') {
    const calls: string[] = []
    const fetchImpl = vi.fn<typeof fetch>(async (input, init) => {
      const url = String(input)
      calls.push(`${init?.method ?? 'GET'} ${url}`)
      if (init?.method === 'POST') {
        const sent = lines.slice(0, cutAfter).map((l) => `${l}\n`)
        const { stream } = body([...sent, (lines[cutAfter] ?? '').slice(0, 2)], 'error')
        return new Response(stream, { status: 200, headers: { 'X-Stream-ID': 'abc' } })
      }
      if (url.endsWith('/status')) {
        return Response.json({ state, lines: lines.length, finish_reason: 'stop', usage: null })
      }
      const from = Number(new URL(url, 'http://x').searchParams.get('from'))
      const { stream } = body(
        lines.slice(from).map((l) => `${l}\n`),
        state === 'completed' ? 'close' : 'error',
      )
      return ok(stream)
    })
    return { fetchImpl, calls }
  }

  it('resumes after a drop and delivers every line exactly once', async () => {
    const lines = ['one ', 'two<br />', 'three ', 'four']
    const { fetchImpl, calls } = server(lines, 2)
    const deltas: string[] = []
    const states: string[] = []
    const end = await streamPost('/message/stream', { prompt: 'hi' }, (d) => deltas.push(d), {
      fetch: fetchImpl,
      onConnection: (s) => states.push(s),
    })
    expect(deltas.join('')).toBe('one two\nthree four')
    expect(end).toEqual({ id: 'abc', lines: 4 })
    expect(states).toEqual(['reconnecting', 'streaming'])
    expect(calls).toContain('GET /message/stream/abc?from=2')
  })

  it('gives up with StreamInterruptedError when the stream failed on the server', async () => {
    const { fetchImpl } = server(['a', 'b', 'c'], 1, 'failed')
    const deltas: string[] = []
    await expect(
      streamPost('/message/stream', { prompt: 'hi' }, (d) => deltas.push(d), { fetch: fetchImpl }),
    ).rejects.toBeInstanceOf(StreamInterruptedError)
    expect(deltas).toEqual(['a', 'b', 'c'])
  })

  it('does not resume when told not to', async () => {
    const { fetchImpl, calls } = server(['a', 'b'], 1)
    await expect(
      streamPost('/message/stream', {}, () => {}, { fetch: fetchImpl, resumeWindowMs: 0 }),
    ).rejects.toBeInstanceOf(StreamInterruptedError)
    expect(calls).toEqual(['POST /message/stream'])
  })

  it('retries a resume that fails on the network', async () => {
    const lines = ['a', 'b', 'c']
    const inner = server(lines, 1).fetchImpl
    let failures = 1
    const fetchImpl = vi.fn<typeof fetch>(async (input, init) => {
      if (String(input).includes('?from=') && failures-- > 0) {
        throw new TypeError('network down')
      }
      return inner(input, init)
    })
    const deltas: string[] = []
    await streamPost('/message/stream', {}, (d) => deltas.push(d), { fetch: fetchImpl })
    expect(deltas).toEqual(lines)
  })
})
