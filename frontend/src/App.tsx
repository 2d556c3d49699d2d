import { type FormEvent, type KeyboardEvent, useCallback, useEffect, useMemo, useRef, useState } from 'react'
import { AnswerView } from './AnswerView.tsx'
import { ConversationList } from './ConversationList.tsx'
import { fallbackConfig, fetchConfig, type ServerConfig } from './serverConfig.ts'
import { StreamHttpError } from './streamPost.ts'
import { clearToken, loadToken, saveToken, withToken } from './token.ts'
import { TokenDialog } from './TokenDialog.tsx'
import { errorMessage, useChat } from './useChat.ts'
import { useStickToBottom } from './useStickToBottom.ts'
import type { StreamResult } from './useStream.ts'

const announcements: Record<StreamResult['status'], string> = {
  done: 'Answer done.',
  stopped: 'Answer stopped.',
  interrupted: 'The answer was interrupted.',
  length: 'The answer stopped at the length limit.',
  error: 'Error.',
}

export default function App() {
  const [config, setConfig] = useState<ServerConfig>(fallbackConfig)
  const [token, setToken] = useState(loadToken)
  const [tokenPrompt, setTokenPrompt] = useState<'closed' | 'ask' | 'refused'>('closed')
  const [model, setModel] = useState('')
  const [prompt, setPrompt] = useState('')
  const [announcement, setAnnouncement] = useState('')
  const box = useRef<HTMLTextAreaElement>(null)
  const focusBox = useCallback(() => box.current?.focus(), [])

  useEffect(() => {
    const controller = new AbortController()
    void fetchConfig('/config', controller.signal).then((c) => {
      setConfig(c)
      if (c.tokens_required && loadToken() === '') {
        setTokenPrompt('ask')
      }
    })
    return () => controller.abort()
  }, [])
  useEffect(focusBox, [focusBox])

  const onEnd = useCallback(
    (result: StreamResult) => {
      setAnnouncement(result.error ? `${announcements[result.status]} ${errorMessage(result.error)}` : announcements[result.status])
      if (result.error instanceof StreamHttpError && result.error.status === 401) {
        clearToken()
        setToken('')
        setTokenPrompt('refused')
      } else {
        focusBox()
      }
    },
    [focusBox],
  )
  const limits = useMemo(
    () => ({ maxInputChars: config.max_input_chars, maxMessages: config.max_messages }),
    [config.max_input_chars, config.max_messages],
  )
  const fetchWithToken = useMemo(() => withToken(token), [token])
  const chat = useChat({ limits, model: model === config.model ? '' : model, fetch: fetchWithToken, onEnd })
  const { stream, busy, exchanges } = chat
  const scroll = useStickToBottom<HTMLElement>()

  const send = () => {
    const text = prompt.trim()
    if (busy || text === '') {
      return
    }
    setPrompt('')
    setAnnouncement('Answering…')
    scroll.follow()
    chat.send(text)
  }
  const stop = () => {
    stream.stop()
    focusBox()
  }
  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    // Enter sends; Shift+Enter, and Enter that confirms an IME composition, do not.
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault()
      send()
    }
  }
  const onPageKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Escape' && busy) {
      e.preventDefault()
      stop()
    }
  }

  return (
    <div className="app" onKeyDown={onPageKeyDown}>
      <header className="app-header">
        <h1>Stream relay</h1>
        <span className="model">
          {config.models.length > 1 ? (
            <select
              aria-label="Model"
              data-testid="model-picker"
              value={model || config.model}
              onChange={(e) => setModel(e.target.value)}
            >
              {config.models.map((m) => (
                <option key={m}>{m}</option>
              ))}
            </select>
          ) : null}
          <span data-testid="model-name" className={config.models.length > 1 ? 'visually-hidden' : undefined}>
            {model || config.model}
          </span>
          {config.demo && (
            <span className="badge" data-testid="mode-badge" title="No API key is configured: a built-in demo answers.">
              demo
            </span>
          )}
        </span>
        <button
          type="button"
          data-testid="new-chat"
          onClick={() => {
            chat.newChat()
            setPrompt('')
            focusBox()
          }}
        >
          New chat
        </button>
      </header>

      <div className="body">
        <ConversationList
          conversations={chat.conversations}
          currentId={chat.current?.id ?? ''}
          onSelect={chat.select}
          onDelete={chat.remove}
        />
        <main className="conversation" data-testid="conversation" {...scroll.props}>
          <div className="conversation-inner">
            {exchanges.length === 0 && <p className="hint">Ask something. Enter sends, Shift+Enter starts a new line.</p>}
            {exchanges.map((e, i) => {
              const live = e.result === null
              const isLast = i === exchanges.length - 1
              return (
                <section className="exchange" key={e.id} data-testid="exchange">
                  {e.dropped ? (
                    <p className="note quiet" data-testid="trim-note">
                      {e.dropped} earlier {e.dropped === 1 ? 'message was' : 'messages were'} left out to fit the
                      server&apos;s limits.
                    </p>
                  ) : null}
                  <div className="user-row">
                    <p className="bubble user" data-testid="user-message">
                      {e.prompt}
                    </p>
                    {isLast && !busy && (
                      <button type="button" className="edit" data-testid="edit" onClick={() => { setPrompt(chat.edit()); focusBox() }}>
                        Edit
                      </button>
                    )}
                  </div>
                  <AnswerView
                    live={live}
                    text={live ? stream.text : e.result!.text}
                    status={live ? stream.status : e.result!.status}
                    error={live ? (stream.error ? errorMessage(stream.error) : null) : e.result!.error}
                    stats={live ? stream.stats : e.result!.stats}
                    onRetry={isLast && !busy ? chat.retry : undefined}
                  />
                </section>
              )
            })}
          </div>
        </main>
      </div>

      <form className="composer" onSubmit={(e: FormEvent) => { e.preventDefault(); send() }}>
        <textarea
          ref={box}
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
          <button type="button" data-testid="stop" onClick={stop} disabled={!busy}>
            Stop
          </button>
        </div>
      </form>
      <p className="visually-hidden" aria-live="polite" data-testid="live-region">
        {announcement}
      </p>
      {tokenPrompt !== 'closed' && (
        <TokenDialog
          refused={tokenPrompt === 'refused'}
          onSave={(t, remember) => {
            saveToken(t, remember)
            setToken(t)
            setTokenPrompt('closed')
            focusBox()
          }}
        />
      )}
    </div>
  )
}
