import { useCallback, useEffect, useRef, useState } from 'react'
import { type Answer, type Exchange, requestMessages } from './conversation.ts'
import { type Conversation, loadConversations, newConversation, saveConversations, withExchanges } from './conversations.ts'
import { StreamHttpError, StreamInterruptedError } from './streamPost.ts'
import type { Limits } from './trim.ts'
import { trimMessages } from './trim.ts'
import { type StreamResult, useStream } from './useStream.ts'

const API_URL = '/message/stream'

export interface ChatOptions {
  limits: Limits
  /** The model to ask for; '' for the server's default. */
  model: string
  fetch: typeof globalThis.fetch
  /** Called when an answer ends, after the conversation holds it. */
  onEnd: (result: StreamResult) => void
}

/**
 * useChat holds the conversations (kept in localStorage), the current one,
 * and the stream of its newest answer.
 */
export function useChat({ limits, model, fetch, onEnd }: ChatOptions) {
  const [conversations, setConversations] = useState<Conversation[]>(loadConversations)
  const [currentId, setCurrentId] = useState<string>(() => conversations[0]?.id ?? '')
  const streaming = useRef<{ conversation: string; exchange: number } | null>(null)

  useEffect(() => saveConversations(conversations), [conversations])

  const onFinish = useCallback(
    (result: StreamResult) => {
      const target = streaming.current
      streaming.current = null
      if (target) {
        const answer = toAnswer(result)
        setConversations((all) =>
          all.map((c) =>
            c.id !== target.conversation
              ? c
              : { ...c, exchanges: c.exchanges.map((e) => (e.id === target.exchange ? { ...e, result: answer } : e)) },
          ),
        )
      }
      onEnd(result)
    },
    [onEnd],
  )
  const stream = useStream(API_URL, { onFinish, fetch })
  const busy = stream.status === 'connecting' || stream.status === 'streaming' || stream.status === 'reconnecting'
  const current = conversations.find((c) => c.id === currentId) ?? null
  const exchanges = current?.exchanges ?? []

  // ask sends prompt after history in the current conversation (a new one
  // if there is none), trimmed to the server's limits.
  const ask = (prompt: string, history: Exchange[]) => {
    const { messages, dropped } = trimMessages(requestMessages(history, prompt), limits)
    const exchange: Exchange = { id: Math.max(0, ...exchanges.map((e) => e.id)) + 1, prompt, result: null, dropped }
    const updated = withExchanges(current ?? newConversation(), [...history, exchange])
    setConversations((all) => [updated, ...all.filter((c) => c.id !== updated.id)])
    setCurrentId(updated.id)
    streaming.current = { conversation: updated.id, exchange: exchange.id }
    void stream.start(model === '' ? { messages, resumable: true } : { messages, model, resumable: true })
  }

  const last = exchanges.at(-1)
  return {
    conversations,
    current,
    exchanges,
    stream,
    busy,
    send: (prompt: string) => ask(prompt, exchanges),
    retry: () => last && ask(last.prompt, exchanges.slice(0, -1)),
    /** edit takes the last exchange out and returns its question, to put back in the box. */
    edit: (): string => {
      if (!current || !last) {
        return ''
      }
      setConversations((all) => all.map((c) => (c.id === current.id ? { ...c, exchanges: c.exchanges.slice(0, -1) } : c)))
      return last.prompt
    },
    newChat: () => {
      stream.stop()
      setCurrentId('')
    },
    select: (id: string) => {
      if (id !== currentId) {
        stream.stop()
        setCurrentId(id)
      }
    },
    remove: (id: string) => {
      if (id === currentId) {
        stream.stop()
        setCurrentId('')
      }
      setConversations((all) => all.filter((c) => c.id !== id))
    },
  }
}

// toAnswer keeps what is shown of a result: its error as a message.
function toAnswer({ text, status, error, stats }: StreamResult): Answer {
  return { text, status, error: error ? errorMessage(error) : null, stats }
}

/** errorMessage says what went wrong, in the server's words where it gave some. */
export function errorMessage(error: Error): string {
  if (error instanceof StreamHttpError || error instanceof StreamInterruptedError) {
    return error.message
  }
  return `Could not reach the server (${error.message}).`
}
