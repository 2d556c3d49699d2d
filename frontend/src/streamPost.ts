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
}

/**
 * streamPost POSTs body as JSON to url and calls onDelta once per non-empty
 * line of the answer, with "<br />" turned back into "\n". Concatenating the
 * deltas gives the answer text. It resolves when the body ends cleanly.
 */
export async function streamPost(
  url: string,
  body: unknown,
  onDelta: (delta: string) => void,
  { signal, fetch: fetchImpl = globalThis.fetch }: StreamPostOptions = {},
): Promise<void> {
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
  if (!response.body) {
    return
  }

  const reader = response.body.getReader()
  const cancel = () => {
    reader.cancel(signal?.reason).catch(() => {})
  }
  signal?.addEventListener('abort', cancel, { once: true })
  try {
    await readLines(reader, signal, (line) => {
      if (line !== '') {
        onDelta(line.replaceAll(LINE_BREAK, '\n'))
      }
    })
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
      if (pending.length > 0) {
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
