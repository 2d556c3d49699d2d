import { type FormEvent, type KeyboardEvent, useCallback, useRef, useState } from 'react'
import { type Exchange, requestMessages } from './conversation.ts'
import { formatStats, type StreamStats } from './stats.ts'
import { StreamHttpError, StreamInterruptedError } from './streamPost.ts'
import { useStickToBottom } from './useStickToBottom.ts'
import { type StreamResult, type StreamStatus, useStream } from './useStream.ts'

const API_URL = '/message/stream'

const statusLabels: Record<StreamStatus, string> = {
  idle: '',
  connecting: 'Connecting…',
  streaming: 'Streaming…',
  reconnecting: 'Reconnecting…',
  done: 'Done',
  length: 'Stopped at the length limit',
  stopped: 'Stopped',
  error: 'Error',
  interrupted: 'Interrupted',
}

export default function App() {
  const [exchanges, setExchanges] = useState<Exchange[]>([])
  const [prompt, setPrompt] = useState('')
  const nextId = useRef(1)

  const onFinish = useCallback((result: StreamResult) => {
    setExchanges((all) => all.map((e, i) => (i === all.length - 1 && e.result === null ? { ...e, result } : e)))
  }, [])
  const stream = useStream(API_URL, { onFinish })
  const busy = stream.status === 'connecting' || stream.status === 'streaming' || stream.status === 'reconnecting'

  const scroll = useStickToBottom<HTMLElement>([stream.text, stream.status, exchanges])

  const send = () => {
    const text = prompt.trim()
    if (busy || text === '') {
      return
    }
    const body = { messages: requestMessages(exchanges, text), resumable: true }
    setExchanges((all) => [...all, { id: nextId.current++, prompt: text, result: null }])
    setPrompt('')
    scroll.follow()
    void stream.start(body)
  }

  const onSubmit = (e: FormEvent) => {
    e.preventDefault()
    send()
  }

  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    // Enter sends; Shift+Enter, and Enter that confirms an IME composition, do not.
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault()
      send()
    }
  }

  return (
    <div className="app">
      <header className="app-header">
        <h1>Stream relay</h1>
      </header>

      <main className="conversation" data-testid="conversation" {...scroll.props}>
        <div className="conversation-inner">
          {exchanges.length === 0 && (
            <p className="hint">Ask something. Enter sends, Shift+Enter starts a new line.</p>
          )}
          {exchanges.map((e) => {
            const live = e.result === null
            return (
              <section className="exchange" key={e.id} data-testid="exchange">
                <p className="bubble user" data-testid="user-message">
                  {e.prompt}
                </p>
                <Answer
                  live={live}
                  text={live ? stream.text : e.result!.text}
                  status={live ? stream.status : e.result!.status}
                  error={live ? stream.error : e.result!.error}
                  stats={live ? stream.stats : e.result!.stats}
                />
              </section>
            )
          })}
        </div>
      </main>

      <form className="composer" onSubmit={onSubmit}>
        <textarea
          aria-label="Prompt"
          data-testid="prompt"
          placeholder="Ask something…"
          rows={2}
          value={prompt}
          onChange={(e) => setPrompt(e.target.value)}
          onKeyDown={onKeyDown}
        />
        <div className="actions">
          <button type="submit" data-testid="send" disabled={busy || prompt.trim() === ''}>
            Send
          </button>
          <button type="button" data-testid="stop" onClick={stream.stop} disabled={!busy}>
            Stop
          </button>
        </div>
      </form>
    </div>
  )
}

interface AnswerProps {
  live: boolean
  text: string
  status: StreamStatus
  error: Error | null
  stats: StreamStats | null
}

// Answer shows model text as plain text: React text nodes in a pre-wrap
// element, so markup in it stays inert and textContent is the answer exactly.
function Answer({ live, text, status, error, stats }: AnswerProps) {
  return (
    <article className="bubble assistant" data-testid="assistant-turn" data-status={status}>
      <div className={live ? 'answer live' : 'answer'} data-testid="answer">
        {text}
      </div>
      {status === 'interrupted' && (
        <p className="note" data-testid="incomplete">
          The connection dropped: this answer is incomplete.
        </p>
      )}
      {status === 'error' && error && (
        <p className="error" role="alert" data-testid="error">
          {errorMessage(error)}
        </p>
      )}
      <p className="meta">
        <span className={`status status-${status}`} data-testid="status" role={live ? 'status' : undefined}>
          {statusLabels[status]}
        </span>
        {stats && stats.firstTokenMs !== null && <span data-testid="stats">{formatStats(stats)}</span>}
      </p>
    </article>
  )
}

function errorMessage(error: Error): string {
  if (error instanceof StreamHttpError || error instanceof StreamInterruptedError) {
    return error.message
  }
  return `Could not reach the server (${error.message}).`
}
