import type { StreamResult } from './useStream.ts'

export interface ChatMessage {
  role: 'user' | 'assistant' | 'system'
  content: string
}

/** Exchange is one prompt and its answer; result is null while it streams. */
export interface Exchange {
  id: number
  prompt: string
  result: StreamResult | null
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
