import { describe, expect, it } from 'vitest'
import { type Answer, requestMessages, type Exchange } from './conversation.ts'

function result(status: Answer['status'], text: string): Answer {
  return { status, text, error: null, stats: { firstTokenMs: null, lines: 0, linesPerSecond: null } }
}

describe('requestMessages', () => {
  it('sends only the new prompt at the start', () => {
    expect(requestMessages([], 'Hi')).toEqual([{ role: 'user', content: 'Hi' }])
  })

  it('sends earlier turns as user/assistant pairs, then the new turn', () => {
    const history: Exchange[] = [
      { id: 1, prompt: 'One?', result: result('done', 'Un.') },
      { id: 2, prompt: 'Two?', result: result('stopped', 'De') },
      { id: 3, prompt: 'Three?', result: result('interrupted', 'Tr') },
    ]
    expect(requestMessages(history, 'Four?')).toEqual([
      { role: 'user', content: 'One?' },
      { role: 'assistant', content: 'Un.' },
      { role: 'user', content: 'Two?' },
      { role: 'assistant', content: 'De' },
      { role: 'user', content: 'Three?' },
      { role: 'assistant', content: 'Tr' },
      { role: 'user', content: 'Four?' },
    ])
  })

  it('leaves out exchanges without an answer', () => {
    const history: Exchange[] = [
      { id: 1, prompt: 'Failed?', result: result('error', '') },
      { id: 2, prompt: 'Stopped early?', result: result('stopped', '') },
      { id: 3, prompt: 'Running?', result: null },
    ]
    expect(requestMessages(history, 'Now?')).toEqual([{ role: 'user', content: 'Now?' }])
  })
})
