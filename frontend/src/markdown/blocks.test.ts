import { describe, expect, test } from 'vitest'
import { splitBlocks } from './blocks.ts'

describe('splitBlocks', () => {
  const cases: Record<string, { text: string; want: string[] }> = {
    empty: { text: '', want: [''] },
    'one paragraph': { text: 'a\nb', want: ['a\nb'] },
    paragraphs: { text: 'a\n\nb\n\nc', want: ['a\n\n', 'b\n\n', 'c'] },
    'indented continuation stays': { text: '- a\n\n  more\n- b', want: ['- a\n\n  more\n- b'] },
    'blank lines inside a fence stay': {
      text: 'x\n\n```go\nfunc a() {}\n\n\nfunc b() {}\n```\n\ny',
      want: ['x\n\n', '```go\nfunc a() {}\n\n\nfunc b() {}\n```\n\n', 'y'],
    },
    'unterminated fence is one block': { text: 'x\n\n```\na\n\nb', want: ['x\n\n', '```\na\n\nb'] },
    'a shorter fence does not close': {
      text: '````\n```\n\nin\n````\n\nout',
      want: ['````\n```\n\nin\n````\n\n', 'out'],
    },
    'tilde fence': { text: '~~~\n\n```\n~~~\n\nz', want: ['~~~\n\n```\n~~~\n\n', 'z'] },
    'trailing blank lines': { text: 'a\n\n', want: ['a\n\n'] },
  }
  for (const [name, { text, want }] of Object.entries(cases)) {
    test(name, () => {
      const got = splitBlocks(text)
      expect(got).toEqual(want)
      expect(got.join('')).toBe(text)
    })
  }

  test('only the last block changes as text grows', () => {
    const text = 'Intro **bold**\n\n- one\n- two\n\n```ts\nconst a = 1\n\nconst b = 2\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nEnd.'
    for (let n = 1; n <= text.length; n++) {
      const now = splitBlocks(text.slice(0, n))
      const full = splitBlocks(text)
      expect(now.slice(0, -1)).toEqual(full.slice(0, now.length - 1))
    }
  })
})
