import type { Answer, Exchange } from './conversation.ts'

/** Conversation is one chat, kept in localStorage. */
export interface Conversation {
  id: string
  title: string
  updatedAt: number
  exchanges: Exchange[]
}

const KEY = 'streamrelay.conversations'

const unfinished: Answer = { text: '', status: 'stopped', error: null, stats: null }

/** newConversation returns an empty conversation. */
export function newConversation(): Conversation {
  return { id: crypto.randomUUID(), title: 'New chat', updatedAt: Date.now(), exchanges: [] }
}

/**
 * withExchanges returns conversation holding exchanges, updated now, titled
 * by its first question.
 */
export function withExchanges(conversation: Conversation, exchanges: Exchange[]): Conversation {
  const first = exchanges[0]
  return { ...conversation, exchanges, updatedAt: Date.now(), title: first ? titleOf(first.prompt) : conversation.title }
}

/** titleOf makes a conversation's title from its first question. */
export function titleOf(prompt: string): string {
  const line = prompt.trim().split('\n')[0] ?? ''
  return line.length > 60 ? `${line.slice(0, 59)}…` : line || 'New chat'
}

/**
 * loadConversations returns the saved conversations, newest first. An answer
 * that was still streaming when the page closed comes back as stopped.
 */
export function loadConversations(storage: Storage = localStorage): Conversation[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(storage.getItem(KEY) ?? '[]')
  } catch {
    return []
  }
  if (!Array.isArray(parsed)) {
    return []
  }
  return parsed
    .filter((c): c is Conversation => typeof c?.id === 'string' && Array.isArray(c?.exchanges))
    .map((c) => ({
      ...c,
      exchanges: c.exchanges.map((e) => (e.result === null ? { ...e, result: unfinished } : e)),
    }))
    .sort((a, b) => b.updatedAt - a.updatedAt)
}

/** saveConversations keeps the conversations that have any exchange. */
export function saveConversations(all: Conversation[], storage: Storage = localStorage) {
  try {
    storage.setItem(KEY, JSON.stringify(all.filter((c) => c.exchanges.length > 0)))
  } catch {
    // Storage full or unavailable: the page still works, without history.
  }
}
