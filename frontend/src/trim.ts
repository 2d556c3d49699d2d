import type { ChatMessage } from './conversation.ts'

/** Limits are the server's input limits; 0 means no limit. */
export interface Limits {
  maxInputChars: number
  maxMessages: number
}

/** Trimmed is the messages to send and how many earlier turns were left out. */
export interface Trimmed {
  messages: ChatMessage[]
  dropped: number
}

/**
 * trimMessages drops the oldest turns of messages until the request fits
 * limits: at most maxMessages messages and maxInputChars characters (Unicode
 * code points, as the server counts them). System messages and the last
 * message, the current question, are always kept; a user turn goes together
 * with the assistant answer after it. When even the kept messages do not
 * fit, they are returned as they are and the server explains.
 */
export function trimMessages(messages: ChatMessage[], limits: Limits): Trimmed {
  const last = messages.length - 1
  const turns: ChatMessage[][] = []
  for (const [i, m] of messages.entries()) {
    const fresh = m.role === 'system' || i === last || m.role === 'user' || turns.length === 0
    if (fresh) {
      turns.push([m])
    } else {
      turns.at(-1)?.push(m)
    }
  }
  const removable = (t: ChatMessage[]) => t[0]?.role !== 'system' && t !== turns.at(-1)
  let count = messages.length
  let chars = messages.reduce((n, m) => n + length(m.content), 0)
  let dropped = 0
  const kept: ChatMessage[][] = []
  for (const t of turns) {
    const over = (limits.maxMessages > 0 && count > limits.maxMessages) || (limits.maxInputChars > 0 && chars > limits.maxInputChars)
    if (over && removable(t)) {
      count -= t.length
      chars -= t.reduce((n, m) => n + length(m.content), 0)
      dropped += t.length
    } else {
      kept.push(t)
    }
  }
  return { messages: kept.flat(), dropped }
}

// length counts code points, as the server does (Go's utf8.RuneCountInString).
function length(s: string): number {
  let n = 0
  for (const _ of s) {
    n++
  }
  return n
}
