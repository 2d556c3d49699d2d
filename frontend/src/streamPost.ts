// streamPost reads the relay's line protocol: one line per upstream delta,
// newlines inside a delta written as the literal "<br />", every line ended
// by "\n". Empty lines are keep-alives and carry no text.

const LINE_BREAK = '<br />'

/** StreamHttpError is thrown when the server answers with a non-2xx status. */
export class StreamHttpError extends Error {
  readonly status: number
  readonly code: string

  constructor(status: number, code: string, message: string) {
    super(message)
    this.name = 'StreamHttpError'
    this.status = status
    this.code = code
  }
}

/**
 * StreamInterruptedError is thrown when the response body ends abruptly,
 * after every complete line that did arrive has been delivered.
 */
export class StreamInterruptedError extends Error {
  constructor(options?: { cause?: unknown }) {
    super('The answer was interrupted before it finished.', options)
    this.name = 'StreamInterruptedError'
  }
}

export interface StreamPostOptions {
  /** Aborting it cancels the request; streamPost then rejects with the signal's reason. */
  signal?: AbortSignal
  /** The fetch to use; defaults to the global one. */
  fetch?: typeof globalThis.fetch
  /** Called with the stream's id (X-Stream-ID) as soon as the answer starts. */
  onStreamId?: (id: string) => void
  /** Called with 'reconnecting' when the connection dropped and a resume begins, and 'streaming' when it resumed. */
  onConnection?: (state: 'reconnecting' | 'streaming') => void
  /** How long to keep trying to resume after a drop, in ms (the server's RESUME_GRACE); 0: never resume. */
  resumeWindowMs?: number
}

/** StreamEnd says which stream an answer was: its id, when the server gave one, and the lines received. */
export interface StreamEnd {
  id: string | null
  lines: number
}

/**
 * streamPost POSTs body as JSON to url and calls onDelta once per non-empty
 * line of the answer, with "<br />" turned back into "\n". Concatenating the
 * deltas gives the answer text. It resolves when the body ends cleanly.
 *
 * When the connection drops mid-answer and the server gave the stream an
 * id, it resumes by itself with GET url/{id}?from=<lines received>,
 * retrying with backoff for resumeWindowMs, so every line arrives exactly
 * once. It throws StreamInterruptedError when the stream itself failed or
 * can't be resumed.
 */
export async function streamPost(
  url: string,
  body: unknown,
  onDelta: (delta: string) => void,
  options: StreamPostOptions = {},
): Promise<StreamEnd> {
  const { signal, fetch: fetchImpl = globalThis.fetch, resumeWindowMs = 15000 } = options
  const response = await fetchImpl(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'text/plain' },
    body: JSON.stringify(body),
    signal,
  })
  if (!response.ok) {
    throw await httpError(response)
  }
  signal?.throwIfAborted()
  const id = response.headers.get('X-Stream-ID')
  if (id) {
    options.onStreamId?.(id)
  }
  const end: StreamEnd = { id, lines: 0 }
  const canResume = id !== null && resumeWindowMs > 0
  const deliver = (delta: string) => {
    end.lines++
    onDelta(delta)
  }
  try {
    await readBody(response, signal, deliver, !canResume)
    return end
  } catch (err) {
    if (!canResume || !(err instanceof StreamInterruptedError)) {
      throw err
    }
    await resume({ url, id, end, deliver, options, fetchImpl, resumeWindowMs, cause: err })
    return end
  }
}

interface ResumeArgs {
  url: string
  id: string
  end: StreamEnd
  deliver: (delta: string) => void
  options: StreamPostOptions
  fetchImpl: typeof globalThis.fetch
  resumeWindowMs: number
  cause: StreamInterruptedError
}

// resume reads the rest of a dropped stream, retrying with backoff until the
// window closes. It returns once the stream ended cleanly, and throws the
// interruption when the stream failed on the server or can't be resumed.
async function resume({ url, id, end, deliver, options, fetchImpl, resumeWindowMs, cause }: ResumeArgs) {
  const { signal } = options
  const deadline = Date.now() + resumeWindowMs
  let delay = 250
  options.onConnection?.('reconnecting')
  while (Date.now() < deadline) {
    signal?.throwIfAborted()
    try {
      const status = await streamStatus(url, id, { signal, fetch: fetchImpl })
      if (status === null) {
        throw cause // unknown or expired: nothing to resume
      }
      if (status.state !== 'running' && status.lines <= end.lines) {
        if (status.state === 'completed') {
          options.onConnection?.('streaming')
          return
        }
        throw cause
      }
      const response = await fetchImpl(`${url}/${encodeURIComponent(id)}?from=${end.lines}`, {
        headers: { Accept: 'text/plain' },
        signal,
      })
      if (!response.ok) {
        throw response.status >= 500 ? new TypeError('resume failed') : cause
      }
      options.onConnection?.('streaming')
      await readBody(response, signal, deliver, false)
      return
    } catch (err) {
      signal?.throwIfAborted()
      if (err === cause) {
        throw cause
      }
      if (err instanceof StreamInterruptedError) {
        options.onConnection?.('reconnecting')
        delay = 250 // it resumed and dropped again: start over
      }
    }
    await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), signal)
    delay = Math.min(delay * 2, 4000)
  }
  throw cause
}

/** StreamStatus is GET url/{id}/status: how a stream stands or ended. */
export interface StreamStatus {
  state: 'running' | 'completed' | 'failed' | 'cancelled'
  lines: number
  finish_reason: string | null
  usage: { prompt_tokens: number; completion_tokens: number } | null
  error?: { code: string; message: string }
}

/** streamStatus asks how a stream ended; null when the server knows no such stream. */
export async function streamStatus(
  url: string,
  id: string,
  { signal, fetch: fetchImpl = globalThis.fetch }: Pick<StreamPostOptions, 'signal' | 'fetch'> = {},
): Promise<StreamStatus | null> {
  const response = await fetchImpl(`${url}/${encodeURIComponent(id)}/status`, { signal })
  if (response.status === 404) {
    return null
  }
  if (!response.ok) {
    throw await httpError(response)
  }
  return (await response.json()) as StreamStatus
}

/** cancelStream asks the server to stop generating a stream (DELETE url/{id}). */
export async function cancelStream(url: string, id: string, fetchImpl: typeof globalThis.fetch = globalThis.fetch) {
  await fetchImpl(`${url}/${encodeURIComponent(id)}`, { method: 'DELETE' })
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer)
        reject(signal.reason)
      },
      { once: true },
    )
  })
}

// readBody reads a response's lines and hands each non-empty one to onDelta.
// deliverPartial says whether a last line cut in half is delivered: not when
// a resume will send it again whole.
async function readBody(
  response: Response,
  signal: AbortSignal | undefined,
  onDelta: (delta: string) => void,
  deliverPartial: boolean,
) {
  if (!response.body) {
    return
  }
  const reader = response.body.getReader()
  const cancel = () => {
    reader.cancel(signal?.reason).catch(() => {})
  }
  signal?.addEventListener('abort', cancel, { once: true })
  try {
    await readLines(
      reader,
      signal,
      (line) => {
        if (line !== '') {
          onDelta(line.replaceAll(LINE_BREAK, '\n'))
        }
      },
      deliverPartial,
    )
  } finally {
    signal?.removeEventListener('abort', cancel)
    reader.releaseLock()
  }
}

// readLines decodes the body as UTF-8 and calls onLine for each line, without
// its "\n". A line split across reads is held in pieces and joined once, when
// its terminator arrives, so a long line costs O(n) and not O(n²).
async function readLines(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  signal: AbortSignal | undefined,
  onLine: (line: string) => void,
  deliverPartial: boolean,
): Promise<void> {
  const decoder = new TextDecoder('utf-8')
  let pending: string[] = []

  const push = (text: string) => {
    let start = 0
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      let line = text.slice(start, end)
      if (pending.length > 0) {
        pending.push(line)
        line = pending.join('')
        pending = []
      }
      onLine(line)
      start = end + 1
    }
    if (start < text.length) {
      pending.push(text.slice(start))
    }
  }

  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>
    try {
      chunk = await reader.read()
    } catch (err) {
      signal?.throwIfAborted()
      // Deliver the text of an unterminated last line; bytes of a character
      // cut in half never arrived and are dropped.
      if (deliverPartial && pending.length > 0) {
        onLine(pending.join(''))
      }
      throw new StreamInterruptedError({ cause: err })
    }
    signal?.throwIfAborted()
    if (chunk.done) {
      break
    }
    push(decoder.decode(chunk.value, { stream: true }))
  }
  push(decoder.decode())
  if (pending.length > 0) {
    onLine(pending.join(''))
  }
}

// httpError turns a non-2xx response into a StreamHttpError, using the
// server's {"error": {"code", "message"}} body when there is one.
async function httpError(response: Response): Promise<StreamHttpError> {
  const fallback = `The server answered with HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}.`
  let text = ''
  try {
    text = await response.text()
  } catch {
    // The error body itself was cut off: the status still says enough.
  }
  try {
    const parsed: unknown = JSON.parse(text)
    const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error
    if (typeof error?.message === 'string' && error.message !== '') {
      const code = typeof error.code === 'string' ? error.code : 'http_error'
      return new StreamHttpError(response.status, code, error.message)
    }
  } catch {
    // Not JSON, e.g. a proxy's HTML page.
  }
  return new StreamHttpError(response.status, 'http_error', fallback)
}
