import { useCallback, useEffect, useRef, useState } from 'react'
import { type StreamStats, streamStats } from './stats.ts'
import { StreamInterruptedError, cancelStream, streamPost, streamStatus } from './streamPost.ts'

export type StreamStatus =
  | 'idle'
  | 'connecting'
  | 'streaming'
  | 'reconnecting'
  | 'done'
  | 'length'
  | 'stopped'
  | 'error'
  | 'interrupted'

/** StreamResult is how an answer ended: its text so far, status, error and stats. */
export interface StreamResult {
  text: string
  /** 'length': the answer stopped at the token limit. */
  status: 'done' | 'length' | 'stopped' | 'error' | 'interrupted'
  /** The error for 'error' (often a StreamHttpError) and 'interrupted'; null otherwise. */
  error: Error | null
  stats: StreamStats
}

export interface StreamState {
  text: string
  status: StreamStatus
  error: Error | null
  stats: StreamStats | null
}

export interface UseStreamOptions {
  /** Called once when the current answer ends, in the same render as the final state. */
  onFinish?: (result: StreamResult) => void
  /** The fetch to send requests with, e.g. one that adds a token; read when start is called. */
  fetch?: typeof globalThis.fetch
}

const idle: StreamState = { text: '', status: 'idle', error: null, stats: null }

/**
 * useStream streams answers from url with streamPost. start(body) sends a
 * request (stopping any running one) and resolves with its StreamResult;
 * stop() ends it with status 'stopped', keeping the text so far. Text reaches
 * React at most once per animation frame, however fast deltas arrive.
 */
export function useStream(url: string, { onFinish, fetch }: UseStreamOptions = {}) {
  const [state, setState] = useState<StreamState>(idle)
  const running = useRef<AbortController | null>(null)
  const onFinishRef = useRef(onFinish)
  const fetchRef = useRef(fetch)
  useEffect(() => {
    onFinishRef.current = onFinish
    fetchRef.current = fetch
  })

  useEffect(
    () => () => {
      running.current?.abort()
      running.current = null
    },
    [],
  )

  const streamId = useRef<string | null>(null)
  // stop ends the answer here and asks the server to stop generating it.
  const stop = useCallback(() => {
    running.current?.abort()
    if (streamId.current) {
      cancelStream(url, streamId.current, fetchRef.current).catch(() => {})
    }
  }, [url])

  const start = useCallback(
    async (body: unknown): Promise<StreamResult> => {
      running.current?.abort()
      const controller = new AbortController()
      running.current = controller
      streamId.current = null
      const isCurrent = () => running.current === controller

      const startedAt = performance.now()
      let firstDeltaAt: number | null = null
      let lines = 0
      let text = ''
      const unrendered: string[] = []
      let frame: number | null = null
      let connection: 'streaming' | 'reconnecting' = 'streaming'
      const render = () => {
        frame = null
        text += unrendered.join('')
        unrendered.length = 0
        if (isCurrent()) {
          setState({ text, status: connection, error: null, stats: null })
        }
      }

      setState({ text: '', status: 'connecting', error: null, stats: null })
      let status: StreamResult['status']
      let error: Error | null = null
      try {
        await streamPost(
          url,
          body,
          (delta) => {
            firstDeltaAt ??= performance.now()
            lines++
            unrendered.push(delta)
            frame ??= requestFrame(render)
          },
          {
            signal: controller.signal,
            fetch: fetchRef.current,
            onStreamId: (id) => {
              streamId.current = id
            },
            onConnection: (state) => {
              // At once, not at the next frame: a quick resume would
              // otherwise never show.
              connection = state
              if (frame !== null) {
                cancelFrame(frame)
              }
              render()
            },
          },
        )
        status = await endedAs(url, streamId.current, fetchRef.current)
        if (status === 'interrupted') {
          error = new StreamInterruptedError()
        }
      } catch (err) {
        if (controller.signal.aborted) {
          status = 'stopped'
        } else {
          status = err instanceof StreamInterruptedError ? 'interrupted' : 'error'
          error = err instanceof Error ? err : new Error(String(err))
        }
      }
      if (frame !== null) {
        cancelFrame(frame)
      }
      text += unrendered.join('')
      const stats = streamStats({ startedAt, firstDeltaAt, endedAt: performance.now(), lines })
      const result: StreamResult = { text, status, error, stats }
      if (isCurrent()) {
        running.current = null
        setState(result)
        onFinishRef.current?.(result)
      }
      return result
    },
    [url],
  )

  return { ...state, start, stop }
}

// endedAs asks the server how a stream that ended cleanly really ended: a
// browser may read a connection the server cut as a complete body (WebKitGTK
// does), and plain text can't say that the answer hit the token limit.
async function endedAs(
  url: string,
  id: string | null,
  fetchImpl?: typeof globalThis.fetch,
): Promise<StreamResult['status']> {
  if (!id) {
    return 'done'
  }
  try {
    const status = await streamStatus(url, id, { fetch: fetchImpl })
    if (status?.state === 'failed') {
      return 'interrupted'
    }
    return status?.finish_reason === 'length' ? 'length' : 'done'
  } catch {
    return 'done' // the answer arrived; its status is only a check
  }
}

// requestFrame and cancelFrame fall back to a timer where there are no frames.
function requestFrame(callback: () => void): number {
  return typeof requestAnimationFrame === 'function'
    ? requestAnimationFrame(callback)
    : (setTimeout(callback, 16) as unknown as number)
}

function cancelFrame(handle: number) {
  if (typeof cancelAnimationFrame === 'function') {
    cancelAnimationFrame(handle)
  } else {
    clearTimeout(handle)
  }
}
