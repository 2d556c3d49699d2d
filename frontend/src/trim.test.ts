import { describe, expect, test } from 'vitest'
import type { ChatMessage } from './conversation.ts'
import { trimMessages } from './trim.ts'

const user = (content: string): ChatMessage => ({ role: 'user', content })
const assistant = (content: string): ChatMessage => ({ role: 'assistant', content })
const system = (content: string): ChatMessage => ({ role: 'system', content })

describe('trimMessages', () => {
  const history = [user('aaaa'), assistant('bbbb'), user('cccc'), assistant('dddd'), user('now?')]
  const cases: Record<string, { messages: ChatMessage[]; maxInputChars: number; maxMessages: number; want: ChatMessage[] }> = {
    'no limits': { messages: history, maxInputChars: 0, maxMessages: 0, want: history },
    'fits exactly': { messages: history, maxInputChars: 20, maxMessages: 5, want: history },
    'one char over drops the oldest turn': {
      messages: history,
      maxInputChars: 19,
      maxMessages: 0,
      want: history.slice(2),
    },
    'message count': { messages: history, maxInputChars: 0, maxMessages: 4, want: history.slice(2) },
    'keeps only the question': { messages: history, maxInputChars: 4, maxMessages: 0, want: [user('now?')] },
    'a question too long alone is still sent': {
      messages: history,
      maxInputChars: 2,
      maxMessages: 0,
      want: [user('now?')],
    },
    'the system prompt stays': {
      messages: [system('sys'), ...history],
      maxInputChars: 11,
      maxMessages: 0,
      want: [system('sys'), user('now?')],
    },
    'code points, not UTF-16 units': {
      messages: [user('🚀🚀'), assistant('🚀🚀'), user('🚀')],
      maxInputChars: 5,
      maxMessages: 0,
      want: [user('🚀🚀'), assistant('🚀🚀'), user('🚀')],
    },
    'a question after a lost answer': {
      messages: [user('aaaa'), user('bbbb'), assistant('cc'), user('now?')],
      maxInputChars: 10,
      maxMessages: 0,
      want: [user('bbbb'), assistant('cc'), user('now?')],
    },
  }
  for (const [name, c] of Object.entries(cases)) {
    test(name, () => {
      const got = trimMessages(c.messages, c)
      expect(got.messages).toEqual(c.want)
      expect(got.dropped).toBe(c.messages.length - c.want.length)
    })
  }

  test('a long conversation always fits', () => {
    const messages: ChatMessage[] = []
    for (let i = 0; i < 50; i++) {
      messages.push(user(`question ${i} `.repeat(7)), assistant(`answer ${i} `.repeat(20)))
    }
    messages.push(user('the current question'))
    const { messages: sent, dropped } = trimMessages(messages, { maxInputChars: 1500, maxMessages: 10 })
    const chars = sent.reduce((n, m) => n + [...m.content].length, 0)
    expect(chars).toBeLessThanOrEqual(1500)
    expect(sent.length).toBeLessThanOrEqual(10)
    expect(sent.at(-1)).toEqual(user('the current question'))
    expect(sent[0]?.role).toBe('user')
    expect(dropped).toBeGreaterThan(0)
  })
})
