import { useCallback, useEffect, useRef, useState } from 'react'
import { type StreamStats, streamStats } from './stats.ts'
import { StreamInterruptedError, streamPost } from './streamPost.ts'

export type StreamStatus = 'idle' | 'connecting' | 'streaming' | 'done' | 'stopped' | 'error' | 'interrupted'

/** StreamResult is how an answer ended: its text so far, status, error and stats. */
export interface StreamResult {
  text: string
  status: 'done' | 'stopped' | 'error' | 'interrupted'
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

  const stop = useCallback(() => running.current?.abort(), [])

  const start = useCallback(
    async (body: unknown): Promise<StreamResult> => {
      running.current?.abort()
      const controller = new AbortController()
      running.current = controller
      const isCurrent = () => running.current === controller

      const startedAt = performance.now()
      let firstDeltaAt: number | null = null
      let lines = 0
      let text = ''
      const unrendered: string[] = []
      let frame: number | null = null
      const render = () => {
        frame = null
        text += unrendered.join('')
        unrendered.length = 0
        if (isCurrent()) {
          setState({ text, status: 'streaming', error: null, stats: null })
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
          { signal: controller.signal, fetch: fetchRef.current },
        )
        status = 'done'
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
