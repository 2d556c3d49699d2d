import type { StreamStats } from './stats.ts'

export interface ChatMessage {
  role: 'user' | 'assistant' | 'system'
  content: string
}

/** Answer is how an answer ended, in a form that can be stored as JSON. */
export interface Answer {
  text: string
  status: 'done' | 'length' | 'stopped' | 'error' | 'interrupted'
  /** The message to show for 'error' and 'interrupted'; null otherwise. */
  error: string | null
  stats: StreamStats | null
}

/** Exchange is one prompt and its answer; result is null while it streams. */
export interface Exchange {
  id: number
  prompt: string
  result: Answer | null
  /** How many earlier messages were left out of the request to fit the server's limits. */
  dropped?: number
}

/**
 * requestMessages returns the messages to send for a new prompt: the earlier
 * exchanges as user/assistant pairs, then the new user turn. An exchange
 * whose answer has no text (an error, or stopped before the first token) is
 * left out, so the history never holds a question without its answer.
 * A partial answer (stopped or interrupted) is kept: it is what the person saw.
 */
export function requestMessages(history: Exchange[], prompt: string): ChatMessage[] {
  const messages: ChatMessage[] = []
  for (const { prompt: asked, result } of history) {
    if (result && result.text !== '') {
      messages.push({ role: 'user', content: asked }, { role: 'assistant', content: result.text })
    }
  }
  messages.push({ role: 'user', content: prompt })
  return messages
}
